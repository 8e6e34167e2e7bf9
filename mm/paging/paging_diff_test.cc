// Randomised differential test of mm.paging against the shadow model (mm/paging/paging_model.h), for every
// format: a seeded stream of map/unmap/protect (4 KiB, huge, 1 GiB), range operations that split
// huge leaves at their edges, explicit reclaim, and phases of injected allocation failures. Each
// operation's outcome, frame, flush token and unmapped-page count must match the model; probe
// translations must agree three ways (model, engine, software walker); the allocator's used frames
// must equal the model's tables; and every 50,000 operations the walker's full enumeration of the
// tree must equal the model. The run ends by draining everything back to the root frame.
//
//   FERRITE_SEED=<n>          replays a run (the seed is printed, and repeated on failure)
//   FERRITE_PAGING_OPS=<n>    operations per format (default 1,000,000 for x86_64, the kernel's
//                             format, and 500,000 for each other one; the asan twin uses fewer)
#include <gtest/gtest.h>
#include "testing/seed.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "mm/paging/paging_model.h"

namespace {

using paging_model::Harness;
using paging_model::Op;
using paging_model::OpKind;
using std::uint64_t;
namespace paging = mm::paging;

uint64_t seed() { return ferrite_testing::test_seed(); }

// Addresses cluster in a few root slots, gigabytes, 2 MiB blocks and pages, so operations collide,
// share tables, split each other's leaves and leave tables to reclaim.
template <class F>
class Generator {
 public:
  using M = paging_model::Model<F>;
  explicit Generator(uint64_t s) : rng_(s) {}

  uint64_t below(uint64_t n) { return rng_() % n; }
  bool chance(unsigned percent) { return below(100) < percent; }

  uint64_t address() {
    uint64_t page = chance(90) ? below(8) : below(uint64_t{1} << F::kIndexBits);
    if constexpr (F::kLevels == 2) {
      return (1 + below(6)) * M::size(1) + page * 4096;
    } else {
      uint64_t half = 0;
      if constexpr (ktl::is_same<F, paging::Aarch64Upper>) half = uint64_t{1} << 47;
      if constexpr (ktl::is_same<F, paging::X86_64>) half = chance(50) ? uint64_t{1} << 47 : 0;
      return half + (1 + below(2)) * M::size(3) + below(3) * M::size(2) + below(4) * M::size(1) + page * 4096;
    }
  }
  unsigned level() {
    unsigned r = static_cast<unsigned>(below(100));
    if (r < 70) return 0;
    if (F::kLargestLeafLevel >= 2 && r >= 95) return 2;
    return 1;
  }
  uint64_t phys(uint64_t align) {
    uint64_t limit = std::min<uint64_t>(F::kPhysLimit, uint64_t{1} << 40);
    return (rng_() % limit) & ~(align - 1);
  }
  mm::PageFlags flags() {
    uint64_t b = rng_();
    return mm::PageFlags()
        .with((b & 1) ? mm::Access::ReadWrite : mm::Access::ReadOnly)
        .with((b & 2) ? mm::Exec::Yes : mm::Exec::No)
        .with((b & 4) ? mm::Privilege::User : mm::Privilege::Kernel)
        .with((b & 8) ? mm::Scope::Global : mm::Scope::Local)
        .with(static_cast<mm::CacheMode>((b >> 4) % 4));
  }
  uint64_t range_bytes() {
    unsigned r = static_cast<unsigned>(below(100));
    if (r < 40) return (1 + below(8)) * 4096;
    if (r < 80) return (1 + below(2 * (uint64_t{1} << F::kIndexBits))) * 4096;
    return (1 + below(3)) * M::size(1) + below(4) * 4096;
  }

  Op next() {
    Op op;
    unsigned r = static_cast<unsigned>(below(100));
    op.kind = r < 25   ? OpKind::Map
              : r < 40 ? OpKind::Unmap
              : r < 48 ? OpKind::Protect
              : r < 60 ? OpKind::MapRange
              : r < 75 ? OpKind::UnmapRange
              : r < 83 ? OpKind::ProtectRange
              : r < 90 ? OpKind::Reclaim
                       : OpKind::Translate;
    op.flags = flags();
    switch (op.kind) {
      case OpKind::Map:
      case OpKind::Unmap:
      case OpKind::Protect:
        op.level = level();
        op.va = address() & ~(M::size(op.level) - 1);
        op.pa = phys(M::size(op.level));
        op.bytes = M::size(op.level);
        break;
      case OpKind::MapRange:
        op.va = address();
        op.bytes = range_bytes();
        // Often congruent modulo the largest leaf, so huge pages fit.
        op.pa = chance(60)
                    ? phys(M::size(F::kLargestLeafLevel)) + (op.va & (M::size(F::kLargestLeafLevel) - 1))
                    : phys(4096);
        op.huge = chance(80) ? mm::HugePages::Allow : mm::HugePages::Deny;
        break;
      case OpKind::UnmapRange:
      case OpKind::ProtectRange:
        op.va = address();
        op.bytes = range_bytes();
        break;
      case OpKind::Reclaim: {
        unsigned l = static_cast<unsigned>(below(F::kLevels));
        op.va = address() & ~(M::size(l) - 1);
        op.bytes = M::size(l) * (1 + below(3));
        break;
      }
      default:
        op.va = address();
        op.bytes = 4096;
        break;
    }
    // Stay inside the half the format translates.
    uint64_t end = Harness<F>::space_end();
    if (op.va + op.bytes > end || op.va + op.bytes < op.va) op.bytes = end - op.va;
    if (ktl::is_same<F, paging::X86_64> && op.va < (uint64_t{1} << 47) &&
        op.va + op.bytes > (uint64_t{1} << 47)) {
      op.bytes = (uint64_t{1} << 47) - op.va;
    }
    return op;
  }

