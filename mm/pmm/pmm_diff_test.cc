// Randomised differential test: a million seeded operations on a real Pmm and on the shadow model
// of pmm_model.h, compared after every operation (results, chosen frames, errors, logged
// addresses), with full state and statistics comparisons along the way.
//
// The seed is printed; FERRITE_SEED=<n> replays a run, FERRITE_OPS=<n> changes its length.
#include <gtest/gtest.h>
#include "testing/seed.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "mm/pmm/pmm_model.h"

namespace {

using mm::PhysKind;
using pmm_model::Harness;
using pmm_model::ModelMapEntry;
using pmm_model::u64;

constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
constexpr u64 kBase = 4 * GiB - 16 * MiB;
constexpr u64 kSize = 106 * MiB;

// Three nodes below and across 4 GiB (node 2's low arena directly adjacent to node 1's, so a free
// can run from one arena into another), a far arena of node 0 beyond a 78 MiB hole, reserved
// regions of several kinds, unaligned edges and a hole.
std::vector<ModelMapEntry> layout() {
  const u64 B = kBase;
  return {
      {B, B + 64 * KiB, PhysKind::Firmware, 0},
      {B + 64 * KiB, B + 2 * MiB + 0x800, PhysKind::Usable, 0},
      {B + 2 * MiB + 0x800, B + 2 * MiB + 0x3000, PhysKind::KernelImage, 0},
      {B + 2 * MiB + 0x3000, B + 8 * MiB, PhysKind::Usable, 0},
      {B + 8 * MiB, B + 8 * MiB + 16 * KiB, PhysKind::PageTables, 0},
      // hole [8 MiB + 16 KiB, 9 MiB)
      {B + 9 * MiB, B + 10 * MiB, PhysKind::Usable, 2},  // node 2's low arena, adjacent to node 1
      {B + 10 * MiB, B + 12 * MiB, PhysKind::Usable, 1},
      {B + 12 * MiB, B + 12 * MiB + 0x1800, PhysKind::BootData, 1},
      {B + 12 * MiB + 0x1800, B + 20 * MiB, PhysKind::Usable, 1},  // crosses 4 GiB
      {B + 20 * MiB, B + 22 * MiB, PhysKind::Usable, 2},           // node 2's metadata goes here
      // hole [22 MiB, 100 MiB): more than Pmm::kMergeGapFrames, so a separate arena follows
      {B + 100 * MiB, B + 104 * MiB, PhysKind::Usable, 0},
      {B + 104 * MiB, B + 106 * MiB, PhysKind::Device, 0},
  };
}

TEST(PmmDifferential, MillionOpsAgainstShadowModel) {
  const u64 seed = ferrite_testing::test_seed();
  const u64 target_ops = ferrite_testing::env_u64("FERRITE_OPS", 1'000'000);
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](u64 n) { return rng() % n; };

  auto memory = mm::test_env::TestMemory::acquire_at(mm::PhysAddr::from(kBase), kSize).release_value();
  Harness h(memory.window(), kSize, layout());
  ASSERT_TRUE(h.ready()) << h.failure();
  ASSERT_EQ(h.pmm().arena_count(), 5u) << "layout meant to give node0 low, node2, node1, node2, node0 far";

