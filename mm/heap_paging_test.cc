// The kernel's path for large allocations, on the host: a heap whose region pager is the
// page-table pager (mm.heap.paging) over an x86_64 PageTable in simulated memory, composed with the
// host mirror so the addresses are really usable. Every large block's pages must translate, in the
// tables and in the independent software walker, to exactly the frames behind the bytes the heap
// returned; freeing must remove the translations, flush the TLB once for the range, and give every
// frame back (table frames included, after reclaim_empty_tables).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <ktl/macros.h>

import ktl;
import mm.addr;
import mm.arch;
import mm.heap;
import mm.heap.host;
import mm.heap.paging;
import mm.paging;
import mm.pmm;
import mm.slab;
import sim.phys;
import sim.walker;

namespace {

TEST(HeapPaging, LargeBlocksAreMappedByThePageTableToTheirFrames) {
  constexpr std::uint64_t kPhys = std::uint64_t{128} << 20;
  sim::PhysMemory memory(mm::PhysAddr::from(16u << 20), kPhys, sim::Backing::Memfd);
  mm::Pmm pmm;
  ktl::Array<mm::PhysRegion, 1> map{{mm::PhysRegion{memory.range(), mm::RegionKind::Usable, mm::NodeId{0}}}};
  ASSERT_TRUE(pmm.init(map.span(), memory.window()).is_ok());
  std::uint64_t free_at_start = pmm.free_frame_count();
  {
    auto table = mm::PageTable<mm::paging::X86_64>::create(memory.window(), pmm).release_value();
    mm::heap_host::Reservation region(std::uint64_t{256} << 20);
    mm::PageTablePager<mm::paging::X86_64> tables(table);
    mm::heap_host::MirrorPager mirror(memory);
    mm::BothPagers pager(tables, mirror);
    {
      mm::Heap heap;
      mm::HeapConfig config;
      config.region = region.range();
      config.pager = &pager;
      config.hardening = mm::Hardening::On;
      ASSERT_TRUE(heap.init(pmm, memory.window(), config).is_ok());

      std::vector<std::pair<std::uint8_t*, std::size_t>> blocks;
      for (std::size_t size :
           {std::size_t{70000}, std::size_t{300000}, std::size_t{1} << 20, std::size_t{5000000}}) {
        auto* p = static_cast<std::uint8_t*>(heap.kmalloc(size));
        ASSERT_NE(p, nullptr);
        ASSERT_TRUE(region.range().contains(mm::VirtAddr::from(reinterpret_cast<std::uintptr_t>(p))));
        for (std::size_t i = 0; i < size; i += 512) p[i] = static_cast<std::uint8_t>(i / 512 + size);
        blocks.emplace_back(p, size);
      }
      sim::MmuConfig mmu;
      mmu.mmu = sim::Mmu::X86_64;
      for (auto [p, size] : blocks) {
        for (std::size_t off = 0; off < size; off += 4096) {
          auto va = mm::VirtAddr::from(reinterpret_cast<std::uintptr_t>(p) + off);
          auto t = table.translate(va);
          ASSERT_TRUE(t.has_value()) << "page " << off / 4096 << " of a " << size
                                     << "-byte block is not mapped";
          EXPECT_TRUE(t->flags.writable());
          EXPECT_FALSE(t->flags.executable());
          sim::WalkResult w = sim::walk(memory.window(), mmu, table.root().value(), va.value());
          ASSERT_TRUE(w.ok());
          EXPECT_EQ(w.phys, t->phys.value());
          // The byte the heap's pointer wrote is the byte of that physical frame.
          EXPECT_EQ(memory.window().bytes(t->phys, 1)[0], static_cast<std::uint8_t>(off / 512 + size));
        }
        // The guard page after the block is not mapped.
        std::size_t mapped = (size + 4095) / 4096 * 4096;
        EXPECT_FALSE(
            table.translate(mm::VirtAddr::from(reinterpret_cast<std::uintptr_t>(p) + mapped)).has_value());
      }
      for (auto [p, size] : blocks) {
        sim::reset_tlb_log();
        heap.kfree(p);
        sim::TlbLog log = sim::tlb_log();
        EXPECT_EQ(log.range_flushes, 2u);  // once by the page-table pager, once recorded by the mirror
        EXPECT_EQ(log.pages_flushed, 2 * ((size + 4095) / 4096));
        EXPECT_FALSE(table.translate(mm::VirtAddr::from(reinterpret_cast<std::uintptr_t>(p))).has_value());
      }
    }  // the heap is gone: its frames are back; only page-table frames remain
    ASSERT_TRUE(table.reclaim_empty_tables(region.range().start(), region.range().size()).is_ok());
    // What remains is the root and the tables above the region that also span addresses outside
    // it (the host reservation is not 1 GiB aligned); destroying the table frees those.
    EXPECT_LE(table.table_frames(), 3u);
  }
  EXPECT_EQ(pmm.free_frame_count(), free_at_start);
}

}  // namespace
