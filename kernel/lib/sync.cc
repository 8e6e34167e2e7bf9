// Implementation of ktl.sync's lock-rank checks (see the module comment).
module;

#include <ktl/macros.h>

module ktl.sync;

import ktl.core;
import ktl.format;
import ktl.span;

namespace ktl {

namespace {

#if __STDC_HOSTED__
thread_local HeldLocks t_held;
#else
HeldLocks t_held;  // one CPU, no preemption yet (FIXME(smp): per CPU)
#endif

[[noreturn]] void order_violation(const char* how, LockRank taking, LockRank holding) {
  InlineString<192> message;
  format_to(message, "lock order violation: {} {} (rank {}) while holding {} (rank {})", how,
            to_string(taking), u32{to_underlying(taking)}, to_string(holding), u32{to_underlying(holding)});
  panic(message.c_str());
}

}  // namespace

namespace detail {
InterruptHooks g_interrupt_hooks;
#if __STDC_HOSTED__
thread_local InterruptDepth t_interrupt_depth;
#else
InterruptDepth t_interrupt_depth;
#endif
}  // namespace detail

void set_interrupt_hooks(InterruptHooks hooks) {
  check(detail::t_interrupt_depth.depth == 0, "set_interrupt_hooks while interrupts are masked by a lock");
  detail::g_interrupt_hooks = hooks;
}

HeldLocks& held_locks() { return t_held; }

void HeldLocks::push(const SpinLock& lock, LockRank rank, bool ordered) {
  if (depth_ == kMaxDepth) {
    InlineString<128> message;
    format_to(message, "lock ranks: more than {} locks held at once (taking {})", kMaxDepth, to_string(rank));
    panic(message.c_str());
  }
  entries_[depth_++] = Entry{&lock, rank, 1, ordered};
}

// The held entry of the highest rank (usually the innermost; not after a try_lock of a lower one).
const HeldLocks::Entry* HeldLocks::highest() const {
  const Entry* best = nullptr;
  for (u32 i = 0; i < depth_; ++i) {
    if (best == nullptr || to_underlying(entries_[i].rank) > to_underlying(best->rank)) best = &entries_[i];
  }
  return best;
}

void HeldLocks::acquire(const SpinLock& lock, LockRank rank) {
  const Entry* top = highest();
  if (top != nullptr && to_underlying(rank) <= to_underlying(top->rank)) {
    order_violation("taking", rank, top->rank);
  }
  push(lock, rank, false);
}

void HeldLocks::acquire_ordered(const SpinLock& lock, LockRank rank) {
  if (depth_ > 0) {
    Entry& top = entries_[depth_ - 1];
    if (top.ordered && top.rank == rank) {
      ++top.count;
      return;
    }
    const Entry* high = highest();
    if (to_underlying(rank) <= to_underlying(high->rank))
      order_violation("taking (ordered)", rank, high->rank);
  }
  push(lock, rank, true);
}

void HeldLocks::record(const SpinLock& lock, LockRank rank) { push(lock, rank, false); }

void HeldLocks::release(const SpinLock& lock, LockRank rank) {
  // Usually the innermost; hand-over-hand code may release an outer one first.
  for (u32 i = depth_; i-- > 0;) {
    if (entries_[i].lock != &lock || entries_[i].ordered) continue;
    for (u32 j = i; j + 1 < depth_; ++j) entries_[j] = entries_[j + 1];
    --depth_;
    return;
  }
  InlineString<128> message;
  format_to(message, "lock ranks: unlocking {}, which this thread does not hold", to_string(rank));
  panic(message.c_str());
}

void HeldLocks::release_ordered(LockRank rank) {
  if (depth_ > 0) {
    Entry& top = entries_[depth_ - 1];
    if (top.ordered && top.rank == rank) {
      if (--top.count == 0) --depth_;
      return;
    }
  }
  InlineString<128> message;
  format_to(message, "lock ranks: unlock_ordered of {} out of order", to_string(rank));
  panic(message.c_str());
}

// An ordered run records only its first lock: any locked lock of the run's rank counts as held.
bool HeldLocks::holds(const SpinLock& lock) const {
  for (u32 i = 0; i < depth_; ++i) {
    const Entry& e = entries_[i];
    if (e.lock == &lock || (e.ordered && e.rank == lock.rank() && lock.is_locked())) return true;
  }
  return false;
}

}  // namespace ktl
