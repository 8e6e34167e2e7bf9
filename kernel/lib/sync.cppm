// ktl.sync: atomics over clang builtins and a spinlock the compiler's thread-safety analysis
// understands, with lock ranks checked at run time.
//
// Lock ranks: every SpinLock has a LockRank, and its name is its rank's (to_string). A thread
// (host) or CPU (kernel) takes locks in strictly increasing rank: lock() of a rank not above
// every lock held panics naming it and the highest one held ("lock order violation: taking slab.registry
// (rank 5) while holding pmm.arena (rank 9)"). The ranks are the table "Lock order" of docs/ARCHITECTURE.md,
// top to bottom (//kernel/lib:lock_rank_test checks the two agree). Exceptions, each explicit: lock_ordered()
// takes several locks of one rank that the caller orders itself (fork's lock_all: every cache, every arena);
// try_lock() never waits, so it is not checked against the held ones (it is recorded, and what is taken
// inside it is checked). assert_held() lets a helper that requires a lock check it at run time. Checked in
// every build but -c opt (KTL_LOCK_RANKS=0 there: the benchmarks measure the allocator, not the checker).
//
// The held locks live per thread on the host; in the kernel, with one CPU, in one global
// (FIXME(smp): per CPU once CPUs run in parallel). That is sound with interrupts because a held
// SpinLock masks them (below): an interrupt handler starts only where no lock is held, and leaves
// the stack as it found it.
//
// Interrupt masking: a SpinLock masks interrupts on this CPU while it is held (the kernel's
// spin_lock_irqsave, for every lock), so an interrupt handler that takes a lock cannot spin
// forever on one its own CPU holds. Masking nests by count (xv6's pushcli/popcli): the first
// InterruptsOff of a CPU saves whether interrupts were on, the last one restores that, so locks
// may be released in any order. The kernel installs the CPU's hooks at boot
// (set_interrupt_hooks); without them (host programs, the loader) only the count is kept.
module;

#include <ktl/macros.h>
#if __STDC_HOSTED__
#include <sched.h>
#endif

export module ktl.sync;

import ktl.core;
import ktl.span;

#if !defined(KTL_LOCK_RANKS)
#define KTL_LOCK_RANKS 1
#endif

export namespace ktl {

enum class MemoryOrder : int {
  Relaxed = __ATOMIC_RELAXED,
  Acquire = __ATOMIC_ACQUIRE,
  Release = __ATOMIC_RELEASE,
  AcqRel = __ATOMIC_ACQ_REL,
  SeqCst = __ATOMIC_SEQ_CST,
};

template <class T>
  requires(is_integral<T> || is_pointer<T> || is_enum<T>)
class Atomic {
 public:
  constexpr Atomic() : value_() {}
  constexpr explicit Atomic(T v) : value_(v) {}
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  [[nodiscard]] inline T load(MemoryOrder o = MemoryOrder::SeqCst) const {
    return __atomic_load_n(&value_, static_cast<int>(o));
  }
  inline void store(T v, MemoryOrder o = MemoryOrder::SeqCst) {
    __atomic_store_n(&value_, v, static_cast<int>(o));
  }
  inline T exchange(T v, MemoryOrder o = MemoryOrder::SeqCst) {
    return __atomic_exchange_n(&value_, v, static_cast<int>(o));
  }
  inline bool compare_exchange(T& expected, T desired, MemoryOrder o = MemoryOrder::SeqCst) {
    int fail = o == MemoryOrder::AcqRel    ? __ATOMIC_ACQUIRE
               : o == MemoryOrder::Release ? __ATOMIC_RELAXED
                                           : static_cast<int>(o);
    return __atomic_compare_exchange_n(&value_, &expected, desired, false, static_cast<int>(o), fail);
  }
  T fetch_add(T v, MemoryOrder o = MemoryOrder::SeqCst)
    requires is_integral<T>
  {
    return __atomic_fetch_add(&value_, v, static_cast<int>(o));
  }
  T fetch_sub(T v, MemoryOrder o = MemoryOrder::SeqCst)
    requires is_integral<T>
  {
    return __atomic_fetch_sub(&value_, v, static_cast<int>(o));
  }

