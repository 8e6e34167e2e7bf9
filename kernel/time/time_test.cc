// Host tests of kernel.time: tick scaling, frequency estimation from noisy samples, the monotonic
// clock over a simulated counter, and the timer queue on a simulated clock.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

import ktl;
import kernel.time;

namespace {

using kernel::time::CalibrationError;
using kernel::time::Earliest;
using kernel::time::FrequencySample;
using kernel::time::TickScale;
using kernel::time::Timer;
using kernel::time::TimerQueue;

TEST(TickScale, ConvertsBothWaysWithinAPartPerMillion) {
  for (ktl::u64 hz : {1'193'182ull, 62'500'000ull, 100'000'000ull, 2'599'987'123ull, 5'000'000'000ull}) {
    TickScale s = TickScale::from_hz(hz);
    EXPECT_EQ(s.hz(), hz);
    // One second of ticks is one second, and one hour stays within 1 ppm.
    EXPECT_NEAR(static_cast<double>(s.to_ns(hz)), 1e9, 1.0) << hz;
    double hour = 3600.0 * static_cast<double>(hz);
    EXPECT_NEAR(static_cast<double>(s.to_ns(static_cast<ktl::u64>(hour))), 3600e9, 3600e9 * 1e-6) << hz;
    if (hz >= 17'000'000) {
      EXPECT_NEAR(static_cast<double>(s.to_ticks(1'000'000'000)), static_cast<double>(hz),
                  static_cast<double>(hz) * 1e-6)
          << hz;
    }
  }
  // A century of nanoseconds at 5 GHz does not overflow.
  TickScale fast = TickScale::from_hz(5'000'000'000ull);
  ktl::u64 century_ticks = 5'000'000'000ull * 3600 * 24 * 365 * 100;
  EXPECT_NEAR(static_cast<double>(fast.to_ns(century_ticks)), 3.1536e18, 3.1536e18 * 1e-6);
}

TEST(TickScale, RejectsImpossibleRates) {
  EXPECT_DEATH((void)TickScale::from_hz(0), "TickScale: rate out of range");
  EXPECT_DEATH((void)TickScale::from_hz(ktl::u64{1} << 41), "TickScale: rate out of range");
}

TEST(EstimateFrequency, DropsTheFirstSampleAndTakesTheMedian) {
  // 10 ms windows of a 100 MHz reference; a 2.6 GHz counter; the first sample is way off and one
  // later one slightly (a delayed vCPU).
  std::vector<FrequencySample> s = {
      {1'000'000, 30'000'000}, {1'000'000, 26'000'000}, {1'000'000, 26'100'000},
      {1'000'000, 25'990'000}, {1'000'000, 26'010'000},
  };
  auto e = kernel::time::estimate_frequency(ktl::Span<const FrequencySample>(s), 100'000'000);
  ASSERT_TRUE(e.is_ok()) << to_string(e.error());
  EXPECT_EQ(e.value().used, 4u);
  EXPECT_EQ(e.value().outliers, 0u);
  EXPECT_EQ(e.value().hz, 2'600'500'000u);  // the median of 4: the mean of the middle two
  EXPECT_EQ(e.value().min_hz, 2'599'000'000u);
  EXPECT_EQ(e.value().max_hz, 2'610'000'000u);
}

TEST(EstimateFrequency, DelayedWindowsAreOutvoted) {
  // PIT windows under TCG on a loaded host: two of five came out long (10.22 and 10.75 ms of
  // TSC for 10 ms of PIT), inflating the rate; the three that agree carry the estimate.
  std::vector<FrequencySample> s = {
      {11932, 0},          {11932, 26'000'000}, {11932, 26'572'000},
      {11932, 26'001'000}, {11932, 27'950'000}, {11932, 25'999'000},
  };
  s[0].ticks = 1;
  auto e = kernel::time::estimate_frequency(ktl::Span<const FrequencySample>(s), 1'193'200);
  ASSERT_TRUE(e.is_ok()) << to_string(e.error());
  EXPECT_EQ(e.value().used, 3u);
  EXPECT_EQ(e.value().outliers, 2u);
  EXPECT_NEAR(static_cast<double>(e.value().hz), 2.6e9, 2.6e9 * 0.001);
  EXPECT_LE(e.value().max_hz, e.value().hz + e.value().hz / 100);
  // Without a majority it is an error.
  s[3].ticks = 27'000'000;
  EXPECT_EQ(kernel::time::estimate_frequency(ktl::Span<const FrequencySample>(s), 1'193'200).error(),
            CalibrationError::Unstable);
}

TEST(EstimateFrequency, ReportsEachBadInput) {
  auto run = [](std::vector<FrequencySample> s, ktl::u64 ref_hz) {
    return kernel::time::estimate_frequency(ktl::Span<const FrequencySample>(s), ref_hz);
  };
  EXPECT_EQ(run({{1, 1}, {1, 1}}, 100).error(), CalibrationError::TooFewSamples);
  EXPECT_EQ(run({{1, 1}, {1, 1}, {1, 1}}, 0).error(), CalibrationError::ZeroReference);
  EXPECT_EQ(run({{1, 1}, {0, 1}, {1, 1}}, 100).error(), CalibrationError::ZeroReference);
  EXPECT_EQ(run({{1, 1}, {1, 1}, {1, 0}}, 100).error(), CalibrationError::ZeroTicks);
  // 3 % apart: unstable; 1 % apart: fine.
  EXPECT_EQ(run({{100, 100}, {100, 100}, {100, 103}}, 1000).error(), CalibrationError::Unstable);
  EXPECT_TRUE(run({{100, 100}, {100, 100}, {100, 101}}, 1000).is_ok());
  ktl::check_enum_text<CalibrationError>();
}

TEST(EstimateFrequency, HugeProductsDoNotOverflow) {
  // 10 s of a 5 GHz counter against a 100 MHz reference: ticks * ref_hz exceeds 64 bits.
  std::vector<FrequencySample> s(4, FrequencySample{1'000'000'000, 50'000'000'000ull});
  auto e = kernel::time::estimate_frequency(ktl::Span<const FrequencySample>(s), 100'000'000);
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e.value().hz, 5'000'000'000ull);
}

ktl::u64 g_counter = 0;
ktl::u64 read_counter() { return g_counter; }

TEST(Clock, CountsNanosecondsFromInstallPlusTheOffset) {
  kernel::time::Clock c;
  EXPECT_FALSE(c.installed());
  EXPECT_DEATH((void)c.now_ns(), "no clock source installed");
  g_counter = 123'456'789;
  c.install({"sim", &read_counter, TickScale::from_hz(100'000'000)}, 5'000);
  EXPECT_EQ(c.now_ns(), 5'000u);
  g_counter += 100'000'000;  // one second
  EXPECT_EQ(c.now_ns(), 1'000'005'000u);
  EXPECT_STREQ(c.source().name, "sim");
}

struct RecordingTimer final : Timer {
  explicit RecordingTimer(std::vector<int>& log, int id) : log(log), id(id) {}
  ~RecordingTimer() = default;
  void expired() override {
    log.push_back(id);
    if (rearm_to != 0) {
      ktl::u64 d = rearm_to;
      rearm_to = 0;
      (void)queue->arm(*this, d);
    }
    if (cancel_other != nullptr) EXPECT_TRUE(queue->cancel(*cancel_other));
  }
  std::vector<int>& log;
  int id;
  TimerQueue* queue = nullptr;
  ktl::u64 rearm_to = 0;
  Timer* cancel_other = nullptr;
};

TEST(TimerQueue, FiresInDeadlineOrderThenArmingOrder) {
  std::vector<int> log;
  TimerQueue q;
  RecordingTimer a(log, 1), b(log, 2), c(log, 3), d(log, 4);
  EXPECT_EQ(q.arm(a, 300), Earliest::Yes);
  EXPECT_EQ(q.arm(b, 100), Earliest::Yes);
  EXPECT_EQ(q.arm(c, 300), Earliest::No);  // after a: same deadline, armed later
  EXPECT_EQ(q.arm(d, 200), Earliest::No);
  EXPECT_EQ(q.armed(), 4u);
  EXPECT_EQ(q.next_deadline(), ktl::Optional<ktl::u64>(100));
  EXPECT_EQ(q.expire(99), 0u);  // nothing due yet
  EXPECT_EQ(q.expire(200), 2u);
  EXPECT_EQ(log, (std::vector<int>{2, 4}));
  EXPECT_EQ(q.expire(1000), 2u);
  EXPECT_EQ(log, (std::vector<int>{2, 4, 1, 3}));
  EXPECT_EQ(q.armed(), 0u);
  EXPECT_FALSE(q.next_deadline().has_value());
  EXPECT_EQ(q.fired_total(), 4u);
  EXPECT_EQ(a.state(), Timer::State::Idle);
}

TEST(TimerQueue, RearmMovesCancelDisarms) {
  std::vector<int> log;
  TimerQueue q;
  RecordingTimer a(log, 1), b(log, 2);
  (void)q.arm(a, 100);
  (void)q.arm(b, 200);
  EXPECT_EQ(q.arm(a, 300), Earliest::No);  // moved behind b
  EXPECT_EQ(q.next_deadline(), ktl::Optional<ktl::u64>(200));
  EXPECT_EQ(q.armed(), 2u);
  EXPECT_TRUE(q.cancel(b));
  EXPECT_FALSE(q.cancel(b));  // already idle
  EXPECT_EQ(q.expire(250), 0u);
  EXPECT_EQ(q.expire(300), 1u);
  EXPECT_EQ(log, (std::vector<int>{1}));
}

TEST(TimerQueue, ACallbackMayRearmItselfAndCancelOthers) {
  std::vector<int> log;
  TimerQueue q;
  RecordingTimer a(log, 1), b(log, 2);
  a.queue = &q;
  a.rearm_to = 500;  // a periodic tick, re-armed from its own callback
  a.cancel_other = &b;
  (void)q.arm(a, 100);
  (void)q.arm(b, 400);
  EXPECT_EQ(q.expire(100), 1u);
  EXPECT_EQ(a.state(), Timer::State::Armed);
  EXPECT_EQ(b.state(), Timer::State::Idle);
  EXPECT_EQ(q.next_deadline(), ktl::Optional<ktl::u64>(500));
  a.cancel_other = nullptr;
  EXPECT_EQ(q.expire(10'000), 1u);
  EXPECT_EQ(log, (std::vector<int>{1, 1}));
}

TEST(TimerQueue, SimulatedSleepersWakeInOrderOnTime) {
  // 50 timers at pseudo-random deadlines; a simulated clock steps 1 ms at a time; each fires in
  // the first step at or after its deadline, in deadline order.
  std::vector<int> log;
  TimerQueue q;
  std::vector<std::unique_ptr<RecordingTimer>> timers;
  std::vector<ktl::u64> deadlines;
  ktl::u64 x = 12345;
  for (int i = 0; i < 50; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    deadlines.push_back((x >> 33) % 100'000'000);  // within 100 ms
    timers.push_back(std::make_unique<RecordingTimer>(log, i));
    (void)q.arm(*timers.back(), deadlines.back());
  }
  std::vector<ktl::u64> fired_at(50, 0);
  for (ktl::u64 now = 0; now <= 100'000'000; now += 1'000'000) {
    size_t before = log.size();
    (void)q.expire(now);
    for (size_t i = before; i < log.size(); ++i) fired_at[static_cast<size_t>(log[i])] = now;
  }
  ASSERT_EQ(log.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_GE(fired_at[static_cast<size_t>(i)], deadlines[static_cast<size_t>(i)]);
    EXPECT_LT(fired_at[static_cast<size_t>(i)], deadlines[static_cast<size_t>(i)] + 1'000'000);
  }
  for (size_t i = 1; i < log.size(); ++i) {
    EXPECT_LE(deadlines[static_cast<size_t>(log[i - 1])], deadlines[static_cast<size_t>(log[i])]);
  }
}

std::vector<ktl::u64> g_programmed;
void fake_program(ktl::u64 deadline) { g_programmed.push_back(deadline); }

TEST(TimerService, ProgramsTheDeviceForTheEarliestDeadlineOnly) {
  g_programmed.clear();
  std::vector<int> log;
  auto service = std::make_unique<kernel::time::TimerService>();
  EXPECT_FALSE(service->installed());
  service->install(&fake_program);
  RecordingTimer a(log, 1), b(log, 2), c(log, 3);
  service->arm(a, 500);
  service->arm(b, 900);  // later: the device keeps 500
  service->arm(c, 200);  // earlier: reprogrammed
  EXPECT_EQ(g_programmed, (std::vector<ktl::u64>{500, 200}));
  EXPECT_EQ(service->interrupt(250), 1u);  // c fires; next is a's 500
  EXPECT_TRUE(service->cancel(a));
  EXPECT_EQ(service->interrupt(500), 0u);  // a was cancelled: nothing due, next is b
  EXPECT_EQ(service->interrupt(900), 1u);  // b; then nothing left: the device stops (0)
  EXPECT_EQ(g_programmed, (std::vector<ktl::u64>{500, 200, 500, 900, 0}));
  EXPECT_EQ(log, (std::vector<int>{3, 2}));
  EXPECT_EQ(service->interrupts(), 3u);
}

TEST(TimerService, ArmingWithoutADevicePanics) {
  std::vector<int> log;
  auto service = std::make_unique<kernel::time::TimerService>();
  RecordingTimer a(log, 1);
  EXPECT_DEATH(service->arm(a, 5), "no timer device installed");
}

TEST(TimerQueue, DestroyingAnArmedTimerPanics) {
  EXPECT_DEATH(
      {
        std::vector<int> log;
        auto q = std::make_unique<TimerQueue>();
        auto t = std::make_unique<RecordingTimer>(log, 1);
        (void)q->arm(*t, 5);
        t.reset();
      },
      "a Timer was destroyed while armed");
}

}  // namespace
