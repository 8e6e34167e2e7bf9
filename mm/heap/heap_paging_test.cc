// The heap's large objects are mm::Mappings (mm.heap.paging), on the host exactly as in the kernel:
// HostHeap's region is an LargeObjectMappings over an x86_64 AddressSpace in simulated memory, and
// the memfd view only makes the pages reachable at their addresses.
//
//  * A large kmalloc creates exactly one Mapping (of the heap's address space) over its pages, and
//    each page translates, in the tables and in the independent software walker, to the frame
//    behind the bytes the heap's pointer reaches; the guard page after it is unmapped.
//  * kfree destroys it: one TLB flush for the range, at which moment the entries are already
//    cleared, the host view already hidden and the frames not yet freed; then every frame is back
//    in the PMM.
//  * Growth in place adds one Mapping for the new pages only (one owner per page), flushes nothing,
//    and kfree of the grown object is still one flush over all of it.
//  * Objects made of several physical runs (fragmented memory) are one Mapping per run, freed with
//    one flush; failures part-way leave no Mapping, no frame and no mapped page behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <ktl/macros.h>

import ktl;
import mm.addr;
import mm.address_space;
import mm.arch;
import mm.heap;
import mm.heap.host;
import mm.heap.paging;
import mm.mapping;
import mm.paging;
import mm.pmm;
import mm.slab;
import sim.walker;

namespace {

using mm::heap_host::HostHeap;
using mm::heap_host::HostHeapOptions;

constexpr std::uint64_t kPage = 4096;

std::uintptr_t addr(const void* p) { return ktl::address_of(p); }
mm::VirtAddr va(const void* p, std::uint64_t offset = 0) { return mm::VirtAddr::from(addr(p) + offset); }
std::uint64_t pages_of(std::size_t bytes) { return (bytes + kPage - 1) / kPage; }

// Frames the heap holds outside large objects (slabs for descriptors, its tables) and the frame
// table's: they may change when a large object is made; the PMM's free count must move by exactly
// that plus the object's pages.
std::uint64_t heap_overhead(HostHeap& host) {
  mm::HeapStats s = host.heap().stats();
  return s.slab_frames + s.metadata_frames + host.frame_table().metadata_frames();
}

std::vector<mm::LargeRun> runs_of(mm::Heap& heap, const void* p) {
  std::vector<mm::LargeRun> runs(mm::LargeObject::kMaxRuns);
  std::uint32_t n = heap.large_objects().runs_of(p, ktl::Span<mm::LargeRun>(runs));
  runs.resize(n);
  return runs;
}

sim::WalkResult walk(HostHeap& host, mm::VirtAddr v) {
  sim::MmuConfig mmu;
  mmu.mmu = sim::Mmu::X86_64;
  return sim::walk(host.memory().window(), mmu, host.space().root().value(), v.value());
}

// Every page of the object is mapped by exactly one of its runs, in order and without gaps, to that
// run's frame, in the tables and in the walker; the page after it is not mapped.
void expect_runs_cover(HostHeap& host, const void* p, std::size_t bytes,
                       const std::vector<mm::LargeRun>& runs) {
  std::uint64_t pages = pages_of(bytes);
  mm::VirtAddr next = va(p);
  std::uint64_t covered = 0;
  for (const mm::LargeRun& r : runs) {
    EXPECT_EQ(r.start, next) << "runs must be adjacent and in order";
    for (std::uint64_t i = 0; i < r.pages; ++i) {
      mm::VirtAddr v = r.start + i * kPage;
      auto t = host.space().translate(v);
      ASSERT_TRUE(t.has_value()) << "page " << covered + i << " is not mapped";
      EXPECT_EQ(t->phys, r.phys + i * kPage);
      EXPECT_TRUE(t->flags.writable());
      EXPECT_FALSE(t->flags.executable());
      EXPECT_TRUE(t->flags.global());
      sim::WalkResult w = walk(host, v);
      ASSERT_TRUE(w.ok());
      EXPECT_EQ(w.phys, t->phys.value());
    }
    covered += r.pages;
    next = r.start + r.pages * kPage;
  }
  EXPECT_EQ(covered, pages);
  EXPECT_FALSE(host.space().translate(va(p, pages * kPage)).has_value()) << "the guard page is mapped";
}

TEST(HeapMappings, ALargeKmallocIsExactlyOneMappingOverItsPages) {
  HostHeap host;
  mm::Heap& heap = host.heap();
  for (std::size_t size :
       {std::size_t{70000}, std::size_t{300000}, std::size_t{1} << 20, std::size_t{5000000}}) {
    SCOPED_TRACE(size);
    std::uint64_t free_before = host.pmm().free_frame_count();
    std::uint64_t overhead_before = heap_overhead(host);
    std::uint64_t mappings_before = host.space().live_mappings();
    auto* p = static_cast<std::uint8_t*>(heap.kmalloc(size));
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(host.large_object_range().contains(va(p)));
    EXPECT_EQ(host.space().live_mappings(), mappings_before + 1);
    EXPECT_EQ(heap.large_objects().stats().mappings, heap.large_objects().stats().objects);
    std::vector<mm::LargeRun> runs = runs_of(heap, p);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].start, va(p));
    EXPECT_EQ(runs[0].pages, pages_of(size));
    expect_runs_cover(host, p, size, runs);
    // The Mapping's frames are what the heap took from the PMM, and nothing else was.
    std::uint64_t overhead = heap_overhead(host) - overhead_before;
    EXPECT_EQ(free_before - host.pmm().free_frame_count(), pages_of(size) + overhead);
    for (std::uint64_t i = 0; i < runs[0].pages; ++i) {
      EXPECT_EQ(host.pmm().state_of(mm::Frame4K::containing(runs[0].phys + i * kPage)),
                mm::FrameState::Allocated);
    }
    // The bytes behind the heap's pointer are the Mapping's frames.
    for (std::size_t i = 0; i < size; i += 512) p[i] = static_cast<std::uint8_t>(i / 512 + size);
    for (std::size_t i = 0; i < size; i += 512) {
      auto t = host.space().translate(va(p, i));
      ASSERT_TRUE(t.has_value());
      ASSERT_EQ(host.memory().window().bytes(t->phys, 1)[0], static_cast<std::uint8_t>(i / 512 + size));
    }
    heap.kfree(p);
    EXPECT_EQ(host.space().live_mappings(), mappings_before);
  }
  EXPECT_EQ(heap.large_objects().stats().mappings, 0u);
  EXPECT_EQ(host.destroy_heap(), 0u);
}