 private:
  T value_;
};

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// The kernel's locks, in the order they may be taken (see the module comment). A new lock gets a
// rank here and a row in docs/ARCHITECTURE.md's table, at the same place.
enum class LockRank : u8 {
  HeapLargeObjects = 1,  // heap.large_objects
  AddressSpace,          // address-space (one per AddressSpace)
  PageCacheBucket,       // pagecache.bucket (one per hash bucket of the page cache)
  PageCacheLru,          // pagecache.lru (the page cache's LRU lists)
  SlabRegistry,          // slab.registry
  SlabCpuRegistry,       // slab.cpu_registry
  SlabCache,             // slab.cache (an ordinary cache)
  SlabInternalCache,     // slab.internal_cache (magazines, off-slab descriptors, SlabCache objects)
  PmmArena,              // pmm.arena
  BlockQueue,            // virtio.queue (one per virtqueue of a block device)
  Scheduler,             // sched (run queues, wait queues, task states)
  Timers,                // time.timers (the one-shot timer queue)
  ReclaimRegistry,       // kswapd.registry (the registered reclaimers)
  Log,                   // klog (the kernel log; anything may log)
  Test,                  // locks of tests, above everything (never held while taking a kernel lock)
};
inline constexpr u32 kLockRankCount = to_underlying(LockRank::Test);  // Test is the last
[[nodiscard]] constexpr const char* to_string(LockRank r) {
  switch (r) {
    case LockRank::HeapLargeObjects: return "heap.large_objects";
    case LockRank::AddressSpace: return "address-space";
    case LockRank::PageCacheBucket: return "pagecache.bucket";
    case LockRank::PageCacheLru: return "pagecache.lru";
    case LockRank::SlabRegistry: return "slab.registry";
    case LockRank::SlabCpuRegistry: return "slab.cpu_registry";
    case LockRank::SlabCache: return "slab.cache";
    case LockRank::SlabInternalCache: return "slab.internal_cache";
    case LockRank::PmmArena: return "pmm.arena";
    case LockRank::BlockQueue: return "virtio.queue";
    case LockRank::Scheduler: return "sched";
    case LockRank::Timers: return "time.timers";
    case LockRank::ReclaimRegistry: return "kswapd.registry";
    case LockRank::Log: return "klog";
    case LockRank::Test: return "test";
  }
  return "unknown lock rank";
}

// How the kernel masks and unmasks interrupts on the current CPU: `disable` masks them and says
// whether they were on; `enable` unmasks them.
struct InterruptHooks {
  bool (*disable)() = nullptr;
  void (*enable)() = nullptr;
};
// The masking depth of this thread (host) or CPU (kernel), and whether interrupts were on when it
// left 0.
struct InterruptDepth {
  u32 depth = 0;
  bool restore = false;
};
namespace detail {
extern InterruptHooks g_interrupt_hooks;
#if __STDC_HOSTED__
extern thread_local InterruptDepth t_interrupt_depth;
#else
extern InterruptDepth t_interrupt_depth;  // FIXME(smp): per CPU
#endif
}  // namespace detail

// Installed once, at boot, before interrupts are first enabled and while no lock is held.
void set_interrupt_hooks(InterruptHooks hooks);
[[nodiscard]] inline u32 interrupt_mask_depth() { return detail::t_interrupt_depth.depth; }
// Whether the outermost release will unmask interrupts. A context switch happens with one lock
// held (the scheduler's), so this belongs to the task that took it, not to the CPU: the switch
// saves it before and restores it after (xv6's intena), and a new task starts with it set.
[[nodiscard]] inline bool interrupts_restore_on_release() { return detail::t_interrupt_depth.restore; }
inline void set_interrupts_restore_on_release(bool on) { detail::t_interrupt_depth.restore = on; }

// Masks interrupts on this CPU (counting), and unmasks them as they were when the count returns
// to 0.
inline void push_interrupts_off() {
  bool were_on = detail::g_interrupt_hooks.disable != nullptr && detail::g_interrupt_hooks.disable();
  InterruptDepth& d = detail::t_interrupt_depth;
  if (d.depth++ == 0) d.restore = were_on;
}
inline void pop_interrupts_off() {
  InterruptDepth& d = detail::t_interrupt_depth;
  check(d.depth > 0, "pop_interrupts_off without a matching push");
  if (--d.depth == 0 && d.restore && detail::g_interrupt_hooks.enable != nullptr) {
    detail::g_interrupt_hooks.enable();
  }
}

// RAII: `InterruptsOff off;` masks interrupts on this CPU for a scope.
class InterruptsOff {
 public:
  inline InterruptsOff() { push_interrupts_off(); }
  inline ~InterruptsOff() { pop_interrupts_off(); }
  InterruptsOff(const InterruptsOff&) = delete;
  InterruptsOff& operator=(const InterruptsOff&) = delete;
};

class SpinLock;

// The locks the current thread (host) or CPU (kernel) holds, innermost last. Locks taken with
// lock_ordered share one entry per run of equal rank.
class HeldLocks {
 public:
  static constexpr u32 kMaxDepth = 16;
  struct Entry {
    const SpinLock* lock = nullptr;  // the lock (the first of an ordered run)
    LockRank rank = LockRank::Test;
    u32 count = 0;  // locks in the entry (> 1 only for an ordered run)
    bool ordered = false;
  };

