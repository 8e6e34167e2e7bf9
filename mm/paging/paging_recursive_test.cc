// The recursive window, cross-checked on the host: with the self-reference installed, the engine's
// RecursiveView computes the virtual address of every table on a walk; the independent software
// walker (the "MMU") resolves those addresses through the simulated tables, and the answers must be
// the very tables and entries the direct walk over the physical window uses. Translating through
// the window (reading each entry at its recursive address) must equal the direct translation and
// the walker's. This is what the kernel will do with the tables loaded in CR3.
#include <gtest/gtest.h>
#include "testing/seed.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <ktl/macros.h>

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.paging.testing;
import mm.testing.env;
import sim.walker;

namespace {

using mm::PageFlags;
using mm::PageTable;
using mm::PhysAddr;
using mm::VirtAddr;
using std::uint64_t;
namespace paging = mm::paging;

uint64_t seed() { return ferrite_testing::test_seed(); }

// Memory as a CPU sees it once the tables are active: every load goes through the simulated MMU.
struct MmuMemory {
  mm::PhysWindow window;
  sim::MmuConfig cfg;
  uint64_t root;
  template <class T>
  ktl::Optional<T> read(VirtAddr va) const {
    auto v = sim::load(window, cfg, root, va.value(), sizeof(T));
    if (!v) return ktl::nullopt;
    return static_cast<T>(*v);
  }
};

template <class F>
void cross_check(ktl::u32 slot, sim::Mmu mmu) {
  using G = paging::Geometry<F>;
  using Entry = typename F::Entry;
  uint64_t s = seed();
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(s));
  std::mt19937_64 rng(s);
  auto memory = mm::test_env::TestMemory::acquire(64 << 20).release_value();
  mm::paging_testing::ArenaFrames frames(memory.window(), memory.range());
  {
    auto pt = PageTable<F>::create(memory.window(), frames).release_value();
    ASSERT_TRUE(pt.install_recursive_slot(slot).is_ok());
    auto view = mm::RecursiveView<F>::at_slot(slot).release_value();
    MmuMemory mem{memory.window(), {}, pt.root().value()};
    mem.cfg.mmu = mmu;

    // A sparse random address space with every leaf size.
    auto random_va = [&]() -> uint64_t {
      if (rng() % 2) return rng() & G::kSpaceMask & ~uint64_t{0xfff};
      uint64_t lin = (rng() % 8) << 12;  // clustered: few indices per level, so tables are shared
      for (ktl::u32 l = 1; l < G::kLevels; ++l) lin |= (rng() % 3) << G::shift(l);
      return lin;
    };
    std::vector<uint64_t> mapped;
    for (int i = 0; i < 3000; ++i) {
      uint64_t lin = random_va();
      unsigned kind = static_cast<unsigned>(rng() % 10);
      uint64_t pa = (rng() % (uint64_t{1} << 31)) & ~uint64_t{0xfff};
      PageFlags f = rng() % 2 ? PageFlags::kernel_rw() : PageFlags::user_ro();
      auto take = [](ktl::Result<mm::TlbFlush, mm::PagingError>&& r) {
        if (r.is_ok()) {
          r.release_value().ignore();
          return true;
        }
        EXPECT_NE(r.error(), mm::PagingError::NoMemory);
        return false;
      };
      bool ok = false;
      if (kind < 7) {
        ok = take(pt.map(mm::Page<mm::Size4K>::containing(G::virt(lin)),
                         mm::Frame<mm::Size4K>::containing(PhysAddr::from(pa)), f));
      } else if constexpr (mm::SupportsPageSize<F, mm::Size4M>) {
        ok = take(pt.map(mm::Page<mm::Size4M>::containing(G::virt(lin)),
                         mm::Frame<mm::Size4M>::containing(PhysAddr::from(pa)), f));
      } else if (kind < 9) {
        ok = take(pt.map(mm::Page<mm::Size2M>::containing(G::virt(lin)),
                         mm::Frame<mm::Size2M>::containing(PhysAddr::from(pa)), f));
      } else {
        ok = take(pt.map(mm::Page<mm::Size1G>::containing(G::virt(lin)),
                         mm::Frame<mm::Size1G>::containing(PhysAddr::from(pa)), f));
      }
      if (ok) mapped.push_back(lin);
    }
    ASSERT_GT(mapped.size(), 500u);

    auto check = [&](uint64_t lin) {
      VirtAddr va = G::virt(lin);
      auto direct = pt.translate(va);
      auto via_window = view.translate(mem, va);
      auto walker = mm::paging_testing::independent_mmu()->translate(mm::paging_testing::format_id<F>(),
                                                                     memory.window(), pt.root(), va);
      ASSERT_EQ(via_window.has_value(), direct.has_value()) << std::hex << va.value();
      if (direct) {
        EXPECT_TRUE(*via_window == *direct) << std::hex << va.value();
      }
      ASSERT_EQ(walker.has_value(), direct.has_value()) << std::hex << va.value();
      if (direct) EXPECT_TRUE(*walker == *direct) << std::hex << va.value();
      // Every table on the direct walk is where the window says, with the same entry.
      auto path = pt.table_path(va);
      for (ktl::u32 i = 0; i < path.depth; ++i) {
        ktl::u32 level = G::kTop - i;
        VirtAddr table_va = view.table_address(level, va);
        sim::WalkResult w = sim::walk(memory.window(), mem.cfg, pt.root().value(), table_va.value());
        ASSERT_TRUE(w.ok()) << "level " << level << " table of " << std::hex << va.value() << " at "
                            << table_va.value() << ": " << sim::describe(w);
        EXPECT_EQ(w.phys, path.at(i).value()) << "level " << level;
        EXPECT_FALSE(w.user) << "the window must be supervisor-only";
        PhysAddr entry_pa = path.at(i) + G::index(lin, level) * sizeof(Entry);
        Entry direct_entry = memory.window().template as<Entry>(entry_pa);
        EXPECT_EQ(mem.read<Entry>(view.entry_address(level, va)).value(), direct_entry) << "level " << level;
      }
      // Below the last table, the window shows nothing (the slot is empty or a leaf).
      if (path.depth < G::kLevels && !direct) {
        ktl::u32 missing = G::kTop - path.depth;
        EXPECT_FALSE(
            sim::walk(memory.window(), mem.cfg, pt.root().value(), view.table_address(missing, va).value())
                .ok());
      }
    };
    for (uint64_t lin : mapped) {
      check(lin);
      check(lin + 0x123);
      if (::testing::Test::HasFailure()) return;
    }
    for (int i = 0; i < 3000 && !::testing::Test::HasFailure(); ++i) check(random_va() + rng() % 4096);

    // Unmapped and reclaimed: the window no longer shows the tables.
    for (uint64_t root_slot = 0; root_slot < F::kEntries; ++root_slot) {
      if (root_slot == slot) continue;
      VirtAddr start = G::virt(root_slot << G::shift(G::kTop));
      pt.unmap_range(start, G::level_size(G::kTop)).release_value().flush.ignore();
      (void)pt.reclaim_empty_tables(start, G::level_size(G::kTop)).release_value();
    }
    EXPECT_EQ(frames.used_count(), 1u);
    for (uint64_t lin : mapped) {
      EXPECT_FALSE(view.translate(mem, G::virt(lin)).has_value());
      EXPECT_FALSE(
          sim::walk(memory.window(), mem.cfg, pt.root().value(), view.table_address(0, G::virt(lin)).value())
              .ok());
    }
    // The root stays visible through the window.
    sim::WalkResult root = sim::walk(memory.window(), mem.cfg, pt.root().value(),
                                     view.table_address(G::kTop, G::virt(0)).value());
    ASSERT_TRUE(root.ok());
    EXPECT_EQ(root.phys, pt.root().value());
  }
  EXPECT_EQ(frames.used_count(), 0u);
}

TEST(PagingRecursive, X86_64Slot510) { cross_check<paging::X86_64>(510, sim::Mmu::X86_64); }
TEST(PagingRecursive, X86_64Slot0) { cross_check<paging::X86_64>(0, sim::Mmu::X86_64); }
TEST(PagingRecursive, X86_32Slot1023) { cross_check<paging::X86_32>(1023, sim::Mmu::X86_32); }
TEST(PagingRecursive, X86_32Slot768) { cross_check<paging::X86_32>(768, sim::Mmu::X86_32); }

}  // namespace
