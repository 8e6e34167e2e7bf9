module;

#include <ktl/macros.h>

module kernel.bench;

import ktl;
import kernel.irq;
import kernel.fs.fat;
import kernel.kswapd;
import kernel.storage;
import mm.heap;
import mm.reclaim;
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

// The largest file of the root directory tree's first level (the data disk's big.bin).
struct Largest {
  kernel::fs::Node node;
  bool found = false;
};

constexpr u32 kAllocSamples = 2001;
ktl::Array<u64, kAllocSamples> g_alloc_ns{};

void sort(ktl::Span<u64> v) {  // a heap sort: 2001 samples, no recursion, no allocation
  auto sift = [&](ktl::usize root, ktl::usize end) {
    while (2 * root + 1 < end) {
      ktl::usize child = 2 * root + 1;
      if (child + 1 < end && v[child] < v[child + 1]) ++child;
      if (!(v[root] < v[child])) return;
      ktl::swap(v[root], v[child]);
      root = child;
    }
  };
  for (ktl::usize i = v.size() / 2; i-- > 0;) sift(i, v.size());
  for (ktl::usize end = v.size(); end-- > 1;) {
    ktl::swap(v[0], v[end]);
    sift(0, end);
  }
}

ktl::Array<u8, 65536> g_read_buffer{};

// Reads the whole file; false on an error.
bool read_file(kernel::fs::FatVolume& v, const kernel::fs::Node& n) {
  for (u64 off = 0; off < n.size;) {
    auto r = v.read(n, off, g_read_buffer.span());
    if (r.is_err() || r.value() == 0) return false;
    off += r.value();
  }
  return true;
}

}  // namespace

StorageResults run_storage(ktl::FormatSink& out) {
  StorageResults r;
  auto root = storage::root();
  if (root.is_err()) {
    ktl::format_to(out, "bench: page cache: skipped ({})\n", storage::to_string(storage::root_state()));
    return r;
  }
  kernel::fs::FatVolume& v = *root.value();
  Largest big;
  (void)v.list(v.root(), [&](const kernel::fs::DirEntry& e) {
    if (e.kind() == kernel::fs::NodeKind::File && (!big.found || e.size() > big.node.size)) {
      big.node = e.node;
      big.found = true;
    }
    return kernel::fs::Visit::Continue;
  });
  if (!big.found || big.node.size == 0) {
    out.write("bench: page cache: skipped (no file in /)\n");
    return r;
  }
  r.file_bytes = big.node.size;
  (void)storage::drop_clean();
  u64 t0 = time::now_ns();
  bool ok = read_file(v, big.node);
  r.uncached_ns = time::now_ns() - t0;
  constexpr u32 kPasses = 8;
  t0 = time::now_ns();
  for (u32 i = 0; i < kPasses && ok; ++i) ok = read_file(v, big.node);
  r.cached_ns = (time::now_ns() - t0) / kPasses;
  if (!ok) {
    out.write("bench: page cache: FAILED (a read failed)\n");
    return r;
  }
  r.ran = true;
  r.ratio_x100 = r.cached_ns == 0 ? 0 : r.uncached_ns * 100 / r.cached_ns;
  u64 mib_x100 = r.file_bytes * 100 >> 20;
  ktl::format_to(out,
                 "bench: page cache: {}.{:02} MiB file: uncached {} us ({} MiB/s), cached {} us ({} MiB/s) = "
                 "{}.{:02}x (target >= {}x: {})\n",
                 mib_x100 / 100, mib_x100 % 100, r.uncached_ns / 1000,
                 r.uncached_ns == 0 ? 0 : (r.file_bytes * time::kNsPerSecond / r.uncached_ns) >> 20,
                 r.cached_ns / 1000,
                 r.cached_ns == 0 ? 0 : (r.file_bytes * time::kNsPerSecond / r.cached_ns) >> 20,
                 r.ratio_x100 / 100, r.ratio_x100 % 100, kPageCacheTargetX100 / 100,
                 r.ratio_x100 >= kPageCacheTargetX100 ? "met" : "MISSED");

  // Reclaim: past high with clean pages and empty slabs, then allocations while kswapd works.
  mm::Reclaim& rec = kswapd::engine();
  u32 high = rec.watermarks().high_pct;
  u64 episodes = rec.stats().episodes;
  (void)storage::fill_cache(high + 5);
  kswapd::FillResult f = kswapd::fill(high + 5);
  u32 peak = ktl::max(f.usage_peak, kswapd::mem_usage_pct());
  u32 n = 0;
  u64 deadline = time::now_ns() + 20 * time::kNsPerSecond;
  while (n < kAllocSamples && time::now_ns() < deadline) {
    u64 a = time::now_ns();
    void* p = mm::kmalloc(4096);
    g_alloc_ns[n++] = time::now_ns() - a;
    mm::kfree(p);
    if (rec.stats().episodes > episodes && n >= 101) break;  // kswapd reached low
    sched::scheduler().sleep_until(time::now_ns() + time::kNsPerMs);
  }
  mm::ReclaimStats st = rec.stats();
  r.reached_low = st.episodes > episodes;
  r.high_to_low_ns = st.last_high_to_low_ns;
  r.alloc_samples = n;
  sort(g_alloc_ns.span().first(n));
  r.alloc_p50_ns = g_alloc_ns[n / 2];
  r.alloc_p99_ns = g_alloc_ns[n * 99 / 100];
  ktl::format_to(out,
                 "bench: reclaim: usage {}% -> {}%: kswapd from high ({}%) to low ({}%) in {} ms{}; 4 KiB "
                 "allocations meanwhile: p50 {} us, p99 {} us ({} samples)\n",
                 peak, kswapd::mem_usage_pct(), high, rec.watermarks().low_pct,
                 r.high_to_low_ns / time::kNsPerMs, r.reached_low ? "" : " (NOT reached in 20 s)",
                 r.alloc_p50_ns / 1000, r.alloc_p99_ns / 1000, r.alloc_samples);
  return r;
}

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
