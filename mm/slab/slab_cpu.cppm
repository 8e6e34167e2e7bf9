// mm.slab.cpu: the CPU-local layer under the slab allocator's magazines (Bonwick & Adams 2001).
//
// Each CPU owns one CpuBlock: a row of CpuSlots, one per cache that has a per-CPU layer (a cache
// is given a slot index when it is created). A slot holds the CPU's two magazines of that cache
// ("loaded" and "previous"). The fast paths of slab_alloc/slab_free touch only their own CPU's
// slot, so they take no lock and write no shared cache line.
//
// What "own CPU" means:
//   * Kernel: one block per CPU (kMaxCpus of them, static). CpuPin masks interrupts on the local
//     CPU for its lifetime, so an interrupt handler that allocates cannot interleave with the
//     task it interrupted, and the task cannot migrate in between: it holds an mm::arch::CpuPin
//     (the CPU port's pin/unpin/id hooks, mm.arch).
//   * Host: one block per thread (thread_local, initial-exec TLS), a thread standing in for a CPU.
//     CpuPin is empty: a thread is never interrupted by itself (signal handlers must not
//     allocate, as with malloc). Threads register their block the first time they go down a slow
//     path, and a pthread key destructor flushes it when the thread exits.
//
// Remote access: kmem_cache_destroy drains the destroyed cache's slot on every block. The
// contract that makes this race-free without a lock per slot: every use of a cache happens-before
// its destruction (as for any object), so no CPU touches that slot while it is drained. The block
// registry lock serialises the drain against thread exit (which flushes every slot of its block).
//
// Hot functions are marked `inline`: in a module, a function defined in its class is not inline
// (P1779), and only inline ones can be inlined into importers.
//
// LOCK ORDER (see mm/slab/slab.cppm for the whole picture): slab.cpu_registry -> slab.cache -> pmm.arena.
module;

#include <ktl/macros.h>
#if __STDC_HOSTED__
#include <pthread.h>
#endif

export module mm.slab.cpu;

import ktl;
import mm.arch;

export namespace mm::slab_cpu {

using ktl::u32;
using ktl::u64;
using ktl::usize;

inline constexpr u32 kMaxCpus = 64;
// Caches with a per-CPU layer that can exist at once (kmalloc's classes need about 45).
inline constexpr u32 kMaxSlots = 192;
inline constexpr u32 kNoSlot = ~u32{0};

// A magazine: a stack of up to `capacity` free objects of one cache. Allocated from the slab
// allocator's magazine caches; `round` is really `capacity` entries long (the object is sized so).
struct Magazine {
  u32 rounds;
  u32 capacity;
  Magazine* next;  // depot list link
  void* round[1];

  [[nodiscard]] inline bool empty() const { return rounds == 0; }
  [[nodiscard]] inline bool full() const { return rounds == capacity; }
  // Contract: !empty().
  [[nodiscard]] inline void* pop() {
    KTL_UNSAFE_BUFFER_BEGIN  // rounds <= capacity, and the magazine holds `capacity` entries
    return round[--rounds];
    KTL_UNSAFE_BUFFER_END
  }
  // Contract: !full().
  inline void push(void* object) {
    KTL_UNSAFE_BUFFER_BEGIN  // rounds < capacity, and the magazine holds `capacity` entries
    round[rounds++] = object;
    KTL_UNSAFE_BUFFER_END
  }
  // The most recently pushed object (null when empty).
  [[nodiscard]] inline void* top() const {
    KTL_UNSAFE_BUFFER_BEGIN  // rounds - 1 < capacity when rounds > 0
    return rounds == 0 ? nullptr : round[rounds - 1];
    KTL_UNSAFE_BUFFER_END
  }
  [[nodiscard]] static constexpr usize bytes_for(u32 capacity) {
    return sizeof(Magazine) + (capacity - 1) * sizeof(void*);
  }
};

struct CpuSlot {
  Magazine* loaded;
  Magazine* previous;
};

enum class BlockState : u32 {
  Fresh = 0,  // never used the slow path: not registered yet (host)
  Live = 1,   // registered
  Dead = 2,   // the thread is exiting: caches bypass the per-CPU layer from now on (host)
};

struct CpuBlock {
  ktl::Array<CpuSlot, kMaxSlots> slots;
  BlockState state;
  CpuBlock* next;  // registry link
};

// The registry of blocks (every CPU's in the kernel, every live thread's on the host).
inline ktl::SpinLock g_registry_lock{ktl::LockRank::SlabCpuRegistry};
inline CpuBlock* g_registry GUARDED_BY(g_registry_lock) = nullptr;

#if __STDC_HOSTED__
// Zero-initialised, trivially destructible: no TLS guard and no destructor registration, so the
// block is usable from inside malloc (the preload library) at any point of a thread's life.
inline thread_local CpuBlock t_block __attribute__((tls_model("initial-exec")));
#else
inline ktl::Array<CpuBlock, kMaxCpus> g_blocks{};
#endif

// Keeps the caller on its CPU (kernel: interrupts masked) while it works on this CPU's block.
class CpuPin : ktl::NoCopy {
 public:
#if __STDC_HOSTED__
  [[nodiscard]] inline CpuBlock& block() { return t_block; }
#else
  [[nodiscard]] inline CpuBlock& block() { return g_blocks[pin_.cpu()]; }

