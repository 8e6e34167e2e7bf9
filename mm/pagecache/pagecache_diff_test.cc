// Randomised differential test of mm.page_cache: seeded reads, writes, syncs, drops and reclaims
// at random offsets and lengths across two backings, on a real PageCache over a 64-frame PMM and
// on the byte-array model of pagecache_model.h. After every operation both backings read through
// the cache equal the model; after every sync the backing's bytes do.
//
// The seed is printed; FERRITE_SEED=<n> replays a run, FERRITE_OPS=<n> changes its length.
#include <gtest/gtest.h>

#include <cstdint>

#include "mm/pagecache/pagecache_model.h"
#include "testing/seed.h"

namespace {

TEST(PageCacheDiffTest, RandomOperationsMatchTheModel) {
  const std::uint64_t seed = ferrite_testing::test_seed();
  const std::uint64_t ops = ferrite_testing::env_u64("FERRITE_OPS", 3000);
  pagecache_model::Harness h(seed);
  for (std::uint64_t i = 0; i < ops; ++i) {
    std::string err = h.step();
    ASSERT_TRUE(err.empty()) << "step " << i << ": " << err << " (FERRITE_SEED=" << seed << ")";
  }
  std::string err = h.finish();
  ASSERT_TRUE(err.empty()) << err << " (FERRITE_SEED=" << seed << ")";
  // The run exercised what it is about: misses, hits, eviction, write back, running out of frames.
  mm::PageCacheStats s = h.stats();
  EXPECT_GT(s.hits, 0u);
  EXPECT_GT(s.misses, 0u);
  EXPECT_GT(s.evicted, 100u);
  EXPECT_GT(s.written_back, 0u);
  EXPECT_GT(s.readahead_pages, 0u);
  EXPECT_GT(h.no_memory(), 0u);
}

}  // namespace
