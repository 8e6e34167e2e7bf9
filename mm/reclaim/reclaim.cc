module;

#include <ktl/macros.h>

module mm.reclaim;

import ktl;

namespace mm {

ktl::Result<Watermarks, WatermarkError> make_watermarks(u32 min_free_pct, u32 low_pct, u32 high_pct) {
  if (high_pct > 100) return ktl::Err(WatermarkError::HighAbove100);
  if (low_pct == 0) return ktl::Err(WatermarkError::LowIsZero);
  if (low_pct >= high_pct) return ktl::Err(WatermarkError::LowNotBelowHigh);
  if (min_free_pct == 0 || min_free_pct >= low_pct) return ktl::Err(WatermarkError::MinNotBelowLow);
  if (100 - min_free_pct <= high_pct) return ktl::Err(WatermarkError::MinOverlapsHigh);
  return Watermarks{min_free_pct, low_pct, high_pct};
}

// --- registration ----------------------------------------------------------------------------------

ReclaimerRegistration& ReclaimerRegistration::operator=(ReclaimerRegistration&& o) {
  if (this != &o) {
    if (owner_ != nullptr) owner_->unregister(slot_);
    owner_ = ktl::exchange(o.owner_, nullptr);
    slot_ = o.slot_;
  }
  return *this;
}

ReclaimerRegistration::~ReclaimerRegistration() {
  if (owner_ != nullptr) owner_->unregister(slot_);
}

Reclaim::~Reclaim() {
  ktl::LockGuard guard(lock_);
  for (const Slot& s : slots_)
    ktl::check(s.reclaimer == nullptr, "a Reclaim was destroyed with reclaimers registered");
}

void Reclaim::init(const MemoryGauge& gauge, const Watermarks& marks) {
  ktl::check(gauge.free_frames != nullptr && gauge.total_frames != 0, "Reclaim::init: no memory gauge");
  gauge_ = gauge;
  marks_ = marks;
}

ktl::Result<ReclaimerRegistration, RegisterError> Reclaim::register_reclaimer(Reclaimer& r) {
  ktl::LockGuard guard(lock_);
  for (u32 i = 0; i < kMaxReclaimers; ++i) {
    Slot& s = slots_[i];
    if (s.reclaimer != nullptr) continue;
    s = Slot{};
    s.reclaimer = &r;
    s.stats.name = r.name();
    return ReclaimerRegistration(this, i);
  }
  return ktl::Err(RegisterError::Full);
}

void Reclaim::unregister(u32 slot) {
  // A call in progress (kswapd or a direct reclaimer, possibly preempted) ends first.
  // FIXME(sched): sleep on a wait queue instead of spinning; registrations live as long as the
  // kernel today.
  for (;;) {
    {
      ktl::LockGuard guard(lock_);
      Slot& s = slots_[slot];
      if (!s.in_call) {
        s = Slot{};
        return;
      }
    }
    ktl::cpu_relax();
  }
}

// --- gauges ------------------------------------------------------------------------------------------

void DurationHistogram::add(u64 ns) {
  u64 us = ns / 1000;
  u32 bucket = 0;
  while (us > 1 && bucket + 1 < kBuckets) {
    us >>= 1;
    ++bucket;
  }
  ++counts[bucket];
  ++samples;
  total_ns += ns;
  if (ns > max_ns) max_ns = ns;
}

u64 DurationHistogram::percentile_ns(u32 pct) const {
  if (samples == 0) return 0;
  u64 rank = (samples * pct + 99) / 100;  // the rank-th smallest sample, 1-based
  if (rank == 0) rank = 1;
  u64 seen = 0;
  for (u32 i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return ktl::min(max_ns, (u64{2} << i) * 1000);
  }
  return max_ns;
}

u64 Reclaim::clock_ns() const { return gauge_.now_ns == nullptr ? 0 : gauge_.now_ns(gauge_.context); }

u64 Reclaim::free_frames() const { return gauge_.free_frames(gauge_.context); }

u32 Reclaim::mem_usage_pct() const { return usage_pct(free_frames(), gauge_.total_frames); }

bool Reclaim::above_high() const { return mem_usage_pct() >= marks_.high_pct; }

bool Reclaim::below_min() const { return free_frames() * 100 < gauge_.total_frames * marks_.min_free_pct; }

// --- running -----------------------------------------------------------------------------------------

u64 Reclaim::frames_to_low() const {
  // Usage <= low  <=>  free >= total * (100 - low) / 100, rounded up.
  u64 target = (gauge_.total_frames * (100 - marks_.low_pct) + 99) / 100;
  u64 free = free_frames();
  return free >= target ? 0 : target - free;
}

u64 Reclaim::run(u64 want_frames, bool& gave_up) {
  u64 freed_total = 0;
  u32 fruitless_rounds = 0;
  auto needed = [&]() -> u64 { return want_frames == 0 ? frames_to_low() : want_frames - freed_total; };
  while (needed() != 0) {
    bool any_claimed = false, progress = false;
    for (u32 i = 0; i < kMaxReclaimers; ++i) {
      Reclaimer* r = nullptr;
      {
        ktl::LockGuard guard(lock_);
        r = slots_[i].reclaimer;
        if (r == nullptr) continue;
        slots_[i].in_call = true;
      }
      u64 could = r->reclaimable();
      u64 ask = ktl::min(kBatch, needed());
      ReclaimBatch b = could == 0 ? ReclaimBatch{} : r->reclaim(ask);
      bool report = false;
      {
        ktl::LockGuard guard(lock_);
        Slot& s = slots_[i];
        ++s.stats.calls;
        s.stats.scanned += b.scanned;
        s.stats.freed += b.freed;
        if (could != 0 && b.freed == 0) {
          ++s.stats.fruitless;
          report = !s.reported;
          s.reported = true;
        }
        s.in_call = false;
      }
      if (report) {
        ktl::log::warn("reclaim: {} claimed {} reclaimable frames but freed none; it is asked again later",
                       r->name(), could);
      }
      any_claimed = any_claimed || could != 0;
      progress = progress || b.freed != 0;
      freed_total += b.freed;
      if (needed() == 0) return freed_total;
    }
    if (!any_claimed) {  // nobody has anything left
      gave_up = true;
      break;
    }
    if (progress) {
      fruitless_rounds = 0;
    } else if (++fruitless_rounds >= kMaxRounds) {
      gave_up = true;
      break;
    }
  }
  return freed_total;
}

Reclaim::TickResult Reclaim::kswapd_tick(u64 now_ns) {
  TickResult t;
  if (busy_.exchange(true)) {  // a direct reclaimer is at work
    t.usage_after = mem_usage_pct();
    return t;
  }
  ++stats_.ticks;
  bool high = above_high();
  if (high && last_above_high_ && now_ns > last_tick_ns_) stats_.ns_above_high += now_ns - last_tick_ns_;
  last_tick_ns_ = now_ns;
  last_above_high_ = high;
  if (high && !active_) {
    active_ = true;
    ++stats_.wakeups;
    episode_start_ns_ = clock_ns();
  }
  if (active_) {
    t.ran = true;
    t.freed = run(0, t.gave_up);
    stats_.freed += t.freed;
    if (t.gave_up) ++stats_.gave_up;  // tried again at the next tick
    if (frames_to_low() == 0) {
      active_ = false;
      u64 took = clock_ns() - episode_start_ns_;
      ++stats_.episodes;
      stats_.last_high_to_low_ns = took;
      if (took > stats_.max_high_to_low_ns) stats_.max_high_to_low_ns = took;
    }
  }
  t.usage_after = mem_usage_pct();
  busy_.store(false);
  return t;
}

u64 Reclaim::direct_reclaim(u64 frames) {
  if (busy_.exchange(true)) {
    direct_busy_.fetch_add(1, ktl::MemoryOrder::Relaxed);
    return 0;
  }
  ++stats_.direct;
  bool gave_up = false;
  u64 start = clock_ns();
  u64 freed = run(ktl::max(frames, kBatch), gave_up);
  if (gauge_.now_ns != nullptr) stats_.direct_stalls.add(clock_ns() - start);
  stats_.direct_freed += freed;
  busy_.store(false);
  return freed;
}

ReclaimStats Reclaim::stats() const {
  ReclaimStats s = stats_;
  s.direct_busy = direct_busy_.load(ktl::MemoryOrder::Relaxed);
  return s;
}

usize Reclaim::reclaimer_stats(ktl::Span<ReclaimerStats> out) const {
  ktl::LockGuard guard(lock_);
  usize n = 0;
  for (const Slot& s : slots_) {
    if (s.reclaimer == nullptr || n == out.size()) continue;
    out[n++] = s.stats;
  }
  return n;
}

}  // namespace mm
