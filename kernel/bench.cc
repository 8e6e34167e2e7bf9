module;

#include <ktl/macros.h>

module kernel.bench;

import ktl;
import kernel.irq;
import kernel.sched;
import kernel.tasks;
import kernel.time;
import arch.x86_64.cpu;
import arch.x86_64.platform;

namespace kernel::bench {

namespace {

using ktl::u32;
using ktl::u64;
using ktl::u8;

constexpr u8 kBenchVector = 0x78;
constexpr u32 kCalls = 200'000;
constexpr u32 kInterrupts = 20'000;
constexpr u32 kYields = 5'000;
constexpr u32 kWakeSamples = 101;

[[gnu::noinline]] void empty_call() { __asm__ volatile("" ::: "memory"); }

void nothing(u8) {}

// Picoseconds for `ticks` TSC ticks spread over `n` operations.
u64 ps_per(u64 ticks, u64 n) {
  u64 milli_ticks = ticks * 1000 / n;  // per operation, in thousandths of a tick
  return milli_ticks * 1'000'000'000ull / arch::x86_64::tsc_hz();
}

struct PingPong {
  u32 rounds;
};

void ping_pong(void* p) {
  auto* pp = static_cast<PingPong*>(p);
  for (u32 i = 0; i < pp->rounds; ++i) sched::scheduler().yield();
}

struct Waker {
  ktl::Array<u64, kWakeSamples> late{};
};

void wake_sampler(void* p) {
  auto* w = static_cast<Waker*>(p);
  for (u64& late : w->late) {
    u64 deadline = time::now_ns() + 2 * time::kNsPerMs;
    sched::scheduler().sleep_until(deadline);
    late = time::now_ns() - deadline;
  }
}

void write_ps(ktl::FormatSink& out, u64 ps) { ktl::format_to(out, "{}.{:03} ns", ps / 1000, ps % 1000); }

void write_ratio(ktl::FormatSink& out, u64 a, u64 b) {
  u64 r = b == 0 ? 0 : a * 100 / b;
  ktl::format_to(out, "{}.{:02}x", r / 100, r % 100);
}

}  // namespace

Results run_all(ktl::FormatSink& out) {
  Results r;
  // Empty calls.
  u64 t0 = arch::x86_64::rdtsc();
  for (u32 i = 0; i < kCalls; ++i) empty_call();
  r.call_ps = ps_per(arch::x86_64::rdtsc() - t0, kCalls);

  // Interrupt round trips.
  kernel::irq::table().set(kBenchVector, &nothing, "bench");
  t0 = arch::x86_64::rdtsc();
  for (u32 i = 0; i < kInterrupts; ++i) __asm__ volatile("int $0x78" ::: "memory");
  r.interrupt_ps = ps_per(arch::x86_64::rdtsc() - t0, kInterrupts);
  kernel::irq::table().clear(kBenchVector);

  // Context switches: two high-priority tasks yield to each other; each yield is one switch.
  PingPong pp{kYields};
  {
    t0 = arch::x86_64::rdtsc();
    u64 switches = sched::scheduler().context_switches();
    auto a = tasks::spawn("ping", sched::Priority::High, &ping_pong, &pp);
    auto b = tasks::spawn("pong", sched::Priority::High, &ping_pong, &pp);
    if (a.is_ok() && b.is_ok()) {
      (void)a.value().join();
      (void)b.value().join();
      u64 n = sched::scheduler().context_switches() - switches;
      r.switch_ps = ps_per(arch::x86_64::rdtsc() - t0, n == 0 ? 1 : n);
    }
  }

  // Wake-up latency.
  Waker w;
  {
    auto t = tasks::spawn("wake-sampler", sched::Priority::High, &wake_sampler, &w);
    if (t.is_ok()) {
      (void)t.value().join();
      ktl::Array<u64, kWakeSamples> sorted = w.late;
      for (ktl::usize i = 1; i < sorted.size(); ++i) {
        for (ktl::usize j = i; j > 0 && sorted[j - 1] > sorted[j]; --j) ktl::swap(sorted[j - 1], sorted[j]);
      }
      r.wake_p50_ns = sorted[kWakeSamples / 2];
      r.wake_p99_ns = sorted[kWakeSamples * 99 / 100];
      r.wake_samples = kWakeSamples;
    }
  }

  out.write("bench: empty function call: ");
  write_ps(out, r.call_ps);
  out.write("\n");
  out.write("bench: interrupt round trip (int -> kernel.irq handler -> iretq): ");
  write_ps(out, r.interrupt_ps);
  out.write(" = ");
  write_ratio(out, r.interrupt_ps, r.call_ps);
  out.write(" an empty call\n");
  out.write("bench: context switch (yield ping-pong between two tasks): ");
  write_ps(out, r.switch_ps);
  out.write(" = ");
  write_ratio(out, r.switch_ps, r.call_ps);
  out.write(" an empty call\n");
  ktl::format_to(out, "bench: timer interrupt -> task wake-up latency: p50 {} us, p99 {} us ({} samples)\n",
                 r.wake_p50_ns / 1000, r.wake_p99_ns / 1000, r.wake_samples);
  out.write("bench: absolute times under QEMU TCG depend on the host and its load; compare the ratios\n");
  return r;
}

}  // namespace kernel::bench