 private:
  arch::CpuPin pin_;
#endif
};

// What a thread's exit does with its block: set by the slab allocator (it returns every
// magazine to its cache). Called with the registry lock held.
using FlushFn = void (*)(CpuBlock& block);
inline FlushFn g_flush_on_exit = nullptr;

#if __STDC_HOSTED__
namespace detail {
inline void on_thread_exit(void* arg) {
  auto* block = static_cast<CpuBlock*>(arg);
  ktl::LockGuard guard(g_registry_lock);
  if (g_flush_on_exit != nullptr) g_flush_on_exit(*block);
  for (CpuBlock** p = &g_registry; *p != nullptr; p = &(*p)->next) {
    if (*p == block) {
      *p = block->next;
      break;
    }
  }
  block->state = BlockState::Dead;
}
inline pthread_key_t g_exit_key;
inline pthread_once_t g_exit_once = PTHREAD_ONCE_INIT;
inline void make_key() { (void)pthread_key_create(&g_exit_key, &on_thread_exit); }
}  // namespace detail
#endif

// Registers `block` (the caller's own, on a slow path) if it is Fresh. Returns whether the block
// may hold magazines (false once the thread is exiting).
inline bool ensure_registered(CpuBlock& block) {
  if (block.state == BlockState::Live) return true;
  if (block.state == BlockState::Dead) return false;
#if __STDC_HOSTED__
  pthread_once(&detail::g_exit_once, &detail::make_key);
  // Keys below PTHREAD_KEY_2NDLEVEL_SIZE live inside the thread descriptor: no allocation here.
  if (pthread_setspecific(detail::g_exit_key, &block) != 0) return false;
#endif
  ktl::LockGuard guard(g_registry_lock);
  block.next = g_registry;
  g_registry = &block;
  block.state = BlockState::Live;
  return true;
}

#if __STDC_HOSTED__
// In a fork() child, with the registry lock held (SlabAllocator::lock_all took it before the
// fork): the calling thread is the only one left, so every other block leaves the registry. Their
// memory is the parent's other threads' TLS, which the C library reuses (and zeroes) for the
// child's new threads: left in the list, such a block would be linked in twice once its new
// thread registers it. The magazines they hold are simply left: the objects cached in them stay
// allocated in the child (a leak bounded by what those threads had cached), nothing else is lost.
inline void drop_other_threads_blocks_after_fork() REQUIRES(g_registry_lock) {
  if (t_block.state == BlockState::Live) {
    t_block.next = nullptr;
    g_registry = &t_block;
  } else {
    g_registry = nullptr;
  }
}
#endif

// Calls f(block) for every registered block, with the registry lock held.
template <class F>
void for_each_block(F&& f) {
  ktl::LockGuard guard(g_registry_lock);
  for (CpuBlock* b = g_registry; b != nullptr; b = b->next) f(*b);
}

}  // namespace mm::slab_cpu
