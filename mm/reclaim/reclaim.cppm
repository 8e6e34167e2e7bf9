// mm.reclaim: page reclaim, the design documents' kswapd. Memory usage against three watermarks,
// the reclaimers subsystems register, and the two ways reclaim runs:
//
//   background  kswapd_tick() (the kswapd task, periodically and when woken): once usage reaches
//               the high watermark (80 %) it asks the reclaimers for frames, in batches, round
//               robin, until usage is at or below the low watermark (60 %), over as many ticks as
//               that takes (hysteresis: between low and high it goes on only if it had started)
//   direct      direct_reclaim() (an allocation that may sleep, when free memory is below the min
//               watermark, 5 % free): the allocating task reclaims a batch itself
//
// Watermarks: high and low are usage percentages, min is the free percentage below which direct
// reclaim starts (so direct reclaim begins at usage 100 - min, above high). Valid when
// 0 < min < low < high <= 100 and 100 - min > high (make_watermarks; otherwise a clear error).
//
// Guarantees: reclaim never recurses and never runs twice at once (one reclaim at a time: a second
// caller gets 0 at once; direct reclaimers are thereby throttled to one); a pass asks each
// reclaimer at most kMaxRounds times, and a tick gives up after kMaxRounds rounds without
// progress (a reclaimer that lies about what it could free cannot livelock kswapd: the tick ends,
// one log line names the reclaimer, and kswapd backs off to its next period).
//
// Lock order: the registry's lock is kswapd.registry (docs/ARCHITECTURE.md), held only to add,
// remove or pick a reclaimer, never while one runs.
module;

#include <ktl/macros.h>

export module mm.reclaim;

import ktl;

export namespace mm {

using ktl::u32;
using ktl::u64;
using ktl::usize;

struct Watermarks {
  u32 min_free_pct = 5;  // direct reclaim below this much free memory
  u32 low_pct = 60;      // background reclaim stops at or below this usage
  u32 high_pct = 80;     // background reclaim starts at or above this usage
};

enum class WatermarkError : u32 {
  LowIsZero,        // low must be above 0
  LowNotBelowHigh,  // low >= high
  HighAbove100,     // high > 100
  MinNotBelowLow,   // min >= low (or min is 0)
  MinOverlapsHigh,  // 100 - min <= high: direct reclaim would start before background reclaim
};
[[nodiscard]] constexpr const char* to_string(WatermarkError e) {
  switch (e) {
    case WatermarkError::LowIsZero: return "the low watermark must be above 0 %";
    case WatermarkError::LowNotBelowHigh: return "the low watermark must be below the high one";
    case WatermarkError::HighAbove100: return "the high watermark must be at most 100 %";
    case WatermarkError::MinNotBelowLow: return "min must be above 0 and below low";
    case WatermarkError::MinOverlapsHigh:
      return "100 - min must be above high (direct reclaim starts above high)";
  }
  return "unknown watermark error";
}
[[nodiscard]] ktl::Result<Watermarks, WatermarkError> make_watermarks(u32 min_free_pct, u32 low_pct,
                                                                      u32 high_pct);

// Used memory in percent of `total` frames, rounded down (0 for an empty total).
[[nodiscard]] constexpr u32 usage_pct(u64 free_frames, u64 total_frames) {
  if (total_frames == 0 || free_frames >= total_frames) return 0;
  return static_cast<u32>((total_frames - free_frames) * 100 / total_frames);
}

struct ReclaimBatch {
  u64 scanned = 0;  // objects or pages looked at
  u64 freed = 0;    // frames given back to the PMM
};

// A subsystem that can give frames back (empty slabs, clean cached pages, ...). Called without any
// mm lock held, from kswapd or a direct reclaimer; it takes its own locks (try-lock where they may
// be held by the allocating caller) and must not allocate.
class Reclaimer {
 public:
  [[nodiscard]] virtual const char* name() const = 0;
  // Frames it believes it could free now.
  [[nodiscard]] virtual u64 reclaimable() = 0;
  // Frees up to `frames` frames.
  [[nodiscard]] virtual ReclaimBatch reclaim(u64 frames) = 0;