  const u64 first = h.first_frame();
  const u64 end = first + h.frame_count();
  const u64 four_gib = 4 * GiB / 4096;
  const u64 counts[] = {2, 3, 5, 8, 16, 64, 127, 128, 130, 300, 512};
  const u64 aligns[] = {1, 2, 8, 64, 512};
  u64 iterations = 0;
  while (h.ops < target_ops && h.ok()) {
    ++iterations;
    bool filling = (iterations / 25'000) % 2 == 0;
    u64 x = pick(100);
    u64 alloc_weight = filling ? 45 : 22;
    if (x < alloc_weight) {
      u64 kind = pick(16);
      std::optional<uint32_t> node;
      mm::Fallback fallback = pick(2) ? mm::Fallback::AnyNode : mm::Fallback::None;
      std::optional<u64> below;
      if (kind >= 10 && pick(2)) node = static_cast<uint32_t>(pick(4));  // node 3 has no memory
      if (kind == 11 && pick(64) == 0) node = mm::kMaxNumaNodes + static_cast<uint32_t>(pick(3));  // invalid
      if (kind >= 12 && pick(2)) below = pick(4) ? four_gib : first + pick(end - first);
      if (kind < 13) {
        h.alloc(1, 1, node, fallback, below, /*raw=*/kind < 3);
      } else {
        h.alloc(counts[pick(std::size(counts))], aligns[pick(std::size(aligns))], node, fallback, below);
      }
    } else if (x < alloc_weight + 35) {
      h.drop_owned(pick(1 << 20));
    } else if (x < alloc_weight + 39) {
      h.split_owned(pick(1 << 20), pick(1 << 20));
    } else if (x < alloc_weight + 43) {
      h.release_owned(pick(1 << 20));
    } else if (x < alloc_weight + 50) {
      h.free_raw(pick(1 << 20), pick(4) == 0);
    } else if (x < alloc_weight + 53) {
      // Mostly anywhere; sometimes just below the node 2 / node 1 boundary, so runs cross it.
      u64 f = pick(8) ? first - 8 + pick(end - first + 16) : first + (10 * MiB) / 4096 - 1 - pick(64);
      h.free_arbitrary(f, pick(4) ? 1 + pick(4) : 1 + pick(600));
    } else if (x < alloc_weight + 56) {
      h.claim(first - 8 + pick(end - first + 16), 1 + pick(3));
    } else {
      h.check_stats();
    }
    h.check_touched();
    if (iterations % 50'000 == 0) h.check_all();
  }
  ASSERT_TRUE(h.ok()) << h.failure() << " (FERRITE_SEED=" << seed << ")";
  EXPECT_GE(h.ops, target_ops);
  h.teardown();
  ASSERT_TRUE(h.ok()) << h.failure() << " (FERRITE_SEED=" << seed << ")";
  std::printf("PmmDifferential: %llu operations, %llu iterations\n", static_cast<unsigned long long>(h.ops),
              static_cast<unsigned long long>(iterations));
  for (const auto& [what, n] : h.tally) std::printf("  %-40s %llu\n", what.c_str(), n);
  // The mix must reach every outcome, or the comparison proves less than it claims.
  for (const char* what :
       {"alloc ok", "alloc out of physical memory", "alloc invalid request", "alloc run ok",
        "alloc run out of physical memory", "drop ok", "split ok", "free ok", "free double free",
        "free frame is reserved", "free frame holds the PMM's metadata", "free frame not managed by the PMM",
        "free range crosses from one arena into another", "claim ok", "claim frame already allocated",
        "claim frame is reserved", "claim frame holds the PMM's metadata",
        "claim frame not managed by the PMM"}) {
    EXPECT_GT(h.tally[what], 0u) << "never reached: " << what;
  }
}

// The model itself must be able to notice a wrong answer: a harness whose map disagrees with what
// the Pmm was told must fail (guards against a model that accepts anything).
TEST(PmmDifferential, ModelDetectsADivergence) {
  auto memory = mm::test_env::TestMemory::acquire_at(mm::PhysAddr::from(kBase), kSize).release_value();
  Harness h(memory.window(), kSize, layout());
  ASSERT_TRUE(h.ready()) << h.failure();
  // Take a frame behind the model's back: the next full check must notice.
  auto stolen = h.pmm().alloc_page_unowned();
  ASSERT_TRUE(stolen.is_ok());
  h.check_all();
  EXPECT_FALSE(h.ok());
  EXPECT_NE(h.failure().find("states_of"), std::string::npos) << h.failure();
  ASSERT_TRUE(h.pmm().free_page(stolen.value()).is_ok());
}

}  // namespace
