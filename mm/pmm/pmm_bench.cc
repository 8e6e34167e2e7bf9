// mm.pmm benchmarks: single-frame alloc+free over 64 GiB of simulated RAM at 0%, 50%, 90% and
// 99.9% fill, against a naive bitmap allocator that scans from the start (in this binary), plus
// 2 MiB runs and the metadata overhead. The last lines print the ratios the issue sets as targets;
// the exit status is 1 if one is missed.
//
//   ./bazelw run -c opt //mm/pmm:bench
//
// Fill patterns (fill in permille of the managed frames):
//   bottom  the lowest frames are in use: the state a lowest-address-first allocator reaches once
//           long-lived allocations pile up, and the worst case of a scan from the start
//   random  every frame is in use with probability fill (seeded): free frames are scattered, so a
//           scan from the start finds one after about 1 / (1 - fill) frames
#include <benchmark/benchmark.h>
#include <ktl/macros.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "mm/testing/bench_recorder.h"

import ktl;
import mm.addr;
import mm.pmm;
import mm.testing.env;

namespace {

using ktl::u64;

constexpr u64 kPage = 4096;
constexpr u64 kRam = u64{64} << 30;
constexpr u64 kFrames = kRam / kPage;

enum class Pattern { Bottom, Random };

// Which frames a fill level marks used: the same for both allocators.
std::vector<bool> used_frames(Pattern p, u64 permille, u64 managed) {
  std::vector<bool> used(kFrames, false);
  u64 target = managed * permille / 1000;
  if (p == Pattern::Bottom) {
    for (u64 f = 0; f < target; ++f) used[f] = true;
  } else {
    std::mt19937_64 rng(permille);
    for (u64 f = 0; f < managed; ++f) used[f] = rng() % 1000 < permille;
  }
  return used;
}

// --- the naive baseline: one bit per frame (1 = free), first fit by scanning from frame 0 ------------
class NaiveBitmap {
 public:
  explicit NaiveBitmap(u64 frames) : words_(frames / 64, ~u64{0}) {}
  u64 alloc() {
    for (size_t w = 0; w < words_.size(); ++w) {
      if (words_[w] != 0) {
        u64 bit = static_cast<u64>(__builtin_ctzll(words_[w]));
        words_[w] &= ~(u64{1} << bit);
        return w * 64 + bit;
      }
    }
    return ~u64{0};
  }
  void free(u64 f) { words_[f / 64] |= u64{1} << (f % 64); }
  void set_used(u64 f, bool used) {
    if (used) {
      words_[f / 64] &= ~(u64{1} << (f % 64));
    } else {
      free(f);
    }
  }

 private:
  std::vector<u64> words_;
};

// --- the systems under test, built once --------------------------------------------------------------
struct Machine {
  Machine()
      : mem(mm::test_env::TestMemory::acquire_at(mm::PhysAddr::from(0), kRam).release_value()),
        naive(kFrames) {
    mm::PhysMapEntry all{mm::PhysRange::with_size(mm::PhysAddr::from(0), kRam).value(), mm::PhysKind::Usable,
                         mm::NodeId{0}};
    KTL_UNSAFE_BUFFER_BEGIN  // one region: `all`
    if (pmm.init(ktl::Span<const mm::PhysMapEntry>::from_raw(&all, 1), mem.window()).is_err())
      __builtin_trap();
    KTL_UNSAFE_BUFFER_END
    managed = pmm.free_frame_count();  // the metadata sits at the top, above every managed frame
  }
  mm::test_env::TestMemory mem;
  mm::Pmm pmm;
  NaiveBitmap naive;
  u64 managed = 0;

  // The current fill of each allocator.
  Pattern pmm_pattern = Pattern::Bottom, naive_pattern = Pattern::Bottom;
  u64 pmm_fill = 0, naive_fill = ~u64{0};  // the naive bitmap starts all free: apply the first fill
  std::vector<mm::AllocatedFrames> pmm_held;
  std::vector<bool> naive_used = std::vector<bool>(kFrames, false);