 protected:
  ~Reclaimer() = default;
};

// What memory looks like to reclaim: the PMM's free frames (a function, so tests use a fake) and
// the total it manages.
struct MemoryGauge {
  u64 (*free_frames)(void* context) = nullptr;
  void* context = nullptr;
  u64 total_frames = 0;
  // A monotonic clock in ns (the same context) for the episode and stall durations; null: none
  // are measured (they stay 0).
  u64 (*now_ns)(void* context) = nullptr;
};

// Durations in power-of-two buckets: bucket i counts durations in [2^i, 2^(i+1)) us (bucket 0
// also takes those under 1 us); percentiles are read as the upper bound of their bucket.
struct DurationHistogram {
  static constexpr u32 kBuckets = 32;
  ktl::Array<u64, kBuckets> counts{};
  u64 samples = 0;
  u64 total_ns = 0;
  u64 max_ns = 0;
  void add(u64 ns);
  // The upper bound (ns) of the bucket holding the pct-th percentile; 0 without samples.
  [[nodiscard]] u64 percentile_ns(u32 pct) const;
};

struct ReclaimerStats {
  const char* name = nullptr;
  u64 calls = 0;
  u64 scanned = 0;
  u64 freed = 0;
  u64 fruitless = 0;  // calls that freed nothing although it claimed to have something
};

struct ReclaimStats {
  u64 ticks = 0;    // kswapd_tick calls
  u64 wakeups = 0;  // ticks that found usage at or above high
  u64 freed = 0;    // frames freed by kswapd
  u64 gave_up = 0;  // ticks that stopped for want of progress
  u64 direct = 0;   // direct reclaims
  u64 direct_freed = 0;
  u64 direct_busy = 0;    // direct reclaims refused because reclaim was running (throttled)
  u64 ns_above_high = 0;  // time kswapd saw usage at or above high (tick to tick)
  // Background episodes: from the tick that found usage at or above high to the moment usage
  // reached low (with a clock in the gauge).
  u64 episodes = 0;
  u64 last_high_to_low_ns = 0;
  u64 max_high_to_low_ns = 0;
  DurationHistogram direct_stalls;  // how long each direct reclaim kept its allocation waiting
};

enum class RegisterError : u32 { Full };
[[nodiscard]] constexpr const char* to_string(RegisterError e) {
  switch (e) {
    case RegisterError::Full: return "no room for another reclaimer";
  }
  return "unknown reclaimer registration error";
}

class Reclaim;

// Unregisters its reclaimer when destroyed (waiting for a call in progress to end).
class [[nodiscard]] ReclaimerRegistration {
 public:
  ReclaimerRegistration() = default;
  inline ReclaimerRegistration(ReclaimerRegistration&& o)
      : owner_(ktl::exchange(o.owner_, nullptr)), slot_(o.slot_) {}
  ReclaimerRegistration& operator=(ReclaimerRegistration&& o);
  ReclaimerRegistration(const ReclaimerRegistration&) = delete;
  ReclaimerRegistration& operator=(const ReclaimerRegistration&) = delete;
  ~ReclaimerRegistration();
  [[nodiscard]] inline bool active() const { return owner_ != nullptr; }

 private:
  friend class Reclaim;
  inline ReclaimerRegistration(Reclaim* owner, u32 slot) : owner_(owner), slot_(slot) {}
  Reclaim* owner_ = nullptr;
  u32 slot_ = 0;
};

class Reclaim {
 public:
  static constexpr u32 kMaxReclaimers = 8;
  static constexpr u64 kBatch = 32;      // frames asked of a reclaimer per call
  static constexpr u32 kMaxRounds = 16;  // rounds over the reclaimers without progress before giving up

  constexpr Reclaim() = default;
  Reclaim(const Reclaim&) = delete;
  Reclaim& operator=(const Reclaim&) = delete;
  ~Reclaim();

  void init(const MemoryGauge& gauge, const Watermarks& marks);
  [[nodiscard]] inline const Watermarks& watermarks() const { return marks_; }
  [[nodiscard]] ktl::Result<ReclaimerRegistration, RegisterError> register_reclaimer(Reclaimer& r)
      EXCLUDES(lock_);

  [[nodiscard]] u32 mem_usage_pct() const;
  // At or above the high watermark: kswapd should run.
  [[nodiscard]] bool above_high() const;
  // Below the min watermark (free memory): an allocation that may sleep reclaims directly.
  [[nodiscard]] bool below_min() const;

  struct TickResult {
    bool ran = false;  // usage was at or above high
    u64 freed = 0;
    bool gave_up = false;  // stopped without reaching low
    u32 usage_after = 0;
  };
  // One kswapd round at time `now_ns` (for the above-high accounting).
  TickResult kswapd_tick(u64 now_ns);
  // Reclaims up to `frames` (at least one batch's worth is asked for) for an allocating task;
  // returns what was freed: 0 when reclaim is already running (recursion or another reclaimer).
  u64 direct_reclaim(u64 frames);

  [[nodiscard]] ReclaimStats stats() const;
  // The registered reclaimers' statistics, in registration order; returns how many.
  usize reclaimer_stats(ktl::Span<ReclaimerStats> out) const EXCLUDES(lock_);
  [[nodiscard]] inline bool reclaiming() const { return busy_.load(); }
  // Background reclaim has started (usage reached high) and not yet brought usage to low.
  [[nodiscard]] inline bool active() const { return active_; }

 private:
  friend class ReclaimerRegistration;
  struct Slot {
    Reclaimer* reclaimer = nullptr;
    ReclaimerStats stats;
    bool in_call = false;
    bool reported = false;  // the "made no progress" line was logged
  };
  void unregister(u32 slot) EXCLUDES(lock_);
  [[nodiscard]] u64 free_frames() const;
  [[nodiscard]] u64 clock_ns() const;
  // Frames still to free for kswapd to reach the low watermark.
  [[nodiscard]] u64 frames_to_low() const;
  // Rounds over the reclaimers, asking each for at most a batch of what is still needed, until
  // `want_frames` are freed (0: until frames_to_low() is 0) or kMaxRounds rounds without progress.
  u64 run(u64 want_frames, bool& gave_up) EXCLUDES(lock_);

  mutable ktl::SpinLock lock_{ktl::LockRank::ReclaimRegistry};
  MemoryGauge gauge_;
  Watermarks marks_;
  ktl::Array<Slot, kMaxReclaimers> slots_ GUARDED_BY(lock_){};
  ktl::Atomic<bool> busy_{false};
  ReclaimStats stats_;               // written by the one reclaim that runs (busy_), read as a snapshot
  ktl::Atomic<u64> direct_busy_{0};  // written by the callers busy_ turned away
  u64 last_tick_ns_ = 0;
  bool last_above_high_ = false;
  bool active_ = false;  // between reaching high and reaching low (kswapd_tick's hysteresis)
  u64 episode_start_ns_ = 0;
};

}  // namespace mm
