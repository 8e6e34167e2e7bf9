// Host tests of mm.reclaim on a small simulated machine: 64 frames whose free count the fake
// reclaimers raise when they "free" what they hold. The watermarks' validation, kswapd woken at
// high and stopping at low, direct reclaim below min, no recursion, no livelock with a reclaimer
// that lies, RAII registration, and the statistics.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "testing/host_runtime.h"

import ktl;
import mm.reclaim;

namespace {

using mm::Reclaim;
using mm::ReclaimBatch;
using mm::WatermarkError;

constexpr ktl::u64 kFrames = 64;

struct Machine {
  ktl::u64 free = kFrames;
  static ktl::u64 read(void* self) { return static_cast<Machine*>(self)->free; }
  ktl::u64 now = 0;             // the simulated clock (ns)
  ktl::u64 ns_per_reclaim = 0;  // what each reclaim call costs on it
  static ktl::u64 clock(void* self) { return static_cast<Machine*>(self)->now; }
  mm::MemoryGauge gauge() { return {&Machine::read, this, kFrames, nullptr}; }
  mm::MemoryGauge timed_gauge() { return {&Machine::read, this, kFrames, &Machine::clock}; }
};

// Holds `held` frames it can give back (a cache of empty slabs, say).
class Cache final : public mm::Reclaimer {
 public:
  Cache(Machine& m, const char* name, ktl::u64 held) : m_(m), name_(name), held_(held) { m_.free -= held; }
  const char* name() const override { return name_; }
  ktl::u64 reclaimable() override { return lie_ ? 1000 : held_; }
  ReclaimBatch reclaim(ktl::u64 frames) override {
    ++calls;
    if (inner != nullptr) inner_result = inner->direct_reclaim(1);  // a reclaimer that allocates
    if (lie_) return {frames, 0};
    m_.now += m_.ns_per_reclaim;
    ktl::u64 n = ktl::min(frames, held_);
    held_ -= n;
    m_.free += n;
    return {n * 2, n};
  }
  void lie() { lie_ = true; }
  // `n` frames in use elsewhere become frames this cache holds (objects freed into its slabs).
  void give(ktl::u64 n, Machine&) { held_ += n; }
  ktl::u64 held() const { return held_; }
  int calls = 0;
  Reclaim* inner = nullptr;
  ktl::u64 inner_result = 99;

 private:
  Machine& m_;
  const char* name_;
  ktl::u64 held_;
  bool lie_ = false;
};

TEST(Watermarks, AreValidatedWithAClearError) {
  auto ok = mm::make_watermarks(5, 60, 80);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok.value().high_pct, 80u);
  EXPECT_EQ(mm::make_watermarks(5, 60, 101).error(), WatermarkError::HighAbove100);
  EXPECT_EQ(mm::make_watermarks(5, 0, 80).error(), WatermarkError::LowIsZero);
  EXPECT_EQ(mm::make_watermarks(5, 80, 80).error(), WatermarkError::LowNotBelowHigh);
  EXPECT_EQ(mm::make_watermarks(60, 60, 80).error(), WatermarkError::MinNotBelowLow);
  EXPECT_EQ(mm::make_watermarks(0, 60, 80).error(), WatermarkError::MinNotBelowLow);
  EXPECT_EQ(mm::make_watermarks(25, 60, 80).error(), WatermarkError::MinOverlapsHigh);
  ktl::check_enum_text<WatermarkError>();
  EXPECT_EQ(mm::usage_pct(16, 64), 75u);
  EXPECT_EQ(mm::usage_pct(64, 64), 0u);
  EXPECT_EQ(mm::usage_pct(0, 0), 0u);
}

TEST(Kswapd, RunsAtHighAndStopsAtLow) {
  Machine m;
  auto r = std::make_unique<Reclaim>();
  r->init(m.gauge(), mm::Watermarks{});
  Cache slabs(m, "slab", 30), pages(m, "pagecache", 20);
  auto reg1 = r->register_reclaimer(slabs);
  auto reg2 = r->register_reclaimer(pages);
  ASSERT_TRUE(reg1.is_ok() && reg2.is_ok());
  // 50 of 64 frames held: 78 % used, below high: nothing to do.
  EXPECT_EQ(r->mem_usage_pct(), 78u);
  EXPECT_FALSE(r->kswapd_tick(0).ran);
  m.free -= 2;  // 81 %
  EXPECT_TRUE(r->above_high());
  Reclaim::TickResult t = r->kswapd_tick(1000);
  EXPECT_TRUE(t.ran);
  EXPECT_FALSE(t.gave_up);
  EXPECT_LE(t.usage_after, 60u);
  EXPECT_GE(t.usage_after, 58u);                 // it stopped at low (one frame is 1.6 %), not at empty
  EXPECT_EQ(t.freed, 52u - (kFrames - m.free));  // frames it gave back
  EXPECT_EQ(t.freed, 14u);                       // 52 used -> 38 used = 59 %
  EXPECT_EQ(slabs.calls, 1);                     // one batch of what was needed was enough
  // The next time round robin continues: a second wake-up.
  m.free -= 20;
  t = r->kswapd_tick(2000);
  EXPECT_TRUE(t.ran);
  EXPECT_LE(t.usage_after, 60u);
  ktl::Array<mm::ReclaimerStats, 4> rs{};
  ASSERT_EQ(r->reclaimer_stats(rs.span()), 2u);
  EXPECT_EQ(std::string(rs[0].name), "slab");
  EXPECT_EQ(rs[0].scanned, rs[0].freed * 2);
  mm::ReclaimStats s = r->stats();
  EXPECT_EQ(s.ticks, 3u);
  EXPECT_EQ(s.wakeups, 2u);
  EXPECT_EQ(s.freed, rs[0].freed + rs[1].freed);
}

