// kernel.vmview: the mapping list of page tables built by the engine (host and in-kernel).
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.paging.testing;
import mm.testing.env;
import kernel.vmview;

namespace {

using kernel::vmview::Range;
using ktl::u32;
using ktl::u64;
using mm::PageFlags;
using mm::PhysAddr;
using mm::VirtAddr;
using mm::paging_testing::ArenaFrames;
using mm::test_env::TestMemory;

constexpr u64 kKiB = 1024;
constexpr u64 kMiB = 1024 * kKiB;

template <class F>
void map(ktest::Context& ktest_ctx, mm::PageTable<F>& pt, u64 va, u64 pa, u64 bytes, PageFlags flags) {
  auto r = pt.map_range(VirtAddr::from(va), PhysAddr::from(pa), bytes, flags, mm::HugePages::Allow);
  if (KEXPECT_OK(r)) r.release_value().ignore();  // tables nobody runs
}

KTEST(VmView, ListsCoalescedRangesWithEffectiveFlags) {
  auto mem = KTRY(TestMemory::acquire(2 * kMiB));
  ArenaFrames frames(mem.window(), mem.range());
  auto pt = KTRY(mm::PageTable<mm::paging::X86_64>::create(mem.window(), frames));
  PageFlags rw = PageFlags::kernel_rw().with(mm::Scope::Global);
  // Three 4 KiB pages continuing each other (one range), then a page with other flags, then a
  // physically discontiguous page, a 2 MiB page right after it in both spaces, and an upper-half
  // uncached page.
  map(ktest_ctx, pt, 0x40'0000, 0x80'0000, 3 * 4 * kKiB, rw);
  map(ktest_ctx, pt, 0x40'3000, 0x80'3000, 4 * kKiB, PageFlags::kernel_rx());
  map(ktest_ctx, pt, 0x5f'f000, 0x1000'0000, 4 * kKiB, rw);
  map(ktest_ctx, pt, 0x80'0000, 0x20'0000, 2 * kMiB, PageFlags::kernel_rw());
  map(ktest_ctx, pt, 0xffff'ffff'c000'0000ull, 0xfee0'0000, 4 * kKiB, PageFlags::mmio());
  KASSERT_OK(pt.install_recursive_slot(510));

  ktl::Array<Range, 8> got{};
  u64 n = 0;
  auto s = kernel::vmview::for_each_range<mm::paging::X86_64>(mem.window(), pt.root(), [&](const Range& r) {
    if (n < got.size()) got[n] = r;
    ++n;
  });
  KASSERT_EQ(n, 5u);
  KEXPECT_EQ(s.ranges, 5u);
  KEXPECT_EQ(s.leaves, 3u + 1 + 1 + 1 + 1);
  KEXPECT_EQ(s.recursive_slot.value_or(0), 510u);
  KEXPECT(got[0] == (Range{VirtAddr::from(0x40'0000), PhysAddr::from(0x80'0000), 3 * 4 * kKiB, rw, 3}));
  KEXPECT(got[1] ==
          (Range{VirtAddr::from(0x40'3000), PhysAddr::from(0x80'3000), 4 * kKiB, PageFlags::kernel_rx(), 1}));
  KEXPECT(got[2] == (Range{VirtAddr::from(0x5f'f000), PhysAddr::from(0x1000'0000), 4 * kKiB, rw, 1}));
  KEXPECT(got[3] ==
          (Range{VirtAddr::from(0x80'0000), PhysAddr::from(0x20'0000), 2 * kMiB, PageFlags::kernel_rw(), 1}));
  KEXPECT(got[4] == (Range{VirtAddr::from(0xffff'ffff'c000'0000ull), PhysAddr::from(0xfee0'0000), 4 * kKiB,
                           PageFlags::mmio(), 1}));

  // Every leaf agrees with the engine's own translation.
  u64 leaves = 0;
  kernel::vmview::for_each_leaf<mm::paging::X86_64>(
      mem.window(), pt.root(),
      [&](const Range& leaf) {
        ++leaves;
        auto t = pt.translate(leaf.va + (leaf.size - 1));
        if (!KEXPECT(t.has_value())) return;
        KEXPECT_EQ(t->page, leaf.va);
        KEXPECT_EQ(t->frame, leaf.pa);
        KEXPECT_EQ(t->page_size, leaf.size);
        KEXPECT_EQ(t->flags, leaf.flags);
      },
      [](u32) {});
  KEXPECT_EQ(leaves, 7u);

  ktl::InlineString<128> line;
  ktl::format_to(line, "{}", got[4]);
  KEXPECT_EQ(line.view(), ktl::StringView("0xffffffffc0000000 0x00000fee00000 0x00000001000 W--- UC"));
}

// Table entries restrict what their leaves allow (the MMU ANDs W and U, ORs NX down the walk).
KTEST(VmView, TableEntriesRestrictLeaves) {
  auto mem = KTRY(TestMemory::acquire(1 * kMiB));
  ArenaFrames frames(mem.window(), mem.range());
  auto pt = KTRY(mm::PageTable<mm::paging::X86_32>::create(mem.window(), frames));
  map(ktest_ctx, pt, 0x40'0000, 0x80'0000, 8 * kKiB, PageFlags::user_rw());
  // Clear R/W in the directory entry above the two pages (the engine writes permissive tables).
  auto dir = mem.window().array<ktl::u32>(pt.root(), 1024);
  dir[1] &= ~ktl::u32{2};
  ktl::Array<Range, 2> got{};
  u64 n = 0;
  (void)kernel::vmview::for_each_range<mm::paging::X86_32>(mem.window(), pt.root(), [&](const Range& r) {
    if (n < got.size()) got[n] = r;
    ++n;
  });
  KASSERT_EQ(n, 1u);
  KEXPECT_EQ(got[0].size, 8 * kKiB);
  KEXPECT(!got[0].flags.writable());
  KEXPECT(got[0].flags.user());
  KEXPECT_EQ(got[0].flags, KTRY(pt.translate(VirtAddr::from(0x40'1000))).flags);
}

}  // namespace
