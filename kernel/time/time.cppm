// kernel.time: architecture-neutral time keeping. Everything here is pure or takes its clock as a
// parameter, so the host tests drive it with a simulated clock.
//
//   TickScale          a counter's rate as fixed-point factors: ticks <-> nanoseconds without
//                      division (and without 128-bit division, which a freestanding kernel lacks)
//   estimate_frequency a counter's rate from several samples against a reference of known rate:
//                      the first sample is dropped (cold caches, a vCPU that was just scheduled),
//                      the median of the rest is the estimate; samples more than 1 % from it are
//                      outliers (a delayed window), and a strict majority must agree
//   Clock              the monotonic clock: nanoseconds since boot from a ClockSource (the arch's
//                      counter and its scale)
//   Timer, TimerQueue  one-shot timers ordered by deadline; the queue's owner programs the
//                      hardware for next_deadline() and calls expire(now) from its interrupt
//
// Lock order: TimerQueue's lock is time.timers (docs/ARCHITECTURE.md). Timer callbacks run after
// it is dropped, so they may arm timers and take any lock a caller of expire() may take.
module;

#include <ktl/macros.h>

export module kernel.time;

import ktl;

export namespace kernel::time {

using ktl::u32;
using ktl::u64;
using ktl::usize;

inline constexpr u64 kNsPerSecond = 1'000'000'000;
inline constexpr u64 kNsPerMs = 1'000'000;

// ticks -> ns: (ticks * to_ns_mult) >> 32; ns -> ticks: (ns * to_ticks_mult) >> 24 (a shift of 24
// keeps hz << 24 in 64 bits for any rate below 1 THz; the error stays below 1 ppm above 17 MHz).
class TickScale {
 public:
  constexpr TickScale() = default;
  // Panics unless 0 < hz < 2^40.
  [[nodiscard]] static constexpr TickScale from_hz(u64 hz) {
    ktl::check(hz != 0 && hz < (u64{1} << 40), "TickScale: rate out of range");
    TickScale s;
    s.hz_ = hz;
    s.to_ns_ = ((kNsPerSecond << 32) + hz / 2) / hz;
    s.to_ticks_ = ((hz << 24) + kNsPerSecond / 2) / kNsPerSecond;
    return s;
  }
  [[nodiscard]] inline constexpr u64 hz() const { return hz_; }
  [[nodiscard]] inline constexpr u64 to_ns(u64 ticks) const {
    return static_cast<u64>((static_cast<unsigned __int128>(ticks) * to_ns_) >> 32);
  }
  [[nodiscard]] inline constexpr u64 to_ticks(u64 ns) const {
    return static_cast<u64>((static_cast<unsigned __int128>(ns) * to_ticks_) >> 24);
  }

 private:
  u64 hz_ = 0;
  u64 to_ns_ = 0;
  u64 to_ticks_ = 0;
};

struct FrequencySample {
  u64 reference_ticks;  // elapsed on the reference
  u64 ticks;            // elapsed on the counter being measured, over the same window
};
struct FrequencyEstimate {
  u64 hz = 0;      // the median of the samples looked at (all but the first)
  u64 min_hz = 0;  // the smallest and largest of those that agree (within 1 % of the median)
  u64 max_hz = 0;
  u32 used = 0;      // samples that agree
  u32 outliers = 0;  // samples that do not
};
enum class CalibrationError : u32 {
  TooFewSamples,  // fewer than 3 (the first is dropped, and one sample has no spread)
  ZeroReference,  // a sample's reference did not advance, or the reference rate is 0
  ZeroTicks,      // the measured counter did not advance
  Unstable,       // no strict majority of the samples lies within 1 % of their median
};
[[nodiscard]] constexpr const char* to_string(CalibrationError e) {
  switch (e) {
    case CalibrationError::TooFewSamples: return "fewer than 3 samples";
    case CalibrationError::ZeroReference: return "the reference did not advance";
    case CalibrationError::ZeroTicks: return "the counter did not advance";
    case CalibrationError::Unstable: return "no majority of the samples within 1 % of their median";
  }
  return "unknown calibration error";
}
inline constexpr usize kMaxSamples = 16;
// At most kMaxSamples samples are looked at.
[[nodiscard]] ktl::Result<FrequencyEstimate, CalibrationError> estimate_frequency(
    ktl::Span<const FrequencySample> samples, u64 reference_hz);

// A free-running counter and its rate.
struct ClockSource {
  const char* name = "none";
  u64 (*read)() = nullptr;
  TickScale scale;
};

// The monotonic clock: nanoseconds since the source was installed (plus `offset_ns`, the time
// that had passed before: boot to install). Reading it takes no lock.
class Clock {
 public:
  constexpr Clock() = default;
  // Starts counting from now on `source` (its counter must not wrap in the kernel's lifetime).
  void install(const ClockSource& source, u64 offset_ns = 0);
  [[nodiscard]] inline bool installed() const { return source_.read != nullptr; }
  [[nodiscard]] inline const ClockSource& source() const { return source_; }
  // Panics when no source is installed.
  [[nodiscard]] u64 now_ns() const;

