// //mm/heap:kmalloc_preload: the host build of Ferrite's heap as the process's malloc.
//
//   LD_PRELOAD=bazel-bin/mm/kmalloc_preload python3 -c 'print("hello")'
//
// Serves malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign, valloc, pvalloc
// and malloc_usable_size from one mm::Heap (kmalloc & co. over 45 slab size classes with per-thread
// magazines, and a large-object area for large blocks) over a PMM over 32 GiB of simulated RAM (reserved,
// only touched pages cost memory). Thread-safe (the heap is).
//
// Fork-safe, also while other threads are inside malloc (threaded programs that start subprocesses
// or multiprocessing workers): the heap uses private memory, so a child gets a copy-on-write copy,
// and pthread_atfork handlers, registered when the heap is initialised (the first malloc, before
// nearly every other handler), make that copy consistent the way production allocators do. The
// prepare handler takes every lock of the heap in the documented lock order (HostHeap::
// lock_for_fork: heap.large_objects, address-space, slab.registry, slab.cpu_registry, every slab cache,
// every PMM arena), so no other thread is in a critical section when the process is copied; the
// parent and child handlers release them in reverse. In the child, the per-thread magazines of
// the parent's other threads (which do not exist there) are left as they are. Limits, as for any
// malloc's handlers: prepare handlers run in reverse order of registration, so one registered
// before ours runs while the heap is locked and must not allocate (registering at the first malloc
// leaves hardly any); neither may a fork from a signal handler that interrupted malloc; and a fork
// while the first malloc is still building the heap is not covered (the first malloc comes before
// a program starts threads).
//
// Environment:
//   FERRITE_HEAP_HARDENED=1  hardened mode (redzones, poisoning, double-free detection)
//   FERRITE_HEAP_STATS=1     print "ferrite-kmalloc: <n> calls, <frames> frames" to stderr at exit
//
// Rules on top of the heap's own: malloc(0) returns a unique pointer (the heap's rule);
// realloc(p, 0) frees p and returns NULL (glibc's behaviour, which programs rely on).
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include <ktl/macros.h>

import ktl;
import mm.heap;
import mm.heap.host;
import mm.slab;

namespace {

using mm::heap_host::ForkSide;
using mm::heap_host::HostHeap;

alignas(HostHeap) unsigned char g_storage[sizeof(HostHeap)];
std::atomic<int> g_state{0};  // 0 uninitialised, 1 initialising, 2 ready
HostHeap* g_host = nullptr;
// Always &g_host->heap(), set once with it: a cached copy for the malloc fast path, which loads
// this one pointer instead of g_host and then the heap's Optional (its has-value check included).
mm::Heap* g_heap = nullptr;
std::atomic<unsigned long long> g_calls{0};
bool g_stats = false;
int g_stats_fd = -1;  // a private copy of stderr: programs may close fd 2 in their own atexit handlers

void print_stats() {
  if (!g_stats || g_heap == nullptr) return;
  char line[128];
  int n = std::snprintf(line, sizeof line, "ferrite-kmalloc: %llu calls, %llu frames\n",
                        static_cast<unsigned long long>(g_calls.load()),
                        static_cast<unsigned long long>(g_heap->stats().total_frames()));
  if (n > 0) (void)!write(g_stats_fd, line, static_cast<std::size_t>(n));
}

// The pthread_atfork handlers (see the top of the file). Registered once the heap is ready.
void before_fork() { g_host->lock_for_fork(); }
void after_fork_in_parent() { g_host->unlock_after_fork(ForkSide::Parent); }
void after_fork_in_child() { g_host->unlock_after_fork(ForkSide::Child); }

[[gnu::noinline]] mm::Heap& init_slow() {
  int expected = 0;
  if (g_state.compare_exchange_strong(expected, 1)) {
    mm::heap_host::HostHeapOptions options;
    options.phys_bytes = std::uint64_t{32} << 30;
    options.large_object_bytes = std::uint64_t{64} << 30;
    const char* hardened = std::getenv("FERRITE_HEAP_HARDENED");
    options.hardening = hardened != nullptr && hardened[0] == '1' ? mm::Hardening::On : mm::Hardening::Off;
    options.fork_safe = true;
    g_host = new (g_storage) HostHeap(options);
    g_heap = &g_host->heap();
    const char* stats = std::getenv("FERRITE_HEAP_STATS");
    g_stats = stats != nullptr && stats[0] == '1';
    if (g_stats) g_stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
    g_state.store(2, std::memory_order_release);
    // After the heap is ready: registering may allocate (glibc's handler list grows with malloc).
    if (pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child) != 0) {
      static constexpr char kWarning[] =
          "ferrite-kmalloc: pthread_atfork failed: fork is unsafe with threads\n";
      (void)!write(2, kWarning, sizeof kWarning - 1);
    }
    std::atexit(&print_stats);
  } else {
    while (g_state.load(std::memory_order_acquire) != 2) sched_yield();
  }
  return *g_heap;
}

inline mm::Heap& heap() {
  if (g_state.load(std::memory_order_acquire) == 2) [[likely]]
    return *g_heap;
  return init_slow();
}

inline void count() {
  if (g_stats) g_calls.fetch_add(1, std::memory_order_relaxed);
}

void* aligned(std::size_t align, std::size_t size) {
  count();
  return heap().kmalloc_aligned(size, align);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* malloc(std::size_t size) {
  count();
  void* p = heap().kmalloc(size);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

__attribute__((visibility("default"))) void free(void* p) {
  if (p == nullptr) return;
  count();
  heap().kfree(p);
}

__attribute__((visibility("default"))) void* calloc(std::size_t n, std::size_t size) {
  count();
  void* p = heap().kcalloc(n, size);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

__attribute__((visibility("default"))) void* realloc(void* p, std::size_t size) {
  count();
  if (p != nullptr && size == 0) {
    heap().kfree(p);
    return nullptr;
  }
  void* q = heap().krealloc(p, size);
  if (q == nullptr) errno = ENOMEM;
  return q;
}

__attribute__((visibility("default"))) int posix_memalign(void** out, std::size_t align, std::size_t size) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = aligned(align, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

__attribute__((visibility("default"))) void* aligned_alloc(std::size_t align, std::size_t size) {
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  void* p = aligned(align, size);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

__attribute__((visibility("default"))) void* memalign(std::size_t align, std::size_t size) {
  return aligned_alloc(align, size);
}

__attribute__((visibility("default"))) void* valloc(std::size_t size) { return aligned_alloc(4096, size); }

__attribute__((visibility("default"))) void* pvalloc(std::size_t size) {
  return aligned_alloc(4096, (size + 4095) & ~std::size_t{4095});
}

__attribute__((visibility("default"))) std::size_t malloc_usable_size(void* p) {
  return p == nullptr ? 0 : heap().usable_size(p);
}

}  // extern "C"
