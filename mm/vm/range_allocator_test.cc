// Tests of mm.range_allocator: first fit, absolute alignment, guard pages between ranges, growth
// and shrinking in place, the errors with their causes, and that the bitmap's frames go back.
#include <gtest/gtest.h>

import ktl;
import mm.addr;
import mm.arch;
import mm.pmm;
import mm.range_allocator;
import mm.testing.env;

namespace {

using ktl::u64;
using mm::Guard;
using mm::RangeAllocator;
using mm::RangeError;
using mm::VirtAddr;
using mm::VirtRange;

constexpr u64 kPage = mm::kPageSize;
constexpr u64 kMiB = 1 << 20;
// A window that starts one page above a 64-page boundary, so relative and absolute alignment differ.
constexpr u64 kWindowStart = 0xffff'fe00'0000'0000 + kPage;
constexpr u64 kWindowPages = 256;

VirtRange range(u64 start, u64 pages) {
  return VirtRange::with_size(VirtAddr::from(start), pages * kPage).value();
}

class RangeAllocatorTest : public testing::Test {
 protected:
  void SetUp() override {
    const mm::PhysMapEntry map[] = {
        {mm::PhysRange::with_size(memory_.base(), 4 * kMiB).value(), mm::PhysKind::Usable, mm::NodeId{0}},
    };
    ASSERT_TRUE(pmm_.init(ktl::Span<const mm::PhysMapEntry>(map), memory_.window()).is_ok());
    baseline_ = pmm_.free_frame_count();
  }
  void TearDown() override { EXPECT_EQ(pmm_.free_frame_count(), baseline_); }

  RangeAllocator make(Guard guard, u64 pages = kWindowPages) {
    RangeAllocator ranges;
    EXPECT_TRUE(ranges.init(pmm_, memory_.window(), range(kWindowStart, pages), guard).is_ok());
    return ranges;
  }