struct FlushProbe {
  HostHeap* host = nullptr;
  mm::VirtAddr start = mm::VirtAddr::zero();
  std::uint64_t pages = 0;
  mm::PhysAddr first_frame = mm::PhysAddr::zero();
  std::uint64_t hides_expected = 0;
  int flushes = 0;
  bool entries_cleared = false;
  bool frames_still_allocated = false;
  bool view_hidden = false;
};

void observe(ktl::u64 start, ktl::u64 pages, void* context) {
  auto* probe = static_cast<FlushProbe*>(context);
  ++probe->flushes;
  // The address-space lock is held: read the tables with the walker, not the engine.
  bool cleared = true;
  for (std::uint64_t i = 0; i < probe->pages; ++i)
    cleared = cleared && !walk(*probe->host, probe->start + i * kPage).ok();
  probe->entries_cleared = cleared && start == probe->start.value() && pages == probe->pages;
  probe->frames_still_allocated =
      probe->host->pmm().state_of(mm::Frame4K::containing(probe->first_frame)) == mm::FrameState::Allocated;
  probe->view_hidden = probe->host->view().hides() == probe->hides_expected;
}

TEST(HeapMappings, KfreeDestroysTheMappingWithOneFlushThenFreesTheFrames) {
  HostHeap host;
  mm::Heap& heap = host.heap();
  constexpr std::size_t kSize = 300 * 1024 + 1;
  void* warm = heap.kmalloc(kSize);  // descriptor slab and table leaf exist from here on
  heap.kfree(warm);
  std::uint64_t free_before = host.pmm().free_frame_count();
  std::uint64_t mappings_before = host.space().live_mappings();
  void* p = heap.kmalloc(kSize);
  ASSERT_NE(p, nullptr);
  std::vector<mm::LargeRun> runs = runs_of(heap, p);
  ASSERT_EQ(runs.size(), 1u);
  FlushProbe probe;
  probe.host = &host;
  probe.start = va(p);
  probe.pages = pages_of(kSize);
  probe.first_frame = runs[0].phys;
  probe.hides_expected = host.view().hides() + 1;
  mm::arch::reset_tlb_log();
  mm::arch::set_tlb_flush_observer(&observe, &probe);
  heap.kfree(p);
  mm::arch::set_tlb_flush_observer(nullptr, nullptr);
  mm::arch::TlbLog log = mm::arch::tlb_log();
  EXPECT_EQ(log.range_flushes, 1u);
  EXPECT_EQ(log.full_flushes, 0u);
  EXPECT_EQ(log.pages_flushed, pages_of(kSize));
  EXPECT_EQ(log.last_start, addr(p));
  EXPECT_EQ(probe.flushes, 1);
  EXPECT_TRUE(probe.entries_cleared) << "the flush came before the range was unmapped";
  EXPECT_TRUE(probe.frames_still_allocated) << "the frames were freed before the flush";
  EXPECT_TRUE(probe.view_hidden) << "the host view still showed the pages at the flush";
  // Afterwards: no Mapping, every frame back in the PMM.
  EXPECT_EQ(host.space().live_mappings(), mappings_before);
  EXPECT_EQ(host.pmm().free_frame_count(), free_before);
  for (std::uint64_t i = 0; i < runs[0].pages; ++i) {
    EXPECT_EQ(host.pmm().state_of(mm::Frame4K::containing(runs[0].phys + i * kPage)), mm::FrameState::Free);
  }
  EXPECT_FALSE(host.space().translate(va(p)).has_value());
  EXPECT_EQ(host.destroy_heap(), 0u);
}

