// Tests of mm.page_cache: hits and misses, sharing, partial pages, read-ahead in one batched read,
// write back on sync, eviction writing dirty pages first, the second-chance order, I/O errors
// (reported, no stale page left, write errors keep the page dirty), running out of memory, reclaim
// through the Reclaimer interface giving frames back to the PMM, and re-reading evicted pages.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "mm/pagecache/pagecache_testing.h"

import ktl;
import mm.addr;
import mm.frame_table;
import mm.frames;
import mm.page_cache;
import mm.pmm;
import mm.reclaim;

namespace {

using ktl::u32;
using ktl::u64;
using ktl::u8;
using mm::IoError;
using mm::PageCache;
using pagecache_testing::Env;
using pagecache_testing::kPage;
using pagecache_testing::MemBacking;

class PageCacheTest : public testing::Test {
 protected:
  explicit PageCacheTest(u64 frames = 512, mm::PageCacheConfig config = {}) : env_(frames) {
    config.io_wait = pagecache_testing::yield_wait;
    config_ = config;
  }
  void SetUp() override { cache_ = std::make_unique<PageCache>(env_.table(), config_); }
  void TearDown() override {
    for (auto id : attached_) EXPECT_TRUE(cache_->detach(id).is_ok());
    EXPECT_EQ(cache_->stats().pages, 0u);
    cache_.reset();
    EXPECT_EQ(env_.free_frames(), env_.baseline());  // every frame back
  }

  MemBacking& backing(u64 size, u64 seed = 1) {
    backings_.push_back(std::make_unique<MemBacking>(env_.window(), size));
    pagecache_testing::fill_pattern(backings_.back()->bytes(), seed);
    return *backings_.back();
  }
  mm::BackingId attach(MemBacking& b) {
    auto id = cache_->attach(b).value();
    attached_.push_back(id);
    return id;
  }
  std::vector<u8> read(mm::BackingId id, u64 offset, u64 len) {
    std::vector<u8> out(len);
    auto r = cache_->read(id, offset, ktl::Span<u8>(out));
    EXPECT_TRUE(r.is_ok()) << (r.is_ok() ? "" : mm::to_string(r.error()));
    if (r.is_ok()) out.resize(r.value());
    return out;
  }
  static std::vector<u8> slice(const std::vector<u8>& v, u64 offset, u64 len) {
    return std::vector<u8>(v.begin() + static_cast<long>(offset),
                           v.begin() + static_cast<long>(offset + len));
  }