  mm::test_env::TestMemory memory_ =
      mm::test_env::TestMemory::acquire_at(mm::PhysAddr::from(1 * kMiB), 4 * kMiB).release_value();
  mm::Pmm pmm_;
  u64 baseline_ = 0;
};

TEST_F(RangeAllocatorTest, ErrorTextsAreComplete) {
  ktl::EnumTextCheck texts = ktl::check_enum_text<RangeError>();
  EXPECT_TRUE(texts.ok);
  EXPECT_EQ(texts.count, ktl::to_underlying(RangeError::NotInitialized) + 1);
}

TEST_F(RangeAllocatorTest, FirstFitWithAGuardPageAfterEachRange) {
  RangeAllocator ranges = make(Guard::PageAfter);
  EXPECT_EQ(ranges.metadata_frames(), 1u);
  EXPECT_EQ(pmm_.free_frame_count(), baseline_ - 1);
  VirtRange a = ranges.allocate(3).value();
  VirtRange b = ranges.allocate(2).value();
  EXPECT_EQ(a, range(kWindowStart, 3));
  EXPECT_EQ(b, range(kWindowStart + 4 * kPage, 2));  // one guard page between them
  EXPECT_EQ(ranges.free_pages(), kWindowPages - 7);
  ranges.free(a);
  EXPECT_EQ(ranges.allocate(3).value(), a);  // the lowest fit again
  ranges.free(a);
  ranges.free(b);
  EXPECT_EQ(ranges.free_pages(), kWindowPages);
}

TEST_F(RangeAllocatorTest, WithoutGuardsRangesTouch) {
  RangeAllocator ranges = make(Guard::None);
  VirtRange a = ranges.allocate(3).value();
  VirtRange b = ranges.allocate(2).value();
  EXPECT_EQ(b.start(), a.end());
  EXPECT_EQ(ranges.allocate(kWindowPages - 5).value().end(),
            VirtAddr::from(kWindowStart + kWindowPages * kPage));
  EXPECT_EQ(ranges.allocate(1).error(), RangeError::NoSpace);
}

TEST_F(RangeAllocatorTest, AlignmentIsOfTheAddress) {
  RangeAllocator ranges = make(Guard::PageAfter);
  VirtRange r = ranges.allocate(1, 64).value();
  EXPECT_TRUE(r.start().is_aligned(64 * kPage));
  EXPECT_EQ(r.start(), VirtAddr::from(kWindowStart - kPage + 64 * kPage));  // window starts 1 page above
  EXPECT_EQ(ranges.allocate(1, 3).error(), RangeError::InvalidArgument);
  EXPECT_EQ(ranges.allocate(0).error(), RangeError::InvalidArgument);
}

TEST_F(RangeAllocatorTest, SizeLimitsAndExhaustionHaveTheirOwnErrors) {
  RangeAllocator ranges = make(Guard::PageAfter);
  EXPECT_EQ(ranges.allocate(kWindowPages).error(), RangeError::TooLarge);  // no room for its guard
  VirtRange all = ranges.allocate(kWindowPages - 1).value();
  EXPECT_EQ(ranges.allocate(1).error(), RangeError::NoSpace);
  ranges.free(all);
  RangeAllocator unset;
  EXPECT_EQ(unset.allocate(1).error(), RangeError::NotInitialized);
  EXPECT_EQ(ranges.init(pmm_, memory_.window(), range(kWindowStart, 8), Guard::None).error(),
            RangeError::AlreadyInitialized);
  RangeAllocator bad;
  EXPECT_EQ(bad.init(pmm_, memory_.window(), range(kWindowStart + 1, 8), Guard::None).error(),
            RangeError::InvalidArgument);
  EXPECT_EQ(bad.init(pmm_, memory_.window(), range(kWindowStart, 0), Guard::None).error(),
            RangeError::InvalidArgument);
}

TEST_F(RangeAllocatorTest, NoFramesForTheBitmapIsOutOfMemory) {
  // 2^33 pages need 2^30 bytes of bitmap: more than the 4 MiB of memory.
  RangeAllocator ranges;
  EXPECT_EQ(
      ranges.init(pmm_, memory_.window(), range(0xffff'8000'0000'0000, u64{1} << 33), Guard::None).error(),
      RangeError::OutOfMemory);
  mm::Pmm empty;
  EXPECT_EQ(ranges.init(empty, memory_.window(), range(kWindowStart, 8), Guard::None).error(),
            RangeError::PmmNotInitialized);
}

TEST_F(RangeAllocatorTest, GrowTakesTheGuardAndTheFreePagesAfterIt) {
  RangeAllocator ranges = make(Guard::PageAfter);
  VirtRange a = ranges.allocate(2).value();
  VirtRange grown = ranges.grow(a, 5).value();
  EXPECT_EQ(grown, range(kWindowStart, 5));
  EXPECT_EQ(ranges.free_pages(), kWindowPages - 6);
  VirtRange b = ranges.allocate(1).value();
  EXPECT_EQ(b.start(), VirtAddr::from(kWindowStart + 6 * kPage));
  EXPECT_EQ(ranges.grow(grown, 6).error(), RangeError::NoSpace);  // b's page is taken
  VirtRange shrunk = ranges.shrink(grown, 1);
  EXPECT_EQ(shrunk, range(kWindowStart, 1));
  EXPECT_EQ(ranges.free_pages(), kWindowPages - 4);
  EXPECT_EQ(ranges.allocate(3).value(), range(kWindowStart + 2 * kPage, 3));  // the freed tail
  EXPECT_EQ(ranges.grow(b, kWindowPages).error(), RangeError::NoSpace);       // past the window's end
}

TEST_F(RangeAllocatorTest, MovingKeepsTheRangesAndTheFrames) {
  RangeAllocator first = make(Guard::PageAfter);
  VirtRange a = first.allocate(4).value();
  RangeAllocator second = ktl::move(first);
  EXPECT_FALSE(first.initialized());
  EXPECT_EQ(second.allocate(1).value().start(), a.end() + kPage);
  EXPECT_EQ(pmm_.free_frame_count(), baseline_ - 1);
}

TEST_F(RangeAllocatorTest, FreeingARangeThatIsNotAllocatedPanics) {
  RangeAllocator ranges = make(Guard::PageAfter);
  EXPECT_DEATH(ranges.free(range(kWindowStart, 1)), "not allocated");
  EXPECT_DEATH(ranges.free(range(kWindowStart - kPage, 1)), "part of the window");
}

}  // namespace
