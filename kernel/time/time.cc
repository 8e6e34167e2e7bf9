module;

#include <ktl/macros.h>

module kernel.time;

import ktl;

namespace kernel::time {

namespace {
Clock g_clock;
TimerService g_timers;
constexpr u64 kMaxDeviationPercent = 1;
}  // namespace

ktl::Result<FrequencyEstimate, CalibrationError> estimate_frequency(ktl::Span<const FrequencySample> samples,
                                                                    u64 reference_hz) {
  if (samples.size() > kMaxSamples) samples = samples.first(kMaxSamples);
  if (samples.size() < 3) return ktl::Err(CalibrationError::TooFewSamples);
  if (reference_hz == 0) return ktl::Err(CalibrationError::ZeroReference);
  ktl::Array<u64, kMaxSamples> rates{};
  usize n = 0;
  for (usize i = 1; i < samples.size(); ++i) {
    const FrequencySample& s = samples[i];
    if (s.reference_ticks == 0) return ktl::Err(CalibrationError::ZeroReference);
    if (s.ticks == 0) return ktl::Err(CalibrationError::ZeroTicks);
    auto hz = static_cast<unsigned __int128>(s.ticks) * reference_hz;
    // 128/64 division without a library call: both factors fit 64 bits and the quotient does
    // for any plausible rate; divide by halving when it would not.
    u64 ref = s.reference_ticks;
    while ((hz >> 64) != 0) {
      hz >>= 1;
      ref = ref >> 1;
      if (ref == 0) return ktl::Err(CalibrationError::ZeroReference);
    }
    rates[n++] = (static_cast<u64>(hz) + ref / 2) / ref;
  }
  // Insertion sort: at most 15 values.
  for (usize i = 1; i < n; ++i) {
    u64 v = rates[i];
    usize j = i;
    for (; j > 0 && rates[j - 1] > v; --j) rates[j] = rates[j - 1];
    rates[j] = v;
  }
  FrequencyEstimate e;
  u64 lo = rates[n / 2 - (n % 2 == 0 ? 1 : 0)], hi = rates[n / 2];
  e.hz = lo / 2 + hi / 2 + (lo % 2 + hi % 2) / 2;
  // The samples within 1 % of the median agree; a delayed window (a vCPU descheduled while it
  // polled) is an outlier. A strict majority must agree.
  e.min_hz = ~u64{0};
  e.max_hz = 0;
  for (usize i = 0; i < n; ++i) {
    u64 d = rates[i] > e.hz ? rates[i] - e.hz : e.hz - rates[i];
    if (d * 100 > e.hz * kMaxDeviationPercent) {
      ++e.outliers;
      continue;
    }
    ++e.used;
    e.min_hz = ktl::min(e.min_hz, rates[i]);
    e.max_hz = ktl::max(e.max_hz, rates[i]);
  }
  if (e.used * 2 <= n) return ktl::Err(CalibrationError::Unstable);
  return e;
}

void Clock::install(const ClockSource& source, u64 offset_ns) {
  ktl::check(source.read != nullptr && source.scale.hz() != 0, "Clock::install: no counter or no rate");
  start_ticks_ = source.read();
  offset_ns_ = offset_ns;
  source_ = source;
}

u64 Clock::now_ns() const {
  ktl::check(installed(), "Clock::now_ns: no clock source installed");
  return offset_ns_ + source_.scale.to_ns(source_.read() - start_ticks_);
}

Clock& clock() { return g_clock; }

Timer::~Timer() { ktl::check(state_ != State::Armed, "a Timer was destroyed while armed"); }

TimerQueue::~TimerQueue() {
  ktl::LockGuard guard(lock_);
  ktl::check(head_ == nullptr, "a TimerQueue was destroyed with timers armed");
}

void TimerQueue::unlink_locked(Timer& t) {
  if (t.prev_ != nullptr) {
    t.prev_->next_ = t.next_;
  } else {
    head_ = t.next_;
  }
  if (t.next_ != nullptr) t.next_->prev_ = t.prev_;
  t.prev_ = t.next_ = nullptr;
  --count_;
}

Earliest TimerQueue::arm(Timer& t, u64 deadline_ns) {
  ktl::LockGuard guard(lock_);
  ktl::check(t.queue_ == nullptr || t.queue_ == this, "TimerQueue::arm: the timer belongs to another queue");
  if (t.state_ == Timer::State::Armed) unlink_locked(t);
  t.deadline_ = deadline_ns;
  t.queue_ = this;
  t.state_ = Timer::State::Armed;
  // After every timer with a deadline <= this one (equal deadlines: arming order).
  Timer* prev = nullptr;
  Timer* cur = head_;
  while (cur != nullptr && cur->deadline_ <= deadline_ns) {
    prev = cur;
    cur = cur->next_;
  }
  t.prev_ = prev;
  t.next_ = cur;
  if (prev != nullptr) {
    prev->next_ = &t;
  } else {
    head_ = &t;
  }
  if (cur != nullptr) cur->prev_ = &t;
  ++count_;
  return head_ == &t ? Earliest::Yes : Earliest::No;
}

bool TimerQueue::cancel(Timer& t) {
  ktl::LockGuard guard(lock_);
  if (t.state_ != Timer::State::Armed) return false;
  ktl::check(t.queue_ == this, "TimerQueue::cancel: the timer belongs to another queue");
  unlink_locked(t);
  t.state_ = Timer::State::Idle;
  return true;
}

u32 TimerQueue::expire(u64 now_ns) {
  u32 fired = 0;
  for (;;) {
    Timer* due = nullptr;
    {
      ktl::LockGuard guard(lock_);
      if (head_ != nullptr && head_->deadline_ <= now_ns) {
        due = head_;
        unlink_locked(*due);
        due->state_ = Timer::State::Firing;
      }
    }
    if (due == nullptr) break;
    // One at a time with the lock dropped: a callback may arm (itself too) or cancel others.
    due->expired();
    {
      ktl::LockGuard guard(lock_);
      if (due->state_ == Timer::State::Firing) due->state_ = Timer::State::Idle;
    }
    ++fired;
  }
  fired_.fetch_add(fired, ktl::MemoryOrder::Relaxed);
  return fired;
}

ktl::Optional<u64> TimerQueue::next_deadline() const {
  ktl::LockGuard guard(lock_);
  if (head_ == nullptr) return ktl::nullopt;
  return head_->deadline_;
}

usize TimerQueue::armed() const {
  ktl::LockGuard guard(lock_);
  return count_;
}

void TimerService::install(Program program) {
  ktl::check(program != nullptr, "TimerService::install: no device");
  program_ = program;
}

void TimerService::arm(Timer& t, u64 deadline_ns) {
  ktl::check(installed(), "TimerService::arm: no timer device installed");
  ktl::InterruptsOff off;
  if (queue_.arm(t, deadline_ns) == Earliest::Yes) program_(deadline_ns);
}

bool TimerService::cancel(Timer& t) {
  // The device stays programmed for the old deadline: that interrupt finds nothing due and
  // programs the next one.
  return queue_.cancel(t);
}

u32 TimerService::interrupt(u64 now_ns) {
  interrupts_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  u32 fired = queue_.expire(now_ns);
  ktl::Optional<u64> next = queue_.next_deadline();
  program_(next.has_value() ? *next : 0);
  return fired;
}

TimerService& timers() { return g_timers; }

}  // namespace kernel::time