  Env env_;
  mm::PageCacheConfig config_;
  std::vector<std::unique_ptr<MemBacking>> backings_;  // outlive the cache
  std::unique_ptr<PageCache> cache_;
  std::vector<mm::BackingId> attached_;
};

// No read-ahead: one page per miss, so the tests can count pages exactly.
class PageCacheNoReadaheadTest : public PageCacheTest {
 protected:
  PageCacheNoReadaheadTest() : PageCacheTest(512, mm::PageCacheConfig{.readahead_pages = 1}) {}
};

TEST(PageCacheErrors, EveryErrorHasItsOwnText) {
  EXPECT_TRUE(ktl::check_enum_text<mm::IoError>().ok);
  EXPECT_EQ(ktl::check_enum_text<mm::IoError>().count, 6u);
  EXPECT_TRUE(ktl::check_enum_text<mm::PageCacheError>().ok);
  EXPECT_STREQ(mm::to_string(mm::FrameOwner::PageCache), "page cache");
}

TEST_F(PageCacheNoReadaheadTest, MissThenHit) {
  MemBacking& b = backing(16 * kPage);
  auto id = attach(b);
  EXPECT_EQ(read(id, 100, 50), slice(b.bytes(), 100, 50));
  EXPECT_EQ(cache_->stats().misses, 1u);
  EXPECT_EQ(cache_->stats().hits, 0u);
  EXPECT_EQ(read(id, 200, 10), slice(b.bytes(), 200, 10));
  EXPECT_EQ(cache_->stats().misses, 1u);
  EXPECT_EQ(cache_->stats().hits, 1u);
  EXPECT_EQ(b.reads().size(), 1u);
  EXPECT_EQ(cache_->stats().pages, 1u);
  EXPECT_EQ(env_.free_frames(), env_.baseline() - 1 - cache_->stats().entry_frames);
  // The frame is the cache's in the frame table, with its flags.
  EXPECT_EQ(cache_->reclaimable(), 1u);
}

TEST_F(PageCacheNoReadaheadTest, ShortAtTheEndAndOutOfRange) {
  MemBacking& b = backing(2 * kPage + 100);
  auto id = attach(b);
  EXPECT_EQ(read(id, 2 * kPage, 4096), slice(b.bytes(), 2 * kPage, 100));
  EXPECT_EQ(read(id, 2 * kPage + 100, 10).size(), 0u);
  EXPECT_EQ(read(id, 99 * kPage, 10).size(), 0u);
  std::vector<u8> data(200, 7);
  auto w = cache_->write(id, 2 * kPage, ktl::Span<const u8>(data));
  ASSERT_TRUE(w.is_err());
  EXPECT_EQ(w.error(), IoError::OutOfRange);
  EXPECT_EQ(cache_->write(id, 2 * kPage, ktl::Span<const u8>(data).first(100)).value(), 100u);
  std::vector<u8> out(10);
  auto bad = cache_->read(mm::BackingId{3, 0}, 0, ktl::Span<u8>(out));
  ASSERT_TRUE(bad.is_err());
  EXPECT_EQ(bad.error(), IoError::UnknownBacking);
}

TEST_F(PageCacheNoReadaheadTest, PagesAreSharedByAllReadersAndWriters) {
  MemBacking& b = backing(8 * kPage);
  auto id = attach(b);
  std::vector<u8> first = read(id, 3 * kPage, kPage);
  std::vector<u8> data(10, 0xAB);
  ASSERT_EQ(cache_->write(id, 3 * kPage + 5, ktl::Span<const u8>(data)).value(), 10u);
  std::vector<u8> again = read(id, 3 * kPage, kPage);
  for (int i = 0; i < 10; ++i) first[5 + i] = 0xAB;
  EXPECT_EQ(again, first);
  EXPECT_EQ(b.reads().size(), 1u);  // one read of the page, shared
  EXPECT_EQ(cache_->stats().pages, 1u);
  EXPECT_EQ(cache_->stats().dirty, 1u);
}

TEST_F(PageCacheNoReadaheadTest, PartialPagesAreReadModifyWritten) {
  MemBacking& b = backing(8 * kPage);
  auto id = attach(b);
  std::vector<u8> expected = b.bytes();
  std::vector<u8> data(20);
  for (int i = 0; i < 20; ++i) data[i] = static_cast<u8>(200 + i);
  ASSERT_EQ(cache_->write(id, kPage - 10, ktl::Span<const u8>(data)).value(), 20u);  // across pages 0 and 1
  std::memcpy(expected.data() + kPage - 10, data.data(), 20);
  EXPECT_EQ(b.reads().size(), 2u);  // both pages read first
  EXPECT_EQ(read(id, 0, 8 * kPage), expected);
  ASSERT_TRUE(cache_->sync(id).is_ok());
  EXPECT_EQ(b.bytes(), expected);
  // A whole-page write needs no read.
  b.clear_calls();
  std::vector<u8> page(kPage, 0x5A);
  ASSERT_EQ(cache_->write(id, 5 * kPage, ktl::Span<const u8>(page)).value(), kPage);
  EXPECT_EQ(b.reads().size(), 0u);
  ASSERT_TRUE(cache_->sync(id).is_ok());
  EXPECT_EQ(slice(b.bytes(), 5 * kPage, kPage), page);
}

TEST_F(PageCacheTest, SequentialReadsAreReadAheadInOneBatchedCall) {
  MemBacking& b = backing(256 * kPage);
  auto id = attach(b);
  for (u64 p = 0; p < 64; ++p) ASSERT_EQ(read(id, p * kPage, kPage), slice(b.bytes(), p * kPage, kPage));
  auto reads = b.reads();
  u64 largest = 0, pages = 0;
  for (auto& c : reads) {
    largest = std::max(largest, c.count);
    pages += c.count;
  }
  EXPECT_LT(reads.size(), 10u);  // 64 pages in a few calls
  EXPECT_GE(largest, 16u);
  EXPECT_LE(largest, u64{PageCache::kMaxReadahead});
  EXPECT_GE(pages, 64u);
  EXPECT_GT(cache_->stats().readahead_pages, 0u);
  EXPECT_GT(cache_->stats().hits, 40u);
  // A random read far away is not read ahead.
  b.clear_calls();
  (void)read(id, 200 * kPage + 7, 10);
  ASSERT_EQ(b.reads().size(), 1u);
  EXPECT_EQ(b.reads()[0].count, 1u);
  EXPECT_EQ(b.reads()[0].first, 200u);
  // One large read is one call too.
  b.clear_calls();
  ASSERT_EQ(read(id, 100 * kPage, 20 * kPage), slice(b.bytes(), 100 * kPage, 20 * kPage));
  ASSERT_EQ(b.reads().size(), 1u);
  EXPECT_EQ(b.reads()[0].count, 20u);
}

TEST_F(PageCacheNoReadaheadTest, SyncWritesDirtyPagesBackThenFlushes) {
  MemBacking& b = backing(8 * kPage);
  auto id = attach(b);
  std::vector<u8> before = b.bytes();
  std::vector<u8> data(3 * kPage, 0x11);
  ASSERT_EQ(cache_->write(id, 2 * kPage, ktl::Span<const u8>(data)).value(), 3 * kPage);
  EXPECT_EQ(b.bytes(), before);  // nothing written yet
  EXPECT_EQ(cache_->stats().dirty, 3u);
  ASSERT_TRUE(cache_->sync(id).is_ok());
  EXPECT_EQ(b.flushes(), 1u);
  EXPECT_EQ(cache_->stats().dirty, 0u);
  EXPECT_EQ(cache_->stats().written_back, 3u);
  std::memcpy(before.data() + 2 * kPage, data.data(), data.size());
  EXPECT_EQ(b.bytes(), before);
  // A second sync has nothing to write.
  b.clear_calls();
  ASSERT_TRUE(cache_->sync_all().is_ok());
  EXPECT_EQ(b.writes().size(), 0u);
}

TEST_F(PageCacheNoReadaheadTest, ContiguousDirtyPagesAreWrittenInOneCall) {
  MemBacking& b = backing(16 * kPage);
  auto id = attach(b);
  std::vector<u8> expected = b.bytes();
  for (u64 p : {2, 3, 4, 5, 6, 9}) {  // separate writes; 2..6 one run
    std::vector<u8> page(kPage, static_cast<u8>(p));
    ASSERT_TRUE(cache_->write(id, p * kPage, ktl::Span<const u8>(page)).is_ok());
    std::memset(expected.data() + p * kPage, static_cast<int>(p), kPage);
  }
  ASSERT_TRUE(cache_->sync(id).is_ok());
  EXPECT_EQ(b.bytes(), expected);
  auto writes = b.writes();
  ASSERT_EQ(writes.size(), 2u);  // [2, 7) and [9, 10)
  u64 pages = 0, largest = 0;
  for (auto& w : writes) {
    pages += w.count;
    largest = std::max(largest, w.count);
  }
  EXPECT_EQ(pages, 6u);
  EXPECT_EQ(largest, 5u);
  EXPECT_EQ(cache_->stats().written_back, 6u);
  EXPECT_EQ(cache_->stats().dirty, 0u);
}

TEST_F(PageCacheNoReadaheadTest, EvictionWritesDirtyPagesFirst) {
  MemBacking& b = backing(8 * kPage);
  auto id = attach(b);
  std::vector<u8> expected = b.bytes();
  for (u64 p = 0; p < 4; ++p) {
    std::vector<u8> data(100, static_cast<u8>(p + 1));
    ASSERT_TRUE(cache_->write(id, p * kPage + 50, ktl::Span<const u8>(data)).is_ok());
    std::memset(expected.data() + p * kPage + 50, static_cast<int>(p + 1), 100);
  }
  u64 free_before = env_.free_frames();
  mm::Reclaimer& r = *cache_;
  EXPECT_EQ(r.reclaimable(), 4u);
  mm::ReclaimBatch batch = r.reclaim(10);  // referenced pages get a second chance: asks more than once
  while (batch.freed < 4 && batch.scanned > 0) {
    mm::ReclaimBatch more = r.reclaim(10);
    batch.freed += more.freed;
    batch.scanned = more.scanned;
  }
  EXPECT_EQ(batch.freed, 4u);
  EXPECT_EQ(env_.free_frames(), free_before + 4);
  EXPECT_EQ(b.written_pages().size(), 4u);
  EXPECT_EQ(b.bytes(), expected);  // written before the frames went
  EXPECT_EQ(cache_->stats().pages, 0u);
  EXPECT_EQ(read(id, 0, 8 * kPage), expected);
}

TEST_F(PageCacheNoReadaheadTest, ReclaimGivesReferencedPagesASecondChance) {
  MemBacking& b = backing(8 * kPage);
  auto id = attach(b);
  (void)read(id, 0 * kPage, 1);  // A
  (void)read(id, 4 * kPage, 1);  // B
  (void)read(id, 6 * kPage, 1);  // C
  (void)read(id, 0 * kPage, 1);  // A again: referenced
  mm::Reclaimer& r = *cache_;
  EXPECT_EQ(r.reclaim(1).freed, 1u);  // A is oldest but referenced: B goes
  u64 misses = cache_->stats().misses;
  (void)read(id, 6 * kPage, 1);  // C still there
  (void)read(id, 0 * kPage, 1);  // A still there
  EXPECT_EQ(cache_->stats().misses, misses);
  (void)read(id, 4 * kPage, 1);  // B was evicted
  EXPECT_EQ(cache_->stats().misses, misses + 1);
  // Now C and A are referenced, B (re-read) is not: B goes first again.
  EXPECT_EQ(r.reclaim(1).freed, 1u);
  misses = cache_->stats().misses;
  (void)read(id, 6 * kPage, 1);
  EXPECT_EQ(cache_->stats().misses, misses);  // C kept
  (void)read(id, 4 * kPage, 1);
  EXPECT_EQ(cache_->stats().misses, misses + 1);  // B evicted
}

TEST_F(PageCacheTest, ReadErrorsReachTheCallerAndLeaveNoStalePage) {
  MemBacking& b = backing(64 * kPage);
  auto id = attach(b);
  b.set_bad_read(3, true);
  std::vector<u8> out(10);
  auto r = cache_->read(id, 3 * kPage, ktl::Span<u8>(out));
  ASSERT_TRUE(r.is_err());
  EXPECT_EQ(r.error(), IoError::Device);
  EXPECT_EQ(cache_->stats().pages, 0u);
  EXPECT_GE(cache_->stats().io_errors, 1u);
  EXPECT_EQ(env_.free_frames(), env_.baseline() - cache_->stats().entry_frames);
  b.set_bad_read(3, false);
  EXPECT_EQ(read(id, 3 * kPage, 10), slice(b.bytes(), 3 * kPage, 10));  // read again, correct
  // A failed read-ahead does not fail the page asked for, and leaves none of its batch.
  b.set_bad_read(20, true);
  for (u64 p = 10; p < 18; ++p) EXPECT_EQ(read(id, p * kPage, kPage), slice(b.bytes(), p * kPage, kPage));
  auto bad = cache_->read(id, 20 * kPage, ktl::Span<u8>(out));
  ASSERT_TRUE(bad.is_err());
  b.set_bad_read(20, false);
  EXPECT_EQ(read(id, 20 * kPage, kPage), slice(b.bytes(), 20 * kPage, kPage));  // never the 0xEE left behind
}

TEST_F(PageCacheNoReadaheadTest, WriteBackErrorsKeepThePageDirty) {
  MemBacking& b = backing(8 * kPage);
  auto id = attach(b);
  std::vector<u8> data(kPage, 0x77);
  ASSERT_TRUE(cache_->write(id, 2 * kPage, ktl::Span<const u8>(data)).is_ok());
  b.set_bad_write(2, true);
  auto s = cache_->sync(id);
  ASSERT_TRUE(s.is_err());
  EXPECT_EQ(s.error(), IoError::Device);
  EXPECT_EQ(cache_->stats().dirty, 1u);
  // Reclaim cannot evict it either (it tries to write it, fails, keeps it).
  mm::Reclaimer& r = *cache_;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(r.reclaim(8).freed, 0u);
  EXPECT_GE(b.failed_writes().size(), 2u);
  EXPECT_EQ(cache_->drop_clean(), 0u);
  EXPECT_EQ(read(id, 2 * kPage, kPage), data);  // not lost
  b.set_bad_write(2, false);
  ASSERT_TRUE(cache_->sync(id).is_ok());
  EXPECT_EQ(slice(b.bytes(), 2 * kPage, kPage), data);
  EXPECT_EQ(cache_->stats().dirty, 0u);
}

class PageCacheNoMemoryTest : public PageCacheTest {
 protected:
  PageCacheNoMemoryTest() : PageCacheTest(64, mm::PageCacheConfig{.readahead_pages = 4}) {}
};

TEST_F(PageCacheNoMemoryTest, RunningOutOfFramesIsACleanError) {
  MemBacking& b = backing(64 * kPage);
  auto id = attach(b);
  // Hold every free frame but 3, and reserve those 3 for atomic allocations: the cache's
  // NoReclaim allocations (its entries' frame too) may not take them.
  std::vector<mm::AllocatedFrames> held;
  while (env_.free_frames() > 3) held.push_back(env_.pmm().alloc_page().release_value());
  ASSERT_TRUE(env_.pmm().set_atomic_reserve(3).is_ok());
  std::vector<u8> out(10);
  auto r = cache_->read(id, 0, ktl::Span<u8>(out));
  ASSERT_TRUE(r.is_err());
  EXPECT_EQ(r.error(), IoError::NoMemory);
  std::vector<u8> data(kPage, 1);
  auto w = cache_->write(id, 0, ktl::Span<const u8>(data));
  ASSERT_TRUE(w.is_err());
  EXPECT_EQ(w.error(), IoError::NoMemory);
  EXPECT_EQ(cache_->stats().pages, 0u);
  EXPECT_EQ(cache_->stats().entry_frames, 0u);
  EXPECT_EQ(env_.free_frames(), 3u);
  ASSERT_TRUE(env_.pmm().set_atomic_reserve(0).is_ok());
  // With 3 frames (one becomes the entries' chunk): the read-ahead window shrinks to what there is.
  EXPECT_EQ(read(id, 0, kPage), slice(b.bytes(), 0, kPage));
  EXPECT_EQ(read(id, kPage, kPage), slice(b.bytes(), kPage, kPage));
  EXPECT_EQ(env_.free_frames(), 0u);
  auto none = cache_->read(id, 40 * kPage, ktl::Span<u8>(out));
  ASSERT_TRUE(none.is_err());
  EXPECT_EQ(none.error(), IoError::NoMemory);
  held.clear();
  EXPECT_EQ(read(id, 40 * kPage, 10), slice(b.bytes(), 40 * kPage, 10));
}

TEST_F(PageCacheNoReadaheadTest, ReclaimFreesFramesBackToThePmm) {
  MemBacking& b = backing(64 * kPage);
  auto id = attach(b);
  for (u64 p = 0; p < 20; ++p) (void)read(id, p * kPage, 1);
  u64 free0 = env_.free_frames() + 20;          // free with the cache's entry frames but none of its pages
  EXPECT_EQ(cache_->stats().entry_frames, 1u);  // 20 entries fit in one chunk
  mm::Reclaimer& r = *cache_;
  EXPECT_STREQ(r.name(), "page_cache");
  EXPECT_EQ(r.reclaimable(), 20u);
  mm::ReclaimBatch batch = r.reclaim(8);
  EXPECT_EQ(batch.freed, 8u);
  EXPECT_GE(batch.scanned, 8u);
  EXPECT_EQ(env_.free_frames(), free0 - 12);
  EXPECT_EQ(r.reclaimable(), 12u);
  EXPECT_EQ(cache_->stats().evicted, 8u);
  EXPECT_EQ(cache_->drop_clean(), 12u);
  EXPECT_EQ(env_.free_frames(), free0);
}

TEST_F(PageCacheNoReadaheadTest, ReclaimThroughKswapd) {
  MemBacking& b = backing(64 * kPage);
  auto id = attach(b);
  for (u64 p = 0; p < 40; ++p) (void)read(id, p * kPage, 1);
  // A 50-frame machine whose only used memory is the cache: 80 % used, above high (20 %).
  constexpr u64 kTotal = 50;
  mm::Reclaim reclaim;
  reclaim.init(mm::MemoryGauge{[](void* c) { return kTotal - static_cast<PageCache*>(c)->stats().pages; },
                               cache_.get(), kTotal},
               mm::Watermarks{5, 10, 20});
  auto reg = reclaim.register_reclaimer(*cache_).release_value();
  auto tick = reclaim.kswapd_tick(1);
  EXPECT_TRUE(tick.ran);
  EXPECT_LE(tick.usage_after, 10u);
  EXPECT_GT(tick.freed, 0u);
  EXPECT_EQ(cache_->stats().pages, 40 - tick.freed);
}

TEST_F(PageCacheNoReadaheadTest, EveryEvictedPageIsReReadWithTheSameContents) {
  MemBacking& b = backing(48 * kPage);
  auto id = attach(b);
  std::vector<u8> expected = b.bytes();
  std::mt19937_64 rng(42);
  for (int i = 0; i < 60; ++i) {
    u64 off = rng() % (48 * kPage - 300);
    std::vector<u8> data(1 + rng() % 300);
    for (auto& c : data) c = static_cast<u8>(rng());
    ASSERT_TRUE(cache_->write(id, off, ktl::Span<const u8>(data)).is_ok());
    std::memcpy(expected.data() + off, data.data(), data.size());
    if (i == 30) ASSERT_TRUE(cache_->sync(id).is_ok());
  }
  mm::Reclaimer& r = *cache_;
  for (int i = 0; i < 10 && cache_->stats().pages > 0; ++i) (void)r.reclaim(64);
  EXPECT_EQ(cache_->stats().pages, 0u);
  EXPECT_EQ(b.bytes(), expected);
  EXPECT_EQ(read(id, 0, 48 * kPage), expected);
}

TEST_F(PageCacheNoReadaheadTest, AttachAndDetach) {
  MemBacking& b = backing(8 * kPage);
  auto id = cache_->attach(b).value();
  auto again = cache_->attach(b);
  ASSERT_TRUE(again.is_err());
  EXPECT_EQ(again.error(), mm::PageCacheError::AlreadyAttached);
  std::vector<u8> data(10, 3);
  ASSERT_TRUE(cache_->write(id, 10, ktl::Span<const u8>(data)).is_ok());
  ASSERT_TRUE(cache_->detach(id).is_ok());  // writes back, drops
  EXPECT_EQ(slice(b.bytes(), 10, 10), data);
  EXPECT_EQ(cache_->stats().pages, 0u);
  std::vector<u8> out(1);
  auto stale = cache_->read(id, 0, ktl::Span<u8>(out));
  ASSERT_TRUE(stale.is_err());
  EXPECT_EQ(stale.error(), IoError::UnknownBacking);
  // A detach that cannot write back keeps the backing attached.
  auto id2 = attach(b);
  EXPECT_NE(id2, id);
  ASSERT_TRUE(cache_->write(id2, 10, ktl::Span<const u8>(data)).is_ok());
  b.set_bad_write(0, true);
  EXPECT_TRUE(cache_->detach(id2).is_err());
  EXPECT_EQ(read(id2, 10, 10), data);
  b.set_bad_write(0, false);
  std::vector<std::unique_ptr<MemBacking>> more;
  for (u32 i = 1; i < PageCache::kMaxBackings; ++i) {
    more.push_back(std::make_unique<MemBacking>(env_.window(), kPage));
    attached_.push_back(cache_->attach(*more.back()).value());
  }
  MemBacking extra(env_.window(), kPage);
  auto full = cache_->attach(extra);
  ASSERT_TRUE(full.is_err());
  EXPECT_EQ(full.error(), mm::PageCacheError::TooManyBackings);
  for (u32 i = 1; i < PageCache::kMaxBackings; ++i) {
    ASSERT_TRUE(cache_->detach(attached_.back()).is_ok());
    attached_.pop_back();
  }
}

}  // namespace

