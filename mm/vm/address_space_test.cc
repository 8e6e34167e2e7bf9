// Host-only tests of mm.address_space and mm.mapping (the KTEST bodies are linked in from
// :address_space_ktests): activation through the recorded CR3 hook, the Mapping's destruction order
// (entries cleared, the range invalidated exactly once, and only then the frames freed: observed at
// the moment of the flush), views' checks as death tests, and the walker's view of a mapping.
#include <gtest/gtest.h>

#include <vector>

#include <ktl/macros.h>

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.paging.testing;
import mm.address_space;
import mm.mapping;
import mm.pmm;
import mm.testing.env;

namespace {

using ktl::u64;
using mm::PageFlags;
using mm::PhysAddr;
using mm::VirtAddr;
namespace paging = mm::paging;

constexpr u64 kMiB = 1 << 20;

class MappingHostTest : public testing::Test {
 protected:
  void SetUp() override {
    memory_.emplace(mm::test_env::TestMemory::acquire(16 * kMiB).release_value());
    tables_.emplace(memory_->window(),
                    mm::PhysRange::with_size(memory_->base() + 12 * kMiB, 4 * kMiB).value());
    const mm::PhysMapEntry map[] = {
        {mm::PhysRange::with_size(memory_->base(), 12 * kMiB).value(), mm::PhysKind::Usable, mm::NodeId{0}},
    };
    ASSERT_TRUE(pmm_.init(ktl::Span<const mm::PhysMapEntry>(map), memory_->window()).is_ok());
    loader_.emplace(mm::PageTable<paging::X86_64>::create(memory_->window(), *tables_).release_value());
    ASSERT_TRUE(loader_->install_recursive_slot(510).is_ok());
    kernel_.emplace(mm::KernelAddressSpace::adopt_kernel(memory_->window(), *tables_, loader_->root(),
                                                         {.recursive_slot = 510})
                        .release_value());
    data_baseline_ = pmm_.free_frame_count();
    table_baseline_ = tables_->used_count();
    mm::arch::reset_tlb_log();
  }
  void TearDown() override {
    mm::arch::activate(PhysAddr::zero());  // nothing of ours stays "in CR3"
    EXPECT_EQ(pmm_.free_frame_count(), data_baseline_);
    kernel_.reset();
    loader_.reset();
    EXPECT_EQ(tables_->used_count(), 0u);
  }
  ktl::Optional<mm::test_env::TestMemory> memory_;
  ktl::Optional<mm::paging_testing::ArenaFrames> tables_;
  mm::Pmm pmm_;
  ktl::Optional<mm::PageTable<paging::X86_64>> loader_;
  ktl::Optional<mm::KernelAddressSpace> kernel_;
  u64 data_baseline_ = 0;
  u64 table_baseline_ = 0;
};

TEST_F(MappingHostTest, ActivateLoadsTheRoot) {
  EXPECT_FALSE(kernel_->is_active());
  kernel_->activate();
  EXPECT_TRUE(kernel_->is_active());
  EXPECT_EQ(mm::arch::tlb_log().activations, 1u);
  EXPECT_EQ(mm::arch::active_root(), loader_->root());
  ASSERT_TRUE(kernel_->prepare_kernel_half().is_ok());
  {
    auto user = mm::KernelAddressSpace::create_user(*kernel_).release_value();
    user.activate();
    EXPECT_TRUE(user.is_active());
    EXPECT_FALSE(kernel_->is_active());
    EXPECT_EQ(mm::arch::active_root(), user.root());
    kernel_->activate();
  }
  EXPECT_EQ(mm::arch::tlb_log().activations, 3u);
}

// What holds at the moment of the flush. The observer runs under the address-space lock, so it
// looks at the tables through the walker (no lock), as another CPU's MMU would.
struct FlushProbe {
  const mm::Pmm* pmm;
  mm::PhysWindow window;
  PhysAddr root;
  PhysAddr first_frame;
  u64 pages;
  VirtAddr start;
  std::vector<bool> frames_allocated_at_flush;
  std::vector<bool> mapped_at_flush;
};

TEST_F(MappingHostTest, DestructionUnmapsFlushesOnceThenFrees) {
  auto frames = pmm_.alloc_contiguous(24, 4096).release_value();
  FlushProbe probe{&pmm_,
                   memory_->window(),
                   kernel_->root(),
                   frames.start(),
                   24,
                   VirtAddr::from(0xffff'c000'0001'0000ull),
                   {},
                   {}};
  {
    auto m = mm::KernelMapping::create(*kernel_, probe.start, std::move(frames), PageFlags::kernel_rw())
                 .release_value();
    EXPECT_EQ(mm::arch::tlb_log().range_flushes, 0u);  // fresh entries need no invalidation
    mm::arch::set_tlb_flush_observer(
        [](u64, u64, void* context) {
          auto* p = static_cast<FlushProbe*>(context);
          for (u64 i = 0; i < p->pages; ++i) {
            p->frames_allocated_at_flush.push_back(
                p->pmm->state_of(mm::Frame4K::containing(p->first_frame + i * 4096)) ==
                mm::FrameState::Allocated);
            p->mapped_at_flush.push_back(
                mm::paging_testing::independent_mmu()
                    ->translate(mm::paging_testing::FormatId::X86_64, p->window, p->root, p->start + i * 4096)
                    .has_value());
          }
        },
        &probe);
  }
  mm::arch::set_tlb_flush_observer(nullptr, nullptr);
  auto log = mm::arch::tlb_log();
  EXPECT_EQ(log.range_flushes, 1u);
  EXPECT_EQ(log.full_flushes, 0u);
  EXPECT_EQ(log.last_start, probe.start.value());
  EXPECT_EQ(log.last_pages, 24u);
  ASSERT_EQ(probe.frames_allocated_at_flush.size(), 24u);
  for (u64 i = 0; i < 24; ++i) {
    EXPECT_TRUE(probe.frames_allocated_at_flush[i]) << "frame " << i << " freed before the flush";
    EXPECT_FALSE(probe.mapped_at_flush[i]) << "page " << i << " still mapped at the flush";
    EXPECT_EQ(pmm_.state_of(mm::Frame4K::containing(probe.first_frame + i * 4096)), mm::FrameState::Free);
  }
  // The emptied tables stay until reclaimed.
  EXPECT_GT(tables_->used_count(), table_baseline_);
  mm::Reclaimed r{};
  {
    ktl::LockGuard guard(kernel_->lock());
    r = kernel_->tables()
            .reclaim_empty_tables(VirtAddr::from(0xffff'c000'0000'0000ull), 1ull << 39)
            .release_value();
  }
  EXPECT_EQ(r.tables, 2u);  // the PT and the PD; the PDPT hangs off a pinned kernel-half slot
  EXPECT_EQ(tables_->used_count(), table_baseline_ + 1);
}

TEST_F(MappingHostTest, ProtectFlushesOnceAndTheWalkerAgrees) {
  auto m = mm::KernelMapping::create(*kernel_, VirtAddr::from(0x4000'0000),
                                     pmm_.alloc_frame_of<mm::Size2M>().release_value(),
                                     PageFlags::user_rw().with(mm::CacheMode::WriteCombining))
               .release_value();
  auto* mmu = mm::paging_testing::independent_mmu();
  ASSERT_NE(mmu, nullptr);
  auto check = [&](u64 offset) {
    VirtAddr v = m.start() + offset;
    EXPECT_EQ(mmu->translate(mm::paging_testing::FormatId::X86_64, memory_->window(), kernel_->root(), v),
              kernel_->translate(v));
  };
  check(0);
  check(0x1f'ffff);
  ASSERT_TRUE(m.protect(PageFlags::user_ro()).is_ok());
  EXPECT_EQ(mm::arch::tlb_log().range_flushes, 1u);
  EXPECT_EQ(mm::arch::tlb_log().last_pages, 512u);
  EXPECT_EQ(kernel_->translate(m.start())->flags, PageFlags::user_ro());
  check(0x1234);
}

TEST_F(MappingHostTest, ViewsCheckBoundsAndWritability) {
  auto rw = mm::KernelMapping::create(*kernel_, VirtAddr::from(0x4000'0000),
                                      pmm_.alloc_contiguous(2, 4096).release_value(), PageFlags::kernel_rw())
                .release_value();
  auto ro = mm::KernelMapping::create(*kernel_, VirtAddr::from(0x5000'0000),
                                      pmm_.alloc_contiguous(1, 4096).release_value(), PageFlags::kernel_ro())
                .release_value();
  rw.as<u64>(8192 - 8) = 1;                      // the last word
  EXPECT_EQ(rw.span<ktl::u32>().size(), 2048u);  // 8 KiB of u32
  EXPECT_EQ(ro.as<const u64>(0), 0u);            // read-only views of read-only memory are fine
  EXPECT_DEATH((void)rw.as<u64>(8192 - 4), "out of bounds");
  EXPECT_DEATH((void)rw.span<u64>(8, 1024), "out of bounds");
  EXPECT_DEATH((void)rw.span<u64>(0, ~ktl::usize{0} / 2), "out of bounds");
  EXPECT_DEATH((void)rw.as<u64>(4), "misaligned");
  EXPECT_DEATH((void)ro.as<u64>(0), "writable view of a read-only mapping");
  EXPECT_DEATH((void)ro.span<ktl::u8>(), "writable view of a read-only mapping");
  mm::KernelMapping empty;
  EXPECT_DEATH((void)empty.as<const u64>(0), "empty Mapping");
}

void destroy_a_space_with_a_live_mapping() {
  auto memory = mm::test_env::TestMemory::acquire(16 * kMiB).release_value();
  mm::paging_testing::ArenaFrames tables(
      memory.window(), mm::PhysRange::with_size(memory.base() + 12 * kMiB, 4 * kMiB).value());
  mm::Pmm pmm;
  const mm::PhysMapEntry map[] = {
      {mm::PhysRange::with_size(memory.base(), 12 * kMiB).value(), mm::PhysKind::Usable, mm::NodeId{0}}};
  (void)pmm.init(ktl::Span<const mm::PhysMapEntry>(map), memory.window());
  auto loader = mm::PageTable<paging::X86_64>::create(memory.window(), tables).release_value();
  ktl::Optional<mm::KernelMapping> leaked;
  {
    auto space = mm::KernelAddressSpace::adopt_kernel(memory.window(), tables, loader.root()).release_value();
    leaked.emplace(mm::KernelMapping::create(space, VirtAddr::from(0x4000'0000),
                                             pmm.alloc_contiguous(1, 4096).release_value(),
                                             PageFlags::kernel_rw())
                       .release_value());
  }
}

TEST(AddressSpaceDeathTest, MustOutliveItsMappings) {
  EXPECT_DEATH(destroy_a_space_with_a_live_mapping(),
               "AddressSpace destroyed while Mappings into it are alive");
}

}  // namespace
