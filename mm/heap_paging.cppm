// mm.heap.paging: the kernel's RegionPager. Large heap allocations are mapped into the kernel heap
// region of a page table (mm.paging) with kernel read-write, non-executable, global 4 KiB leaves;
// unmapping clears them and flushes the TLB for the range once, before the heap frees the frames.
//
// Kernel integration: PageTablePager<paging::X86_64> over the kernel's PageTable (adopted from the
// loader), handed to mm::heap::init as HeapConfig::pager together with the heap region's range.
// On the host the same pager runs over a PageTable in simulated memory, composed with the host
// mirror (mm.heap.host) so the mapped frames are also really reachable at those addresses; the
// test checks every translation against the software walker.
//
// Locking: the pager is called with heap.region held and does not lock the page table itself; the
// kernel heap region must be changed by nobody else (its top-level slot belongs to the heap), so
// heap.region serialises every change of that subtree. FIXME(smp): when other CPUs run, the flush
// must reach them (mm.arch's flush_tlb is local today).
module;

#include <ktl/macros.h>

export module mm.heap.paging;

import ktl;
import mm.addr;
import mm.heap;
import mm.paging;

export namespace mm {

template <PageTableFormat F>
class PageTablePager final : public RegionPager {
 public:
  explicit PageTablePager(PageTable<F>& table) : table_(table) {}

  ktl::Result<void, HeapError> map(VirtAddr start, FrameRange<Size4K> frames) override {
    auto r = table_.map_range(start, frames.first().start(), frames.size_bytes(),
                              PageFlags::kernel_rw().with(Scope::Global), HugePages::Deny);
    if (r.is_err())
      return ktl::Err(r.error() == PagingError::NoMemory ? HeapError::OutOfMemory : HeapError::MapFailed);
    // The slots were empty (the region never maps a page twice): nothing can be cached for them.
    r.release_value().ignore();
    return ktl::ok();
  }
  void unmap(VirtAddr start, u64 pages) override {
    auto r = table_.unmap_range(start, pages * kPageSize);
    ktl::check(r.is_ok(), "heap pager: unmapping a heap range failed");
    RangeUnmapped done = r.release_value();
    ktl::check(done.pages == pages, "heap pager: the range was not fully mapped");
    ktl::move(done.flush).flush();
  }

 private:
  PageTable<F>& table_;
};

// Calls both pagers (map: first `a`, then `b`, undoing `a` if `b` fails). The host composes the
// page-table pager with its mirror this way.
class BothPagers final : public RegionPager {
 public:
  BothPagers(RegionPager& a, RegionPager& b) : a_(a), b_(b) {}
  ktl::Result<void, HeapError> map(VirtAddr start, FrameRange<Size4K> frames) override {
    TRY(a_.map(start, frames));
    auto r = b_.map(start, frames);
    if (r.is_err()) a_.unmap(start, frames.count());
    return r;
  }
  void unmap(VirtAddr start, u64 pages) override {
    b_.unmap(start, pages);
    a_.unmap(start, pages);
  }

 private:
  RegionPager& a_;
  RegionPager& b_;
};

}  // namespace mm