  void fill_pmm(Pattern p, u64 permille) {
    if (p == pmm_pattern && permille == pmm_fill) return;
    pmm_held.clear();
    std::vector<bool> used = used_frames(p, permille, managed);
    for (u64 f = 0; f < managed;) {
      if (!used[f]) {
        ++f;
        continue;
      }
      u64 end = f;
      while (end < managed && used[end]) ++end;
      auto r = pmm.claim(mm::Frame4K::from_number(f).value(), end - f);
      if (r.is_err()) __builtin_trap();
      pmm_held.push_back(r.release_value());
      f = end;
    }
    pmm_pattern = p;
    pmm_fill = permille;
  }
  void fill_naive(Pattern p, u64 permille) {
    if (p == naive_pattern && permille == naive_fill) return;
    std::vector<bool> used = used_frames(p, permille, managed);
    for (u64 f = 0; f < kFrames; ++f) {
      bool u = f >= managed || used[f];  // the naive bitmap never hands out the PMM's metadata either
      if (u != naive_used[f]) naive.set_used(f, u);
    }
    for (u64 f = managed; f < kFrames; ++f) naive.set_used(f, true);
    naive_used = used;
    naive_pattern = p;
    naive_fill = permille;
  }
};

Machine& machine() {
  static Machine m;
  return m;
}

void pmm_alloc_free(benchmark::State& state, Pattern p) {
  Machine& m = machine();
  m.fill_pmm(p, static_cast<u64>(state.range(0)));
  for (auto _ : state) {
    auto f = m.pmm.alloc_page_unowned();
    benchmark::DoNotOptimize(f);
    if (f.is_err() || m.pmm.free_page(f.value()).is_err()) state.SkipWithError("pmm alloc/free failed");
  }
}
void naive_alloc_free(benchmark::State& state, Pattern p) {
  Machine& m = machine();
  m.fill_naive(p, static_cast<u64>(state.range(0)));
  for (auto _ : state) {
    u64 f = m.naive.alloc();
    benchmark::DoNotOptimize(f);
    m.naive.free(f);
  }
}

void BM_Pmm_Bottom(benchmark::State& s) { pmm_alloc_free(s, Pattern::Bottom); }
void BM_Naive_Bottom(benchmark::State& s) { naive_alloc_free(s, Pattern::Bottom); }
void BM_Pmm_Random(benchmark::State& s) { pmm_alloc_free(s, Pattern::Random); }
void BM_Naive_Random(benchmark::State& s) { naive_alloc_free(s, Pattern::Random); }

// The owning API: alloc_page() and the AllocatedFrames destructor.
void BM_PmmOwned_Bottom(benchmark::State& state) {
  Machine& m = machine();
  m.fill_pmm(Pattern::Bottom, static_cast<u64>(state.range(0)));
  for (auto _ : state) {
    auto f = m.pmm.alloc_page();
    benchmark::DoNotOptimize(f);
  }
}

// One 2 MiB frame (512 aligned frames) and back.
void BM_Pmm2M_Bottom(benchmark::State& state) {
  Machine& m = machine();
  m.fill_pmm(Pattern::Bottom, static_cast<u64>(state.range(0)));
  for (auto _ : state) {
    auto f = m.pmm.alloc_frame_of<mm::Size2M>();
    benchmark::DoNotOptimize(f);
    if (f.is_err()) state.SkipWithError("no 2 MiB run");
  }
}

#define FILLS ->Arg(0)->Arg(500)->Arg(900)->Arg(999)->Unit(benchmark::kNanosecond)
BENCHMARK(BM_Pmm_Bottom) FILLS;
BENCHMARK(BM_Naive_Bottom) FILLS;
BENCHMARK(BM_Pmm_Random) FILLS;
BENCHMARK(BM_Naive_Random) FILLS;
BENCHMARK(BM_PmmOwned_Bottom)->Arg(0)->Arg(999)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_Pmm2M_Bottom) FILLS;

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ferrite::bench::CpuTimeRecorder recorder;
  benchmark::RunSpecifiedBenchmarks(&recorder);
  benchmark::Shutdown();

  bool ok = true;
  auto get = [&](const std::string& name) { return recorder.ns(name); };
  auto ratio = [&](const char* what, double num, double den, double target, bool at_most) {
    if (num < 0 || den <= 0) {
      std::printf("pmm_bench: %s: not measured (filtered out)\n", what);
      return;
    }
    double r = num / den;
    bool pass = at_most ? r <= target : r >= target;
    ok = ok && pass;
    std::printf("pmm_bench: %s: %.2fx (target %s %gx): %s\n", what, r, at_most ? "<=" : ">=", target,
                pass ? "PASS" : "FAIL");
  };
  // Metadata of 64 GiB, per 4 KiB frame of RAM.
  mm::MemStats s = machine().pmm.stats();
  double per_frame = static_cast<double>(s.metadata_bytes) / static_cast<double>(kFrames);
  double percent = 100.0 * static_cast<double>(s.metadata_bytes) / static_cast<double>(kRam);
  bool meta_ok = percent <= 0.01;
  ok = ok && meta_ok;
  std::printf("pmm_bench: ratios use CPU time per alloc+free pair\n");
  std::printf("pmm_bench: (random fill, for reference) pmm 99.9%%/0%% %.2fx, naive/pmm at 99.9%% %.2fx\n",
              get("BM_Pmm_Random/999") / get("BM_Pmm_Random/0"),
              get("BM_Naive_Random/999") / get("BM_Pmm_Random/999"));
  std::printf(
      "pmm_bench: metadata: %llu bytes for 64 GiB = %.4f bytes per 4 KiB frame = %.5f%% of RAM (target <= "
      "0.01%%): %s\n",
      static_cast<unsigned long long>(s.metadata_bytes), per_frame, percent, meta_ok ? "PASS" : "FAIL");
  ratio("pmm alloc+free 99.9% full / empty (bottom fill)", get("BM_Pmm_Bottom/999"), get("BM_Pmm_Bottom/0"),
        2, true);
  ratio("naive scan / pmm at 99.9% full (bottom fill)", get("BM_Naive_Bottom/999"), get("BM_Pmm_Bottom/999"),
        50, false);
  std::printf("pmm_bench: %s\n", ok ? "all targets met" : "TARGET MISSED");
  return ok ? 0 : 1;
}
