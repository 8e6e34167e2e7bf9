// ktl.sync: atomics over clang builtins and a spinlock the compiler's thread-safety analysis
// understands. The lock order across the kernel is the table in docs/ARCHITECTURE.md ("Lock
// order"); each lock carries its name from that table (FIXME(smp): a debug build checks the order
// at run time once more than one lock can be held at once on different CPUs).
module;

#include <ktl/macros.h>
#if __STDC_HOSTED__
#include <sched.h>
#endif

export module ktl.sync;

import ktl.core;

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

// A test-and-test-and-set spinlock. In the kernel it is also where interrupt masking will go
// (FIXME(irq): IrqSpinLock once interrupt handlers take locks). On the host it yields the CPU
// after a short spin, so oversubscribed test threads make progress.
class CAPABILITY("mutex") SpinLock {
 public:
  constexpr explicit SpinLock(const char* name = "spinlock") : name_(name) {}
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  inline void lock() ACQUIRE() {
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
  [[nodiscard]] inline bool try_lock() TRY_ACQUIRE(true) {
    return !locked_.load(MemoryOrder::Relaxed) && !locked_.exchange(true, MemoryOrder::Acquire);
  }
  inline void unlock() RELEASE() { locked_.store(false, MemoryOrder::Release); }
  [[nodiscard]] inline bool is_locked() const { return locked_.load(MemoryOrder::Relaxed); }
  [[nodiscard]] inline const char* name() const { return name_; }

 private:
  Atomic<bool> locked_{false};
  const char* name_;
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