// The entries grow a frame at a time up to max_pages; at the limit the cache evicts its own pages.
TEST(PageCacheGrowth, EntriesGrowByChunksUpToMaxPages) {
  Env env(1024);
  mm::PageCacheConfig config;
  config.io_wait = pagecache_testing::yield_wait;
  config.readahead_pages = 1;
  config.max_pages = PageCache::kEntriesPerChunk + 10;  // two chunks' worth of entries is enough
  auto cache = std::make_unique<PageCache>(env.table(), config);
  MemBacking b(env.window(), 400 * kPage);
  pagecache_testing::fill_pattern(b.bytes(), 7);
  auto id = cache->attach(b).value();
  EXPECT_EQ(cache->stats().entry_frames, 0u);  // nothing until the first page
  std::vector<u8> out(1);
  for (u64 p = 0; p < 300; ++p) {
    ASSERT_TRUE(cache->read(id, p * kPage, ktl::Span<u8>(out)).is_ok());
    ASSERT_EQ(out[0], b.bytes()[p * kPage]);
    ASSERT_LE(cache->stats().pages, config.max_pages);
  }
  // Full: each miss at the limit evicts a few of the oldest pages (8) before it adds its own.
  EXPECT_GE(cache->stats().pages, config.max_pages - 8);
  EXPECT_GE(cache->stats().evicted, 300u - config.max_pages);
  EXPECT_EQ(cache->stats().entry_frames, 2u);
  EXPECT_EQ(env.free_frames(), env.baseline() - cache->stats().pages - 2);
  EXPECT_TRUE(cache->detach(id).is_ok());
  cache.reset();
  EXPECT_EQ(env.free_frames(), env.baseline());  // the chunks went back with the cache
}