TEST(HeapMappings, GrowthInPlaceAddsOneMappingForTheNewPagesOnly) {
  HostHeap host;
  mm::Heap& heap = host.heap();
  auto* p = static_cast<std::uint8_t*>(heap.kmalloc(100 * 1024));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5a, 100 * 1024);
  std::vector<mm::LargeRun> before = runs_of(heap, p);
  ASSERT_EQ(before.size(), 1u);
  std::uint64_t free_before = host.pmm().free_frame_count();
  std::uint64_t overhead_before = heap_overhead(host);
  std::uint64_t mappings_before = host.space().live_mappings();
  mm::arch::reset_tlb_log();
  ASSERT_EQ(heap.krealloc(p, 300 * 1024), p);  // the pages behind are free: grows in place
  EXPECT_EQ(mm::arch::tlb_log().range_flushes + mm::arch::tlb_log().full_flushes, 0u) << "growing flushed";
  std::vector<mm::LargeRun> after = runs_of(heap, p);
  ASSERT_EQ(after.size(), 2u);
  // The first Mapping is untouched; the second covers exactly the new pages (from the old guard page).
  EXPECT_EQ(after[0].start, before[0].start);
  EXPECT_EQ(after[0].pages, before[0].pages);
  EXPECT_EQ(after[0].phys, before[0].phys);
  EXPECT_EQ(after[1].start, va(p, 100 * 1024));
  EXPECT_EQ(after[1].pages, pages_of(300 * 1024) - pages_of(100 * 1024));
  EXPECT_EQ(host.space().live_mappings(), mappings_before + 1);
  EXPECT_EQ(heap.large_objects().stats().mappings, 2u);
  expect_runs_cover(host, p, 300 * 1024, after);
  EXPECT_EQ(free_before - host.pmm().free_frame_count(),
            after[1].pages + (heap_overhead(host) - overhead_before));
  for (std::size_t i = 0; i < 100 * 1024; ++i) ASSERT_EQ(p[i], 0x5a);
  std::memset(p, 0x33, 300 * 1024);  // every new page is writable through the pointer

  // kfree: one flush over the whole grown object, then both runs' frames are free.
  std::uint64_t free_held = host.pmm().free_frame_count();
  mm::arch::reset_tlb_log();
  heap.kfree(p);
  mm::arch::TlbLog log = mm::arch::tlb_log();
  EXPECT_EQ(log.range_flushes, 1u);
  EXPECT_EQ(log.full_flushes, 0u);
  EXPECT_EQ(log.last_start, addr(p));
  EXPECT_EQ(log.pages_flushed, pages_of(300 * 1024));
  EXPECT_EQ(host.pmm().free_frame_count(), free_held + pages_of(300 * 1024));
  EXPECT_EQ(host.space().live_mappings(), mappings_before - 1);
  EXPECT_EQ(heap.large_objects().stats().mappings, 0u);
  EXPECT_EQ(host.destroy_heap(), 0u);
}

