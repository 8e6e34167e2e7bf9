// kernel.kswapd: mm.reclaim in the running kernel. The `kswapd` task wakes every 100 ms, when an
// allocation takes free memory below the high watermark (the PMM's pressure hook), or when an
// allocation waits for memory, and runs kswapd_tick(); the slab allocator is registered at start
// as the reclaimer `slab` (slab_reclaim: the empty slabs of every cache, this CPU's magazines
// flushed first when that frees too little). An allocation that may sleep and finds memory below
// the min watermark reclaims directly (kernel/mm_context.cc). The design documents' names are
// the API: mem_usage_pct, kswapd_tick, kswapd_register_reclaimer, slab_reclaim.
module;

#include <ktl/macros.h>

export module kernel.kswapd;

import ktl;
import mm.reclaim;

export namespace kernel::kswapd {

inline constexpr ktl::u64 kPeriodNs = 100'000'000;

// Validates the watermarks (a warning and the defaults if they do not fit), sets up reclaim over
// the kernel's PMM, registers slab_reclaim and starts the task. After kernel.tasks.
void start(ktl::u32 min_free_pct, ktl::u32 low_pct, ktl::u32 high_pct);
[[nodiscard]] bool started();

[[nodiscard]] ktl::u32 mem_usage_pct();
// One round now, in the caller (the kswapd task calls it; tests may).
mm::Reclaim::TickResult kswapd_tick();
[[nodiscard]] ktl::Result<mm::ReclaimerRegistration, mm::RegisterError> kswapd_register_reclaimer(
    mm::Reclaimer& r);
// Frees empty slabs (up to about `frames`; every empty one in practice); returns frames freed.
ktl::u64 slab_reclaim(ktl::u64 frames);
// Grows the slab caches until usage reaches `pct` (2 KiB kmalloc objects), then frees the objects:
// their slabs stay cached, empty, until reclaim takes them (the shell's `fill`, test=kswapd).
// Stops early when memory runs out. Needs a table of pointers from the heap.
struct FillResult {
  ktl::u64 objects = 0;
  ktl::u32 usage_peak = 0;   // after the allocations
  ktl::u32 usage_after = 0;  // after the frees
  bool out_of_memory = false;
  bool no_table = false;
};
FillResult fill(ktl::u32 pct);
// Wakes the task (allocation slow path; any context).
void wake();
[[nodiscard]] mm::Reclaim& engine();

}  // namespace kernel::kswapd
