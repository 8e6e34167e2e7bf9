// HostHeap::lock_for_fork / unlock_after_fork / ForkGuard: the pthread_atfork protocol of the
// preload library (//mm/heap:kmalloc_preload), on a HostHeap of this process. Runs under TSan too
// (heap_fork_test_tsan); the children allocate and free but start no thread (TSan does not
// support threads in the child of a multithreaded fork). kmalloc_preload_test.sh runs the same
// scenario through the preloaded malloc of a real process (//mm/heap:kmalloc_fork_stress).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <ktl/macros.h>

import ktl;
import mm.addr;
import mm.heap;
import mm.heap.host;
import mm.slab;
import mm.slab.cpu;

namespace {

using mm::heap_host::ForkSide;
using mm::heap_host::HostHeap;

constexpr std::size_t kLarge = 300 * 1024;  // beyond the size classes: the large-object area

mm::heap_host::HostHeapOptions fork_safe_options() {
  mm::heap_host::HostHeapOptions options;
  options.phys_bytes = std::uint64_t{256} << 20;
  options.large_object_bytes = std::uint64_t{1} << 30;
  options.hardening = mm::Hardening::Off;
  options.fork_safe = true;  // private memory: the child gets a copy, not the parent's frames
  return options;
}

// Every lock the fork locks are to hold, with what to call it in a failure: the region's
// address space, the slab allocator's (both registries, every cache's, internal ones included)
// and every arena of both PMMs. (heap.large_objects has no accessor: the probe below covers it.)
struct NamedLock {
  std::string what;
  const ktl::SpinLock* lock;
};
std::vector<NamedLock> fork_locks(HostHeap& host) {
  std::vector<NamedLock> locks;
  locks.push_back({"address-space", &host.space().lock()});
  host.heap().slab().for_each_lock([&](const ktl::SpinLock& lock, const mm::SlabCache* cache) {
    std::string what = lock.name();
    if (cache != nullptr) what += " " + std::string(cache->name().data(), cache->name().size());
    locks.push_back({what, &lock});
  });
  host.pmm().for_each_lock(
      [&](const ktl::SpinLock& lock) { locks.push_back({"data PMM's pmm.arena", &lock}); });
  host.table_pmm().for_each_lock(
      [&](const ktl::SpinLock& lock) { locks.push_back({"table PMM's pmm.arena", &lock}); });
  return locks;
}

// Calls each operation on its own thread while the fork locks are held: each needs exactly one
// lock (so it finishes if lock_for_fork left that one out), and none may finish; after
// unlock_after_fork all of them must. Every lock is also checked directly (is_locked), which
// covers the internal caches (magazines, slab descriptors, SlabCache objects): no public operation
// takes one of those alone.
TEST(HeapFork, LockForForkHoldsEveryLayersLocks) {
  HostHeap host(fork_safe_options());
  mm::Heap& heap = host.heap();
  // One arena per PMM: free_frame_count() then takes exactly one lock.
  ASSERT_EQ(host.pmm().arena_count(), 1u);
  ASSERT_EQ(host.table_pmm().arena_count(), 1u);
  struct Op {
    const char* what;
    std::function<void()> run;
  };
  std::vector<Op> ops = {
      {"region stats (heap.large_objects)", [&] { (void)heap.large_objects().stats(); }},
      {"translate (address-space)", [&] { (void)host.space().translate(host.large_object_range().start()); }},
      {"cache count (slab.registry)", [&] { (void)heap.slab().cache_count(); }},
      {"for_each_block (slab.cpu_registry)",
       [] { mm::slab_cpu::for_each_block([](mm::slab_cpu::CpuBlock&) {}); }},
      {"first class cache", [&] { (void)heap.class_cache(0).info(); }},
      {"a middle class cache", [&] { (void)heap.class_cache(20).info(); }},
      {"last class cache", [&] { (void)heap.class_cache(mm::heap_classes::kCount - 1).info(); }},
      {"data PMM (its pmm.arena)", [&] { (void)host.pmm().free_frame_count(); }},
      {"table PMM (its pmm.arena)", [&] { (void)host.table_pmm().free_frame_count(); }},
  };
  std::vector<NamedLock> locks = fork_locks(host);
  // The address space, both registries, every cache of the registry (the class caches and the
  // internal ones), one arena per PMM.
  std::size_t caches = heap.slab().cache_count();
  ASSERT_GT(caches, mm::heap_classes::kCount);
  ASSERT_EQ(locks.size(), 1 + 2 + caches + 2);
  for (const NamedLock& l : locks)
    ASSERT_FALSE(l.lock->is_locked()) << l.what << " held before lock_for_fork";

  std::vector<std::atomic<bool>> done(ops.size());
  std::vector<std::thread> threads;
  host.lock_for_fork();
  for (const NamedLock& l : locks) EXPECT_TRUE(l.lock->is_locked()) << l.what << " not held by lock_for_fork";
  for (std::size_t i = 0; i < ops.size(); ++i) {
    threads.emplace_back([&, i] {
      ops[i].run();
      done[i].store(true);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (std::size_t i = 0; i < ops.size(); ++i) EXPECT_FALSE(done[i].load()) << ops[i].what;
  host.unlock_after_fork(ForkSide::Parent);
  for (std::thread& t : threads) t.join();
  for (std::size_t i = 0; i < ops.size(); ++i) EXPECT_TRUE(done[i].load()) << ops[i].what;
  for (const NamedLock& l : locks) EXPECT_FALSE(l.lock->is_locked()) << l.what << " still held after unlock";
}

// What a child does with its copy of the heap: small objects of several classes (more of each
// than two magazines hold, so the depot and slab locks are taken), and large ones (heap.large_objects,
// address-space, both PMMs). Returns 0 when everything worked and the registry of per-thread
// blocks holds at most this thread's.
int child_work(HostHeap& host) {
  mm::Heap& heap = host.heap();
  static void* objects[200];
  for (std::size_t size : {16, 64, 200, 1000, 5000, 40000}) {
    for (void*& p : objects) {
      p = heap.kmalloc(size);
      if (p == nullptr) return 3;
      std::memset(p, 0x5a, size);
    }
    for (void* p : objects) heap.kfree(p);
  }
  for (int i = 0; i < 3; ++i) {
    void* p = heap.kmalloc(kLarge);
    if (p == nullptr) return 4;
    std::memset(p, 0x5a, kLarge);
    heap.kfree(p);
  }
  std::size_t blocks = 0;
  mm::slab_cpu::for_each_block([&](mm::slab_cpu::CpuBlock&) { ++blocks; });
  if (blocks > 1) return 2;
  return host.pmm().check_invariants() ? 0 : 5;
}

// Waits for `pid` for up to `timeout`; kills it if it is still running (deadlocked). Returns its
// wait status, or -1 if it had to be killed.
int wait_with_deadline(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 || std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      (void)waitpid(pid, &status, 0);
      return -1;
    }
    usleep(200);
  }
}

// Threads allocate and free (every size, large objects included) without pause while the main
// thread forks under a ForkGuard; every child must be able to use the heap and exit.
TEST(HeapFork, ChildrenOfAForkAmidAllocatingThreadsCanAllocate) {
  HostHeap host(fork_safe_options());
  mm::Heap& heap = host.heap();
  constexpr int kThreads = 3;
  constexpr int kForks = 60;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      std::uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1);
      std::vector<void*> slots(128, nullptr);
      while (!stop.load(std::memory_order_relaxed)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        void*& p = slots[x % slots.size()];
        if (p != nullptr) {
          heap.kfree(p);
          p = nullptr;
        } else {
          std::uint64_t r = (x >> 20) % 100;
          p = heap.kmalloc(r < 90 ? 1 + (x >> 32) % 2048 : r < 97 ? 2048 + (x >> 32) % 60000 : kLarge);
          ASSERT_NE(p, nullptr);
        }
        ops.fetch_add(1, std::memory_order_relaxed);
      }
      for (void* p : slots) heap.kfree(p);
      heap.slab().flush_local_cpu();
    });
  }
  while (ops.load() < 3000) std::this_thread::yield();

  int hung = 0;
  for (int round = 0; round < kForks && hung == 0; ++round) {
    pid_t pid;
    {
      HostHeap::ForkGuard guard(host);
      pid = fork();
    }  // unlocked in both processes
    if (pid == 0) _exit(child_work(host));
    ASSERT_GT(pid, 0) << "fork failed";
    int status = wait_with_deadline(pid, std::chrono::seconds(10));
    if (status == -1) {
      ++hung;
      ADD_FAILURE() << "child " << round << " still running after 10 s: deadlocked in the heap";
    } else {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "child " << round << ": status " << status << " (2: other threads' blocks still registered, "
          << "3/4: out of memory, 5: PMM invariants broken)";
    }
  }
  stop.store(true);
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(hung, 0);
}

}  // namespace