TEST(HeapMappings, FailedGrowthLeavesTheObjectAndItsOneMappingAlone) {
  HostHeap host;
  mm::Heap& heap = host.heap();
  auto* p = static_cast<std::uint8_t*>(heap.kmalloc(100 * 1024));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x77, 100 * 1024);
  std::uint64_t free_before = host.pmm().free_frame_count();
  std::uint64_t mappings_before = host.space().live_mappings();
  heap.large_objects().fail_allocations_after(0);
  EXPECT_EQ(heap.krealloc(p, 300 * 1024), nullptr);  // neither grows nor moves: p untouched
  heap.large_objects().fail_allocations_after(~std::uint64_t{0});
  EXPECT_EQ(host.space().live_mappings(), mappings_before);
  EXPECT_EQ(runs_of(heap, p).size(), 1u);
  expect_runs_cover(host, p, 100 * 1024, runs_of(heap, p));
  EXPECT_EQ(host.pmm().free_frame_count(), free_before);
  for (std::size_t i = 0; i < 100 * 1024; ++i) ASSERT_EQ(p[i], 0x77);
  heap.kfree(p);
  EXPECT_EQ(host.destroy_heap(), 0u);
}

// Fragments the PMM into free runs of `run` frames separated by one allocated frame; returns the
// frames kept (freed by the caller).
std::vector<mm::AllocatedFrames> fragment(mm::Pmm& pmm, std::uint64_t run) {
  std::vector<mm::AllocatedFrames> all;
  while (true) {
    auto f = pmm.alloc_page();
    if (f.is_err()) break;
    all.push_back(f.release_value());
  }
  std::sort(all.begin(), all.end(),
            [](const mm::AllocatedFrames& a, const mm::AllocatedFrames& b) { return a.start() < b.start(); });
  std::vector<mm::AllocatedFrames> kept;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i % (run + 1) == run) kept.push_back(std::move(all[i]));
  }
  return kept;  // `all`'s other frames go back now
}

TEST(HeapMappings, FragmentedMemoryGivesOneMappingPerRunAndStillOneFlush) {
  HostHeapOptions options;
  options.phys_bytes = std::uint64_t{16} << 20;
  HostHeap host(options);
  mm::Heap& heap = host.heap();
  constexpr std::size_t kSize = 17 * kPage;  // the smallest large object
  void* warm = heap.kmalloc(kSize);
  heap.kfree(warm);
  {
    std::vector<mm::AllocatedFrames> kept = fragment(host.pmm(), 16);
    std::uint64_t free_before = host.pmm().free_frame_count();
    std::uint64_t mappings_before = host.space().live_mappings();
    void* p = heap.kmalloc(kSize);  // 17 pages, no 17 contiguous frames: runs of 8 and 9
    ASSERT_NE(p, nullptr);
    std::vector<mm::LargeRun> runs = runs_of(heap, p);
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_NE(runs[1].phys, runs[0].phys + runs[0].pages * kPage);  // physically apart
    EXPECT_EQ(host.space().live_mappings(), mappings_before + 2);
    expect_runs_cover(host, p, kSize, runs);
    std::memset(p, 0xee, kSize);
    EXPECT_EQ(free_before - host.pmm().free_frame_count(), 17u);
    mm::arch::reset_tlb_log();
    heap.kfree(p);
    mm::arch::TlbLog log = mm::arch::tlb_log();
    EXPECT_EQ(log.range_flushes, 1u);  // both Mappings, one invalidation of their (adjacent) ranges
    EXPECT_EQ(log.pages_flushed, 17u);
    EXPECT_EQ(log.last_start, addr(p));
    EXPECT_EQ(host.pmm().free_frame_count(), free_before);
    EXPECT_EQ(host.space().live_mappings(), mappings_before);

    // All or nothing: the first run is mapped, the second cannot be had; the first Mapping is
    // destroyed again (one flush), and nothing stays.
    heap.large_objects().fail_allocations_after(1);
    mm::arch::reset_tlb_log();
    EXPECT_EQ(heap.allocate(kSize).error(), mm::HeapError::OutOfMemory);  // the injected failure
    heap.large_objects().fail_allocations_after(~std::uint64_t{0});
    EXPECT_EQ(mm::arch::tlb_log().range_flushes, 1u);
    EXPECT_EQ(host.space().live_mappings(), mappings_before);
    EXPECT_EQ(host.pmm().free_frame_count(), free_before);
    EXPECT_EQ(heap.large_objects().stats().objects, 0u);
    EXPECT_EQ(heap.large_objects().stats().mappings, 0u);

    // More runs than a record holds: too fragmented, nothing left behind.
    std::vector<mm::AllocatedFrames> finer = fragment(host.pmm(), 2);
    std::uint64_t free_finer = host.pmm().free_frame_count();
    EXPECT_EQ(heap.allocate(kSize).error(), mm::HeapError::TooFragmented);
    EXPECT_EQ(host.pmm().free_frame_count(), free_finer);
    EXPECT_EQ(host.space().live_mappings(), mappings_before);
  }
  EXPECT_EQ(host.destroy_heap(), 0u);
}