TEST(Kswapd, OnceStartedItGoesOnBetweenHighAndLowUntilLow) {
  Machine m;
  auto r = std::make_unique<Reclaim>();
  r->init(m.gauge(), mm::Watermarks{});
  Cache c(m, "slab", 5);
  m.free -= 50;  // 55 of 64 used: 85 %, but only 5 frames are reclaimable now
  auto reg = r->register_reclaimer(c);
  Reclaim::TickResult t = r->kswapd_tick(0);
  EXPECT_TRUE(t.ran);
  EXPECT_TRUE(t.gave_up);
  EXPECT_EQ(t.usage_after, 78u);  // below high, above low
  EXPECT_TRUE(r->active());
  // More becomes reclaimable (20 used frames freed into the cache's slabs): the next tick goes on
  // to low although usage is below high.
  c.give(20, m);
  t = r->kswapd_tick(1);
  EXPECT_TRUE(t.ran);
  EXPECT_LE(t.usage_after, 60u);
  EXPECT_FALSE(r->active());
  // Inactive again: between low and high nothing runs.
  m.free -= 10;
  EXPECT_FALSE(r->kswapd_tick(2).ran);
  EXPECT_EQ(r->stats().wakeups, 1u);
}

TEST(Kswapd, TimeAboveHighIsAccounted) {
  Machine m;
  auto r = std::make_unique<Reclaim>();
  r->init(m.gauge(), mm::Watermarks{});
  Cache liar(m, "stuck", 60);  // 94 % used and nothing comes back
  liar.lie();
  auto reg = r->register_reclaimer(liar);
  ASSERT_TRUE(reg.is_ok());
  (void)r->kswapd_tick(1'000);
  (void)r->kswapd_tick(101'000);
  (void)r->kswapd_tick(201'000);
  EXPECT_EQ(r->stats().ns_above_high, 200'000u);
}

TEST(Kswapd, ALyingReclaimerCannotLivelockIt) {
  Machine m;
  auto r = std::make_unique<Reclaim>();
  r->init(m.gauge(), mm::Watermarks{});
  Cache liar(m, "liar", 60);
  liar.lie();
  auto reg = r->register_reclaimer(liar);
  ASSERT_TRUE(reg.is_ok());
  ferrite_host::LogCapture log;
  Reclaim::TickResult t = r->kswapd_tick(0);
  EXPECT_TRUE(t.ran);
  EXPECT_TRUE(t.gave_up);
  EXPECT_EQ(t.freed, 0u);
  EXPECT_EQ(liar.calls, static_cast<int>(Reclaim::kMaxRounds));
  (void)r->kswapd_tick(1);  // a second tick gives up too, without a second log line
  EXPECT_EQ(log.lines.size(), 1u);
  EXPECT_TRUE(log.contains("reclaim: liar claimed 1000 reclaimable frames but freed none"));
  EXPECT_EQ(r->stats().gave_up, 2u);
  ktl::Array<mm::ReclaimerStats, 1> rs{};
  ASSERT_EQ(r->reclaimer_stats(rs.span()), 1u);
  EXPECT_EQ(rs[0].fruitless, 2u * Reclaim::kMaxRounds);
}

TEST(Kswapd, NothingToReclaimEndsAtOnce) {
  Machine m;
  auto r = std::make_unique<Reclaim>();
  r->init(m.gauge(), mm::Watermarks{});
  Cache empty(m, "empty", 0);
  auto reg = r->register_reclaimer(empty);
  m.free = 2;  // used by someone who cannot give it back
  Reclaim::TickResult t = r->kswapd_tick(0);
  EXPECT_TRUE(t.gave_up);
  EXPECT_EQ(empty.calls, 0);  // asked what it had (nothing) but never to reclaim
}

// On a simulated clock: an episode lasts from the tick that saw high to the call that reached low
// (not to the tick's start), and each direct reclaim's stall goes into the histogram.
TEST(ReclaimStats, EpisodeAndStallDurationsOnASimulatedClock) {
  Machine m;
  m.ns_per_reclaim = 3'000'000;  // 3 ms per call
  auto r = std::make_unique<Reclaim>();
  r->init(m.timed_gauge(), mm::Watermarks{});
  Cache c(m, "slab", 58);  // 90 % used
  auto reg = r->register_reclaimer(c);
  m.now = 10'000'000;
  Reclaim::TickResult t = r->kswapd_tick(m.now);
  ASSERT_TRUE(t.ran);
  mm::ReclaimStats s = r->stats();
  EXPECT_EQ(s.episodes, 1u);
  // 58 held, 64 frames: to 60 % needs ~20 frames, one batch of 32 asked: one call, 3 ms.
  EXPECT_EQ(s.last_high_to_low_ns, 3'000'000u);
  EXPECT_EQ(s.max_high_to_low_ns, 3'000'000u);
  // Direct reclaim: 2 stalls of 3 ms (one call each), one of 6 ms (the batch needs two calls).
  Cache d(m, "pages", 0);
  auto reg2 = r->register_reclaimer(d);
  for (int i = 0; i < 2; ++i) {
    c.give(40, m);
    (void)r->direct_reclaim(1);
  }
  s = r->stats();
  EXPECT_EQ(s.direct_stalls.samples, 2u);
  EXPECT_EQ(s.direct_stalls.total_ns, 6'000'000u);
  EXPECT_EQ(s.direct_stalls.max_ns, 3'000'000u);
  // 3 ms = 3000 us lies in [2048, 4096) us: bucket 11; the percentile is capped by the maximum.
  EXPECT_EQ(s.direct_stalls.counts[11], 2u);
  EXPECT_EQ(s.direct_stalls.percentile_ns(99), 3'000'000u);
  mm::DurationHistogram h;
  EXPECT_EQ(h.percentile_ns(99), 0u);
  for (int i = 0; i < 99; ++i) h.add(500);  // under 1 us: bucket 0
  h.add(1'000'000'000);                     // one second
  EXPECT_EQ(h.percentile_ns(50), 2000u);    // bucket 0's upper bound, 2 us
  EXPECT_EQ(h.percentile_ns(99), 2000u);    // 99 of 100 samples are in bucket 0
  EXPECT_EQ(h.percentile_ns(100), 1'000'000'000u);
  // Without a clock nothing is measured.
  Machine m2;
  auto r2 = std::make_unique<Reclaim>();
  r2->init(m2.gauge(), mm::Watermarks{});
  Cache c2(m2, "slab", 58);
  auto reg3 = r2->register_reclaimer(c2);
  (void)r2->kswapd_tick(1);
  EXPECT_EQ(r2->stats().episodes, 1u);
  EXPECT_EQ(r2->stats().last_high_to_low_ns, 0u);
}

TEST(DirectReclaim, BelowMinAnAllocatorReclaimsABatchAndNeverRecurses) {
  Machine m;
  auto r = std::make_unique<Reclaim>();
  r->init(m.gauge(), mm::Watermarks{});
  Cache c(m, "slab", 62);  // 2 of 64 free: 3 % < min 5 %
  auto reg = r->register_reclaimer(c);
  EXPECT_TRUE(r->below_min());
  c.inner = r.get();  // the reclaimer allocates, and its allocation tries direct reclaim
  ktl::u64 freed = r->direct_reclaim(4);
  EXPECT_EQ(freed, Reclaim::kBatch);  // at least a batch
  EXPECT_EQ(c.inner_result, 0u);      // the nested attempt got nothing: no recursion
  EXPECT_FALSE(r->below_min());
  EXPECT_FALSE(r->reclaiming());
  mm::ReclaimStats s = r->stats();
  EXPECT_EQ(s.direct, 1u);
  EXPECT_EQ(s.direct_freed, Reclaim::kBatch);
  EXPECT_EQ(s.direct_busy, 1u);
}

TEST(Registration, IsRaiiAndBounded) {
  Machine m;
  auto r = std::make_unique<Reclaim>();
  r->init(m.gauge(), mm::Watermarks{});
  std::vector<std::unique_ptr<Cache>> caches;
  std::vector<mm::ReclaimerRegistration> regs;
  for (ktl::u32 i = 0; i < Reclaim::kMaxReclaimers; ++i) {
    caches.push_back(std::make_unique<Cache>(m, "c", 1));
    auto reg = r->register_reclaimer(*caches.back());
    ASSERT_TRUE(reg.is_ok());
    regs.push_back(reg.release_value());
  }
  Cache extra(m, "extra", 1);
  EXPECT_EQ(r->register_reclaimer(extra).error(), mm::RegisterError::Full);
  regs.pop_back();  // unregisters one
  auto again = r->register_reclaimer(extra);
  EXPECT_TRUE(again.is_ok());
  ktl::Array<mm::ReclaimerStats, 16> rs{};
  EXPECT_EQ(r->reclaimer_stats(rs.span()), static_cast<size_t>(Reclaim::kMaxReclaimers));
  regs.clear();
  {
    auto gone = ktl::move(again);
  }
  EXPECT_EQ(r->reclaimer_stats(rs.span()), 0u);
  ktl::check_enum_text<mm::RegisterError>();
}

TEST(Registration, DestroyingTheEngineWithReclaimersPanics) {
  EXPECT_DEATH(
      {
        Machine m;
        auto r = std::make_unique<Reclaim>();
        r->init(m.gauge(), mm::Watermarks{});
        Cache c(m, "c", 1);
        auto reg = r->register_reclaimer(c).release_value();
        r.reset();
      },
      "a Reclaim was destroyed with reclaimers registered");
}

}  // namespace
