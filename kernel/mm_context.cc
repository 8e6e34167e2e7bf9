// The kernel's allocation-context hooks of mm.arch: an interrupt handler allocates as
// AllocContext::Atomic (kernel.irq knows whether one runs). An allocation that may block and found
// no memory wakes kswapd; below the min watermark it reclaims directly (kernel.kswapd's engine,
// one reclaim at a time) and retries at once if that freed something; otherwise it sleeps 10 ms
// and retries, up to 5 times, where sleeping is allowed: in a task, outside interrupt handlers,
// holding no spin lock.
#include <ktl/macros.h>

import ktl;
import kernel.irq;
import kernel.kswapd;
import kernel.sched;
import kernel.time;
import mm.reclaim;

namespace {
constexpr ktl::u32 kAttempts = 5;
constexpr ktl::u64 kWaitNs = 10 * kernel::time::kNsPerMs;
}  // namespace

extern "C" bool ferrite_arch_in_interrupt() { return kernel::irq::in_interrupt(); }

extern "C" bool ferrite_arch_wait_for_memory(ktl::u32 attempt) {
  if (attempt >= kAttempts) return false;
  if (kernel::irq::in_interrupt() || ktl::interrupt_mask_depth() != 0) return false;
  kernel::sched::Scheduler& s = kernel::sched::scheduler();
  if (!s.initialized()) return false;
  if (kernel::kswapd::started()) {
    kernel::kswapd::wake();
    mm::Reclaim& r = kernel::kswapd::engine();
    if (r.below_min() && r.direct_reclaim(mm::Reclaim::kBatch) != 0) return true;
  }
  s.sleep_for(kWaitNs);
  return true;
}