  [[nodiscard]] inline u32 depth() const { return depth_; }
  // Checks that `lock` may be taken now (rank above every lock held) and records it.
  void acquire(const SpinLock& lock, LockRank rank);
  // The same for one of several locks of one rank taken in the caller's order.
  void acquire_ordered(const SpinLock& lock, LockRank rank);
  // Records `lock`, taken without waiting (try_lock): no order check.
  void record(const SpinLock& lock, LockRank rank);
  // Forgets `lock` (panics when it is not held by this thread or CPU).
  void release(const SpinLock& lock, LockRank rank);
  void release_ordered(LockRank rank);
  [[nodiscard]] bool holds(const SpinLock& lock) const;

 private:
  void push(const SpinLock& lock, LockRank rank, bool ordered);
  [[nodiscard]] const Entry* highest() const;
  Array<Entry, kMaxDepth> entries_{};
  u32 depth_ = 0;
};

// This thread's (host) or the CPU's (kernel) held locks.
HeldLocks& held_locks();

// A test-and-test-and-set spinlock with a rank that masks interrupts on this CPU while it is held
// (push_interrupts_off). On the host it yields the CPU after a short spin, so oversubscribed test
// threads make progress.
class CAPABILITY("mutex") SpinLock {
 public:
  constexpr explicit SpinLock(LockRank rank) : rank_(rank) {}
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  inline void lock() ACQUIRE() {
    push_interrupts_off();
    if constexpr (KTL_LOCK_RANKS) held_locks().acquire(*this, rank_);
    spin();
  }
  // One of several locks of this rank that the caller takes in its own total order (fork's
  // lock_all); released with unlock_ordered, in reverse.
  inline void lock_ordered() ACQUIRE() {
    push_interrupts_off();
    if constexpr (KTL_LOCK_RANKS) held_locks().acquire_ordered(*this, rank_);
    spin();
  }
  [[nodiscard]] inline bool try_lock() TRY_ACQUIRE(true) {
    push_interrupts_off();
    bool taken = !locked_.load(MemoryOrder::Relaxed) && !locked_.exchange(true, MemoryOrder::Acquire);
    if (!taken) {
      pop_interrupts_off();
      return false;
    }
    if constexpr (KTL_LOCK_RANKS) held_locks().record(*this, rank_);
    return true;
  }
  inline void unlock() RELEASE() {
    if constexpr (KTL_LOCK_RANKS) held_locks().release(*this, rank_);
    locked_.store(false, MemoryOrder::Release);
    pop_interrupts_off();
  }
  inline void unlock_ordered() RELEASE() {
    if constexpr (KTL_LOCK_RANKS) held_locks().release_ordered(rank_);
    locked_.store(false, MemoryOrder::Release);
    pop_interrupts_off();
  }
  // Panics unless this thread (CPU) holds the lock (only where ranks are checked; elsewhere it
  // checks that someone holds it).
  inline void assert_held() const ASSERT_CAPABILITY(this) {
    if constexpr (KTL_LOCK_RANKS) {
      check(held_locks().holds(*this), "lock not held by this thread");
    } else {
      check(is_locked(), "lock not held");
    }
  }
  [[nodiscard]] inline bool is_locked() const { return locked_.load(MemoryOrder::Relaxed); }
  [[nodiscard]] inline const char* name() const { return to_string(rank_); }
  [[nodiscard]] inline LockRank rank() const { return rank_; }
  // Changes the rank of an unheld lock (a slab cache learns at set-up whether it is internal).
  inline void set_rank(LockRank rank) {
    check(!is_locked(), "SpinLock::set_rank: the lock is held");
    rank_ = rank;
  }

 private:
  inline void spin() {
    [[maybe_unused]] u32 spins = 0;
    while (locked_.exchange(true, MemoryOrder::Acquire)) {
      while (locked_.load(MemoryOrder::Relaxed)) {
        cpu_relax();
#if __STDC_HOSTED__
        if (++spins % 64 == 0) sched_yield();
#endif
      }
    }
  }

  Atomic<bool> locked_{false};
  LockRank rank_;
};

// RAII holder: `LockGuard guard(lock_);`
template <class L>
class SCOPED_CAPABILITY LockGuard {
 public:
  inline explicit LockGuard(L& lock) ACQUIRE(lock) : lock_(lock) { lock_.lock(); }
  inline ~LockGuard() RELEASE() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  L& lock_;
};
template <class L>
LockGuard(L&) -> LockGuard<L>;

}  // namespace ktl