// A failed large allocation names its cause: the region's (too large, full), the address space's
// (a page of the region mapped behind the heap's back), a heap without a region; nothing leaks.
TEST(HeapMappings, AFailedLargeAllocationKeepsItsCause) {
  using KMapping = mm::Mapping<mm::heap_host::HostFormat>;
  HostHeapOptions options;
  options.large_object_bytes = 64 * kPage;
  HostHeap host(options);
  mm::Heap& heap = host.heap();
  EXPECT_EQ(heap.allocate(64 * kPage).error(), mm::HeapError::TooLarge);  // no room for the guard page
  EXPECT_EQ(heap.allocate(100 * 1024, 3).error(), mm::HeapError::InvalidArgument);
  void* p = heap.allocate(40 * kPage).value();
  EXPECT_EQ(heap.allocate(30 * kPage).error(), mm::HeapError::LargeObjectsFull);
  heap.kfree(p);
  {
    auto frames = host.pmm().alloc_page();
    ASSERT_TRUE(frames.is_ok());
    auto squatter = KMapping::create(host.space(), host.large_object_range().start() + 40 * kPage,
                                     frames.release_value(), mm::PageFlags::kernel_rw(), mm::HugePages::Deny);
    ASSERT_TRUE(squatter.is_ok());
    std::uint64_t mappings = host.space().live_mappings();
    EXPECT_EQ(heap.allocate(50 * kPage).error(), mm::HeapError::AlreadyMapped);
    EXPECT_EQ(host.space().live_mappings(), mappings);  // the runs mapped before it are gone again
  }
  EXPECT_EQ(heap.large_objects().stats().objects, 0u);
  EXPECT_EQ(host.destroy_heap(), 0u);

  options.with_large_objects = false;
  HostHeap bare(options);
  EXPECT_EQ(bare.heap().allocate(100 * 1024).error(), mm::HeapError::NoLargeObjects);
  EXPECT_EQ(bare.destroy_heap(), 0u);
}

// Mapping::reset_all, which the records use: several Mappings of one space, one invalidation,
// frames freed after it; empty Mappings are skipped; scattered ranges get one full flush.
TEST(HeapMappings, ResetAllUnmapsEveryRangeThenFlushesOnceThenFrees) {
  using KMapping = mm::Mapping<mm::heap_host::HostFormat>;
  HostHeapOptions options;
  options.with_large_objects = false;  // the region is ours here, not the heap's
  HostHeap host(options);
  std::uint64_t free_before = host.pmm().free_frame_count();
  mm::VirtAddr base = host.large_object_range().start();
  auto make = [&](std::uint64_t page, std::uint64_t count) {
    auto frames = host.pmm().alloc_contiguous(count, kPage);
    EXPECT_TRUE(frames.is_ok());
    auto m = KMapping::create(host.space(), base + page * kPage, frames.release_value(),
                              mm::PageFlags::kernel_rw(), mm::HugePages::Deny);
    EXPECT_TRUE(m.is_ok());
    return m.release_value();
  };
  ktl::Array<KMapping, 4> adjacent{{make(0, 3), KMapping(), make(3, 5), make(8, 1)}};
  EXPECT_EQ(host.space().live_mappings(), 3u);
  mm::arch::reset_tlb_log();
  KMapping::reset_all(adjacent.span());
  mm::arch::TlbLog log = mm::arch::tlb_log();
  EXPECT_EQ(log.range_flushes, 1u);
  EXPECT_EQ(log.full_flushes, 0u);
  EXPECT_EQ(log.last_start, base.value());
  EXPECT_EQ(log.last_pages, 9u);
  for (const KMapping& m : adjacent) EXPECT_TRUE(m.empty());
  EXPECT_EQ(host.space().live_mappings(), 0u);
  EXPECT_EQ(host.pmm().free_frame_count(), free_before);
  for (std::uint64_t page = 0; page < 9; ++page)
    EXPECT_FALSE(host.space().translate(base + page * kPage).has_value());

  ktl::Array<KMapping, 2> scattered{{make(0, 1), make(1000, 1)}};
  mm::arch::reset_tlb_log();
  KMapping::reset_all(scattered.span());
  EXPECT_EQ(mm::arch::tlb_log().range_flushes + mm::arch::tlb_log().full_flushes, 1u);
  EXPECT_EQ(host.pmm().free_frame_count(), free_before);
  EXPECT_EQ(host.destroy_heap(), 0u);
}

}  // namespace