 private:
  std::mt19937_64 rng_;
};

template <class F>
void differential(uint64_t s) {
  const uint64_t ops =
      ferrite_testing::env_u64("FERRITE_PAGING_OPS", ktl::is_same<F, paging::X86_64> ? 1'000'000 : 500'000);
  auto memory = mm::test_env::TestMemory::acquire(16 << 20).release_value();
  Harness<F> h(memory);
  Generator<F> gen(s);
  std::map<std::string, uint64_t> outcomes;
  mm::arch::reset_tlb_log();
  std::printf("%s: seed %llu (replay with FERRITE_SEED=%llu)\n", F::kName, static_cast<unsigned long long>(s),
              static_cast<unsigned long long>(s));
  auto started = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < ops; ++i) {
    // Every 100,000 operations, 20,000 with one allocation in 8 failing.
    if (i % 100'000 == 50'000) h.frames().fail_randomly(s + i, 8);
    if (i % 100'000 == 70'000) h.frames().fail_never();
    Op op = gen.next();
    std::vector<uint64_t> probes = {op.va, op.va + (op.bytes - 1), gen.address() + gen.below(4096)};
    std::string failure = h.run(op, probes);
    ASSERT_EQ(failure, "") << "operation " << i << ": " << paging_model::describe(op)
                           << "\n  replay with FERRITE_SEED=" << s;
    std::string key = std::string(paging_model::name(op.kind)) + " " +
                      (h.last_error() ? mm::to_string(*h.last_error()) : "ok");
    ++outcomes[key];
    if (i % 50'000 == 49'999) {
      ASSERT_EQ(h.check_everything(), "") << "after operation " << i << "\n  replay with FERRITE_SEED=" << s;
    }
  }
  ASSERT_EQ(h.check_everything(), "") << "replay with FERRITE_SEED=" << s;
  ASSERT_EQ(h.drain(), "") << "replay with FERRITE_SEED=" << s;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string summary;
  for (const auto& [k, n] : outcomes) summary += "  " + k + ": " + std::to_string(n) + "\n";
  std::printf("%s: %llu operations in %.2f s (seed %llu)\n%s", F::kName, static_cast<unsigned long long>(ops),
              seconds, static_cast<unsigned long long>(s), summary.c_str());
  // The run exercised what it claims to (with fewer operations only the basics are required).
  EXPECT_GT(outcomes["map ok"], 0u);
  EXPECT_GT(outcomes["unmap ok"] + outcomes["unmap_range ok"], 0u);
  if (ops >= 100'000) {
    EXPECT_GT(outcomes["map already mapped"], 0u);
    EXPECT_GT(outcomes["map a page table occupies the slot"], 0u);
    EXPECT_GT(outcomes["unmap mapped with a different page size"], 0u);
    EXPECT_GT(outcomes["protect_range not mapped"], 0u);
    EXPECT_GT(
        outcomes["map out of memory for page tables"] + outcomes["map_range out of memory for page tables"],
        0u);
    EXPECT_GT(outcomes["unmap out of memory for page tables"] +
                  outcomes["unmap_range out of memory for page tables"],
              0u);
    EXPECT_GT(outcomes["reclaim ok"], 0u);
  }
}

TEST(PagingDifferential, X86_64) {
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed()));
  differential<paging::X86_64>(seed());
}
TEST(PagingDifferential, X86_32) {
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed()));
  differential<paging::X86_32>(seed());
}
TEST(PagingDifferential, Aarch64Ttbr0) {
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed()));
  differential<paging::Aarch64Lower>(seed());
}
TEST(PagingDifferential, Aarch64Ttbr1) {
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed()));
  differential<paging::Aarch64Upper>(seed());
}

}  // namespace
