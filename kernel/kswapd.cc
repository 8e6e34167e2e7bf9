module;

#include <ktl/macros.h>

module kernel.kswapd;

import ktl;
import kernel.log;
import kernel.memory;
import kernel.sched;
import kernel.tasks;
import kernel.time;
import mm.heap;
import mm.pmm;
import mm.reclaim;
import mm.slab;

namespace kernel::kswapd {

using ktl::u32;
using ktl::u64;

namespace {

mm::Reclaim g_reclaim;
bool g_started = false;
sched::WaitQueue g_wait;
ktl::Atomic<bool> g_woken{false};
tasks::TaskHandle g_task;

u64 pmm_free_frames(void*) { return memory::pmm().free_frame_count(); }

class SlabReclaimer final : public mm::Reclaimer {
 public:
  const char* name() const override { return "slab"; }
  u64 reclaimable() override {
    // Empty slabs, and the objects cached in magazines and depots (their slabs may empty once
    // those are flushed back).
    u64 frames = 0, cached_bytes = 0;
    memory::heap().slab().for_each_info([&](const mm::SlabInfo& i) {
      frames += i.empty_slabs * i.frames_per_slab;
      cached_bytes += i.cached * i.stride;
    });
    return frames + cached_bytes / 4096;
  }
  mm::ReclaimBatch reclaim(u64 frames) override {
    mm::ReclaimBatch b;
    b.freed = slab_reclaim(frames);
    b.scanned = b.freed;
    return b;
  }
};
SlabReclaimer g_slab;
mm::ReclaimerRegistration g_slab_registration;

void kswapd_main(void*) {
  sched::Scheduler& s = sched::scheduler();
  for (;;) {
    (void)s.wait_until(g_wait, [] { return g_woken.load(); }, kPeriodNs);
    g_woken.store(false);
    (void)kswapd_tick();
  }
}

}  // namespace

u64 slab_reclaim(u64 frames) {
  mm::SlabAllocator& slab = memory::heap().slab();
  u64 freed = slab.reclaim(0, frames);
  if (freed < frames) {
    slab.flush_local_cpu();  // magazines back to their slabs, then what became empty
    freed += slab.reclaim(0, frames - freed);
  }
  return freed;
}

void start(u32 min_free_pct, u32 low_pct, u32 high_pct) {
  ktl::check(!g_started, "kswapd: started twice");
  auto marks = mm::make_watermarks(min_free_pct, low_pct, high_pct);
  mm::Watermarks w;
  if (marks.is_err()) {
    klog::warn(
        "kswapd: watermarks min={}% low={}% high={}%: {}; using the defaults (min {}% free, low {}%, high "
        "{}%)",
        min_free_pct, low_pct, high_pct, marks.error(), w.min_free_pct, w.low_pct, w.high_pct);
  } else {
    w = marks.value();
  }
  mm::MemStats st = memory::pmm().stats();
  u64 total = (st.free_bytes + st.used_bytes) / 4096;
  g_reclaim.init(mm::MemoryGauge{&pmm_free_frames, nullptr, total, [](void*) { return time::now_ns(); }}, w);
  auto reg = g_reclaim.register_reclaimer(g_slab);
  ktl::check_ok(reg, "kswapd: registering slab_reclaim");
  g_slab_registration = reg.release_value();
  auto t = tasks::spawn("kswapd", sched::Priority::Normal, &kswapd_main, nullptr);
  ktl::check_ok(t, "kswapd: no task");
  g_task = t.release_value();
  g_started = true;
  // The allocator's wake-up: each time free memory falls below the high watermark's level.
  u64 high_free = total * (100 - w.high_pct) / 100;
  memory::pmm().set_pressure_hook(high_free, [](void*) { wake(); }, nullptr);
  klog::info(
      "kswapd: watermarks high {}% low {}% (usage), direct reclaim below {}% free; usage now {}%; every {} "
      "ms",
      w.high_pct, w.low_pct, w.min_free_pct, mem_usage_pct(), kPeriodNs / 1'000'000);
}

bool started() { return g_started; }

FillResult fill(u32 pct) {
  FillResult r;
  constexpr u64 kObject = 2048;
  // Room for all of memory in objects: reclaim may free memory while the table fills.
  mm::MemStats st = memory::pmm().stats();
  ktl::usize max_objects = static_cast<ktl::usize>((st.free_bytes + st.used_bytes) / kObject + 1024);
  auto* table = static_cast<void**>(mm::kmalloc(max_objects * sizeof(void*)));
  if (table == nullptr) {
    r.no_table = true;
    return r;
  }
  KTL_UNSAFE_BUFFER_BEGIN  // kmalloc returned max_objects pointers
  auto objects = ktl::Span<void*>::from_raw(table, max_objects);
  KTL_UNSAFE_BUFFER_END
  ktl::usize n = 0;
  while (n < objects.size() && mem_usage_pct() < pct) {
    void* p = mm::kmalloc(kObject);
    if (p == nullptr) {
      r.out_of_memory = true;
      break;
    }
    objects[n++] = p;
  }
  r.objects = n;
  r.usage_peak = mem_usage_pct();
  for (ktl::usize i = 0; i < n; ++i) mm::kfree(objects[i]);
  mm::kfree(table);
  r.usage_after = mem_usage_pct();
  return r;
}

u32 mem_usage_pct() { return g_reclaim.mem_usage_pct(); }

mm::Reclaim::TickResult kswapd_tick() { return g_reclaim.kswapd_tick(time::now_ns()); }

ktl::Result<mm::ReclaimerRegistration, mm::RegisterError> kswapd_register_reclaimer(mm::Reclaimer& r) {
  return g_reclaim.register_reclaimer(r);
}

void wake() {
  if (!g_started) return;
  g_woken.store(true);
  (void)sched::scheduler().wake_all(g_wait);
}

mm::Reclaim& engine() { return g_reclaim; }

}  // namespace kernel::kswapd
