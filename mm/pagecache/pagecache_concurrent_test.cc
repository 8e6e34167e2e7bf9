// Concurrency test of mm.page_cache (run under TSan too): readers that share pages (and their
// misses), a writer of a region of its own reading its writes back, and a thread that reclaims,
// drops and syncs all the while. Afterwards the backing holds exactly what was written.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "mm/pagecache/pagecache_testing.h"
#include "testing/seed.h"

import ktl;
import mm.page_cache;
import mm.reclaim;

namespace {

using ktl::u64;
using ktl::u8;
using pagecache_testing::kPage;

constexpr u64 kPages = 64;
constexpr u64 kShared = 32;  // pages [0, 32) only read; [32, 64) the writer's

TEST(PageCacheConcurrentTest, ReadersWriterAndReclaim) {
  const u64 seed = ferrite_testing::test_seed();
  const u64 ops = ferrite_testing::env_u64("FERRITE_OPS", 1500);
  pagecache_testing::Env env(96, 40);  // fewer frames than pages: reads run out, reclaim helps
  pagecache_testing::MemBacking backing(env.window(), kPages * kPage);
  pagecache_testing::fill_pattern(backing.bytes(), seed);
  const std::vector<u8> initial = backing.bytes();
  mm::PageCacheConfig config;
  config.readahead_pages = 8;
  config.io_wait = pagecache_testing::yield_wait;
  mm::PageCache cache(env.table(), config);
  auto id = cache.attach(backing).value();
  std::atomic<bool> stop{false};
  std::atomic<u64> failures{0}, no_memory{0};

  auto reader = [&](u64 salt) {
    std::mt19937_64 rng(seed + salt);
    std::vector<u8> buf(3 * kPage);
    for (u64 i = 0; i < ops; ++i) {
      u64 off = rng() % (kShared * kPage - 3 * kPage);
      u64 len = 1 + rng() % (3 * kPage);
      if (rng() % 4 == 0) off = (i % (kShared - 3)) * kPage;  // sequential runs: read-ahead
      auto r = cache.read(id, off, ktl::Span<u8>(buf).first(len));
      if (r.is_err()) {
        if (r.error() == mm::IoError::NoMemory) {
          no_memory.fetch_add(1);
          continue;
        }
        failures.fetch_add(1);
        continue;
      }
      if (r.value() != len || std::memcmp(buf.data(), initial.data() + off, len) != 0) failures.fetch_add(1);
    }
  };
  std::vector<u8> shadow(initial.begin() + kShared * kPage, initial.end());  // the writer's region
  auto writer = [&] {
    std::mt19937_64 rng(seed + 7);
    std::vector<u8> data(2 * kPage), back(2 * kPage);
    for (u64 i = 0; i < ops; ++i) {
      u64 off = rng() % (shadow.size() - 2 * kPage);
      u64 len = 1 + rng() % (2 * kPage);
      for (u64 k = 0; k < len; ++k) data[k] = static_cast<u8>(rng());
      auto w = cache.write(id, kShared * kPage + off, ktl::Span<const u8>(data).first(len));
      if (w.is_err()) {
        if (w.error() != mm::IoError::NoMemory) failures.fetch_add(1);
        continue;
      }
      std::memcpy(shadow.data() + off, data.data(), w.value());
      auto r = cache.read(id, kShared * kPage + off, ktl::Span<u8>(back).first(len));
      if (r.is_ok() && std::memcmp(back.data(), shadow.data() + off, r.value()) != 0) failures.fetch_add(1);
    }
  };
  auto reclaimer = [&] {
    u64 n = 0;
    while (!stop.load()) {
      mm::Reclaimer& r = cache;
      (void)r.reclaim(8);
      if (++n % 16 == 0) (void)cache.drop_clean();
      if (n % 32 == 0 && cache.sync(id).is_err()) failures.fetch_add(1);
      std::this_thread::yield();
    }
  };
  std::thread t1(reader, 1), t2(reader, 2), t3(writer), t4(reclaimer);
  t1.join();
  t2.join();
  t3.join();
  stop.store(true);
  t4.join();
  EXPECT_EQ(failures.load(), 0u) << "FERRITE_SEED=" << seed;
  ASSERT_TRUE(cache.sync(id).is_ok());
  EXPECT_EQ(std::memcmp(backing.bytes().data(), initial.data(), kShared * kPage), 0);
  EXPECT_EQ(std::memcmp(backing.bytes().data() + kShared * kPage, shadow.data(), shadow.size()), 0);
  mm::PageCacheStats st = cache.stats();
  std::printf("hits %llu misses %llu evicted %llu written back %llu, reads out of memory %llu\n",
              static_cast<unsigned long long>(st.hits), static_cast<unsigned long long>(st.misses),
              static_cast<unsigned long long>(st.evicted), static_cast<unsigned long long>(st.written_back),
              static_cast<unsigned long long>(no_memory.load()));
  EXPECT_GT(st.evicted, 0u);
  EXPECT_GT(st.hits, ops);  // most reads got through
  ASSERT_TRUE(cache.detach(id).is_ok());
  EXPECT_EQ(env.free_frames(), env.baseline() - cache.stats().entry_frames);
}

}  // namespace
