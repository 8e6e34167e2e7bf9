// Host-only tests of mm.paging (the shared KTEST bodies are linked in from :paging_ktests): the
// compile-time contracts, the TLB-flush tokens against the recorded hooks, and death tests.
#include <gtest/gtest.h>

#include <utility>

#include <ktl/macros.h>

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.paging.testing;
import mm.testing.env;

namespace {

using mm::Frame;
using mm::Page;
using mm::PageFlags;
using mm::PageTable;
using mm::PhysAddr;
using mm::Size1G;
using mm::Size2M;
using mm::Size4K;
using mm::Size4M;
using mm::TlbFlush;
using mm::VirtAddr;
namespace paging = mm::paging;

// --- misuse that must not compile, checked with concepts so this file compiles ----------------------
template <class PT, class S>
concept CanMap = requires(PT& pt, Page<S> p, Frame<S> f) { pt.map(p, f, PageFlags()); };
template <class PT, class S>
concept CanUnmap = requires(PT& pt, Page<S> p) { pt.unmap(p); };
template <class PT, class S>
concept CanProtect = requires(PT& pt, Page<S> p) { pt.protect(p, PageFlags()); };
template <class PT>
concept CanInstallRecursive = requires(PT& pt) { pt.install_recursive_slot(0u); };
template <class F>
concept HasRecursiveView = requires { typename mm::RecursiveView<F>; };

static_assert(CanMap<PageTable<paging::X86_64>, Size4K> && CanMap<PageTable<paging::X86_64>, Size2M> &&
              CanMap<PageTable<paging::X86_64>, Size1G>);
static_assert(!CanMap<PageTable<paging::X86_64>, Size4M>, "x86_64 has no 4 MiB pages");
static_assert(CanMap<PageTable<paging::X86_32>, Size4M>);
static_assert(!CanMap<PageTable<paging::X86_32>, Size1G>, "x86 32-bit paging has no 1 GiB pages");
static_assert(!CanMap<PageTable<paging::X86_32>, Size2M>, "x86 32-bit paging has no 2 MiB pages");
static_assert(!CanUnmap<PageTable<paging::X86_32>, Size1G> && !CanProtect<PageTable<paging::X86_32>, Size2M>);
static_assert(CanMap<PageTable<paging::Aarch64Lower>, Size1G> &&
              !CanMap<PageTable<paging::Aarch64Lower>, Size4M>);
static_assert(CanInstallRecursive<PageTable<paging::X86_64>> &&
              CanInstallRecursive<PageTable<paging::X86_32>>);
static_assert(!CanInstallRecursive<PageTable<paging::Aarch64Lower>>, "no recursive window on aarch64");
static_assert(!mm::PageTableFormat<int>);
static_assert(mm::PageTableFormat<paging::X86_64> && mm::PageTableFormat<paging::X86_32> &&
              mm::PageTableFormat<paging::Aarch64Lower> && mm::PageTableFormat<paging::Aarch64Upper>);
// Tokens and tables are move-only; flags are not made from integers or bools.
static_assert(!ktl::is_copy_constructible<TlbFlush> && ktl::is_move_constructible<TlbFlush>);
static_assert(!ktl::is_copy_constructible<PageTable<paging::X86_64>>);
static_assert(!ktl::is_copy_constructible<mm::FlushBatch>);
static_assert(!__is_constructible(PageFlags, bool) && !__is_constructible(PageFlags, int));
// The attribute tables the kernel must program are the ones the formats encode for.
static_assert(paging::X86_64::kPat == 0x0007'0106'0007'0406ull, "the loader's IA32_PAT");
static_assert(paging::Aarch64Lower::kMair == 0x0044'bbffull);

// --- TLB flush tokens against the recorded hooks ---------------------------------------------------------
class TokenTest : public testing::Test {
 protected:
  void SetUp() override { mm::arch::reset_tlb_log(); }
};

TEST_F(TokenTest, FlushInvalidatesItsRangeOnce) {
  TlbFlush t = TlbFlush::covering(VirtAddr::from(0x40'0000), 512);
  std::move(t).flush();
  auto log = mm::arch::tlb_log();
  EXPECT_EQ(log.range_flushes, 1u);
  EXPECT_EQ(log.last_start, 0x40'0000u);
  EXPECT_EQ(log.last_pages, 512u);
  TlbFlush::none().flush();
  TlbFlush::covering(VirtAddr::from(0x1000), 1).ignore();
  EXPECT_EQ(mm::arch::tlb_log().range_flushes, 1u);
}

TEST_F(TokenTest, BatchFlushesOnceForManyTokens) {
  mm::FlushBatch batch;
  for (ktl::u64 i = 0; i < 100; ++i) batch.add(TlbFlush::covering(VirtAddr::from(0x100000 + i * 0x1000), 1));
  EXPECT_EQ(mm::arch::tlb_log().range_flushes, 0u);
  batch.flush();
  auto log = mm::arch::tlb_log();
  EXPECT_EQ(log.range_flushes, 1u);
  EXPECT_EQ(log.last_start, 0x100000u);
  EXPECT_EQ(log.last_pages, 100u);
  EXPECT_EQ(log.full_flushes, 0u);
  // Two tokens a gigabyte apart: one full flush instead of a gigabyte of invalidations.
  batch.add(TlbFlush::covering(VirtAddr::from(0x1000), 1));
  batch.add(TlbFlush::covering(VirtAddr::from(0x4000'0000), 1));
  batch.flush();
  EXPECT_EQ(mm::arch::tlb_log().full_flushes, 1u);
  EXPECT_EQ(mm::arch::tlb_log().range_flushes, 1u);
}

TEST(TokenDeathTest, UnconsumedTokenPanicsInDebugBuilds) {
  if (!mm::kCheckFlushTokens) GTEST_SKIP() << "release build: tokens are not checked";
  EXPECT_DEATH({ TlbFlush t = TlbFlush::covering(VirtAddr::from(0x1000), 1); }, "TlbFlush token destroyed");
  EXPECT_DEATH(
      {
        mm::FlushBatch b;
        b.add(TlbFlush::covering(VirtAddr::from(0x1000), 1));
      },
      "FlushBatch destroyed with pending");
  // An empty token carries no obligation.
  {
    TlbFlush t = TlbFlush::none();
  }
}

// The engine's operations flush exactly what changed, once, when the caller flushes the token.
TEST_F(TokenTest, EngineTokensCoverWhatChanged) {
  auto mem = mm::test_env::TestMemory::acquire(1 << 20).release_value();
  mm::paging_testing::ArenaFrames frames(mem.window(), mem.range());
  {
    auto pt = PageTable<paging::X86_64>::create(mem.window(), frames).release_value();
    VirtAddr v = VirtAddr::from(0xffff'8000'0020'0000ull);
    pt.map(Page<Size2M>::from_start(v).value(), Frame<Size2M>::containing(PhysAddr::from(0x4000'0000)),
           PageFlags::kernel_rw())
        .release_value()
        .flush();
    EXPECT_EQ(mm::arch::tlb_log().range_flushes, 0u);  // nothing was mapped there before
    mm::FlushBatch batch;
    batch.add(pt.unmap(Page<Size4K>::from_start(v + 0x3000).value()).release_value().flush);
    batch.add(
        pt.protect(Page<Size4K>::from_start(v + 0x5000).value(), PageFlags::kernel_ro()).release_value());
    batch.flush();
    auto log = mm::arch::tlb_log();
    EXPECT_EQ(log.range_flushes, 1u);
    EXPECT_EQ(log.last_start, v.value());
    EXPECT_EQ(log.last_pages, 512u);  // the split 2 MiB page, once
    pt.unmap_range(v, Size2M::bytes).release_value().flush.flush();
    EXPECT_EQ(mm::arch::tlb_log().range_flushes, 2u);
    // Reclaim invalidates the detached tables before their frames go back.
    ktl::u64 used = frames.used_count();
    auto r = pt.reclaim_empty_tables(v, Size2M::bytes).release_value();  // the split's table only
    EXPECT_EQ(r.tables, 1u);
    EXPECT_EQ(frames.used_count(), used - 1);
    EXPECT_EQ(mm::arch::tlb_log().range_flushes, 3u);
    EXPECT_EQ(mm::arch::tlb_log().last_start, v.value());
    EXPECT_EQ(mm::arch::tlb_log().last_pages, 512u);
    // A range covering the whole PD frees it too (it maps nothing now): one flush of its 1 GiB.
    r = pt.reclaim_empty_tables(VirtAddr::from(0xffff'8000'0000'0000ull), Size1G::bytes).release_value();
    EXPECT_EQ(r.tables, 1u);
    EXPECT_EQ(mm::arch::tlb_log().range_flushes, 4u);
    EXPECT_EQ(mm::arch::tlb_log().last_start, 0xffff'8000'0000'0000ull);
    EXPECT_EQ(mm::arch::tlb_log().last_pages, Size1G::bytes / Size4K::bytes);
    // Nothing left to free: no flush either.
    r = pt.reclaim_empty_tables(VirtAddr::from(0xffff'8000'0000'0000ull), Size1G::bytes).release_value();
    EXPECT_EQ(r.tables, 0u);
    EXPECT_EQ(mm::arch::tlb_log().range_flushes, 4u);
  }
  EXPECT_EQ(frames.used_count(), 0u);
}

// Fresh table frames hold junk (the arena fills them with 0xa5, which has the present bit set):
// the engine must zero every table it links, or the junk would show up as mappings.
TEST(PagingHost, FreshTablesAreZeroedDespitePoison) {
  auto mem = mm::test_env::TestMemory::acquire(1 << 20).release_value();
  mm::paging_testing::ArenaFrames frames(mem.window(), mem.range(), mm::paging_testing::Poison::Yes);
  {
    auto pt = PageTable<paging::X86_64>::create(mem.window(), frames).release_value();
    VirtAddr v = VirtAddr::from(0x1000);
    pt.map(Page<Size4K>::from_start(v).value(), Frame<Size4K>::containing(PhysAddr::from(0x9000)),
           PageFlags())
        .release_value()
        .ignore();
    // Every other slot of the new PT, PD, PDPT and PML4 is empty.
    for (ktl::u64 off = 0; off < Size2M::bytes; off += 0x1000) {
      if (off != 0x1000) ASSERT_FALSE(pt.translate(VirtAddr::from(off)).has_value()) << off;
    }
    for (ktl::u64 a : {Size2M::bytes, Size1G::bytes, 1ull << 39, 0xffff'8000'0000'0000ull}) {
      EXPECT_FALSE(pt.translate(VirtAddr::from(a)).has_value()) << a;
    }
    pt.unmap(Page<Size4K>::from_start(v).value()).release_value().flush.ignore();
  }
  EXPECT_EQ(frames.used_count(), 0u);
}

// A frame allocator that refuses every request with one error.
class RefusingFrames final : public mm::FrameAllocator {
 public:
  explicit RefusingFrames(mm::FrameError e) : error_(e) {}
  ktl::Result<mm::Frame4K, mm::FrameError> allocate_frame() override { return ktl::Err(error_); }
  void free_frame(mm::Frame4K) override { ADD_FAILURE() << "nothing was allocated"; }

 private:
  mm::FrameError error_;
};

// The allocator's cause survives into the PagingError, one-to-one (every refusal used to be NoMemory).
TEST(PagingHost, FrameAllocatorErrorsKeepTheirCause) {
  auto mem = mm::test_env::TestMemory::acquire_at(PhysAddr::from(1 << 20), 1 << 20).release_value();
  const std::pair<mm::FrameError, mm::PagingError> cases[] = {
      {mm::FrameError::OutOfMemory, mm::PagingError::NoMemory},
      {mm::FrameError::InvalidRequest, mm::PagingError::FrameRequestInvalid},
      {mm::FrameError::NotInitialized, mm::PagingError::FrameAllocatorNotReady},
  };
  for (auto [frame_error, paging_error] : cases) {
    RefusingFrames frames(frame_error);
    auto pt = PageTable<paging::X86_64>::create(mem.window(), frames);
    ASSERT_TRUE(pt.is_err());
    EXPECT_EQ(pt.error(), paging_error) << mm::to_string(frame_error);
    EXPECT_EQ(mm::to_paging_error(frame_error), paging_error);
  }
}

TEST(PagingHost, EveryPagingErrorHasItsOwnText) {
  ktl::EnumTextCheck c = ktl::check_enum_text<mm::PagingError>();
  EXPECT_TRUE(c.ok) << "value " << c.bad;
  EXPECT_EQ(c.count, ktl::to_underlying(mm::PagingError::FrameAllocatorNotReady) + 1);
  EXPECT_TRUE(ktl::check_enum_text<mm::CacheMode>().ok);
}

// Table frames must be reachable by the format's entries: 32-bit tables cannot live above 4 GiB.
TEST(PagingHost, TableFramesTheFormatCannotReachAreRefused) {
  auto high = mm::test_env::TestMemory::acquire_at(PhysAddr::from(5ull << 30), 1 << 20).release_value();
  mm::paging_testing::ArenaFrames frames(high.window(), high.range());
  auto x32 = PageTable<paging::X86_32>::create(high.window(), frames);
  ASSERT_TRUE(x32.is_err());
  EXPECT_EQ(x32.error(), mm::PagingError::FrameUnreachable);
  EXPECT_EQ(frames.used_count(), 0u);
  {
    auto x64 = PageTable<paging::X86_64>::create(high.window(), frames).release_value();
    EXPECT_GE(x64.root().value(), 5ull << 30);
  }
  EXPECT_EQ(frames.used_count(), 0u);
}

TEST(PagingHostDeathTest, DestroyingTheActiveTablesPanics) {
  EXPECT_DEATH(
      {
        auto mem = mm::test_env::TestMemory::acquire(1 << 20).release_value();
        mm::paging_testing::ArenaFrames frames(mem.window(), mem.range());
        auto pt = PageTable<paging::X86_64>::create(mem.window(), frames).release_value();
        mm::arch::activate(pt.root());
      },
      "destroyed while it is the active address space");
}

TEST(PagingHostDeathTest, ArenaDetectsDoubleAndForeignFrees) {
  auto mem = mm::test_env::TestMemory::acquire(1 << 20).release_value();
  mm::paging_testing::ArenaFrames frames(mem.window(), mem.range());
  auto f = frames.allocate_frame().release_value();
  frames.free_frame(f);
  EXPECT_DEATH(frames.free_frame(f), "double free");
  EXPECT_DEATH(frames.free_frame(mm::Frame4K::containing(PhysAddr::from(0x1000))), "never handed out");
}

}  // namespace