 private:
  ClockSource source_;
  u64 start_ticks_ = 0;
  u64 offset_ns_ = 0;
};

// The kernel's clock (installed by the arch's bring-up).
[[nodiscard]] Clock& clock();
[[nodiscard]] inline u64 now_ns() { return clock().now_ns(); }

class TimerQueue;

// A one-shot timer. Its owner keeps it in place while armed (it is linked into the queue) and
// cancels it before it goes away (the destructor checks). expired() runs in the context of the
// queue's expire(): in the kernel, the timer interrupt (it must not sleep).
class Timer {
 public:
  enum class State : ktl::u8 { Idle, Armed, Firing };
  constexpr Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  [[nodiscard]] inline State state() const { return state_; }
  [[nodiscard]] inline u64 deadline_ns() const { return deadline_; }

 protected:
  // Not virtual: a Timer is never destroyed through a base pointer (the kernel has no deleting
  // destructors). Panics if the timer is still armed.
  ~Timer();
  virtual void expired() = 0;

 private:
  friend class TimerQueue;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  TimerQueue* queue_ = nullptr;
  u64 deadline_ = 0;
  State state_ = State::Idle;
};

enum class Earliest : ktl::u8 { No, Yes };

class TimerQueue {
 public:
  constexpr TimerQueue() = default;
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;
  ~TimerQueue();

  // Arms `t` for `deadline_ns` (re-arming an armed timer moves it). Timers with equal deadlines
  // fire in the order they were armed. Says whether `t` is now the earliest (the hardware must be
  // reprogrammed). Panics if `t` is armed on another queue.
  Earliest arm(Timer& t, u64 deadline_ns) EXCLUDES(lock_);
  // Disarms `t`; false if it was not armed (idle, or its callback is running).
  bool cancel(Timer& t) EXCLUDES(lock_);
  // Runs the callback of every timer due at `now_ns` (deadline <= now), earliest first, with the
  // lock dropped; returns how many fired.
  u32 expire(u64 now_ns) EXCLUDES(lock_);
  [[nodiscard]] ktl::Optional<u64> next_deadline() const EXCLUDES(lock_);
  [[nodiscard]] usize armed() const EXCLUDES(lock_);
  [[nodiscard]] inline u64 fired_total() const { return fired_.load(ktl::MemoryOrder::Relaxed); }

 private:
  void unlink_locked(Timer& t) REQUIRES(lock_);

  mutable ktl::SpinLock lock_{ktl::LockRank::Timers};
  Timer* head_ GUARDED_BY(lock_) = nullptr;
  usize count_ GUARDED_BY(lock_) = 0;
  ktl::Atomic<u64> fired_{0};
};

// The kernel's timers: the queue and the one-shot device behind it (x86_64: the local APIC timer).
// `program(deadline_ns)` makes the device interrupt at, or shortly after, the deadline (0: stop);
// the device's interrupt calls interrupt(now). Arming masks interrupts (ktl::InterruptsOff) so
// that the device's interrupt cannot run between queueing a timer and programming the device.
class TimerService {
 public:
  using Program = void (*)(u64 deadline_ns);
  constexpr TimerService() = default;
  void install(Program program);
  [[nodiscard]] inline bool installed() const { return program_ != nullptr; }
  void arm(Timer& t, u64 deadline_ns);
  bool cancel(Timer& t);
  // Fires what is due at `now_ns`, then programs the next deadline (or stops the device).
  u32 interrupt(u64 now_ns);
  [[nodiscard]] inline TimerQueue& queue() { return queue_; }
  [[nodiscard]] inline u64 interrupts() const { return interrupts_.load(ktl::MemoryOrder::Relaxed); }

 private:
  TimerQueue queue_;
  Program program_ = nullptr;
  ktl::Atomic<u64> interrupts_{0};
};

// The kernel's timer service (installed by the arch's bring-up).
[[nodiscard]] TimerService& timers();

}  // namespace kernel::time
