// mm.heap.paging: the heap's large objects as mm::Mapping<F>s of an address space. LargeObjectMappings<F>
// is the LargeObjectSpace (mm.heap) the large-object area is given: it builds the large-object records
// (LargeObject + Mapping<F>[kMaxRuns]) and creates and destroys their Mappings, kernel read-write,
// non-executable, global, 4 KiB pages. A record's Mappings are the only owners of the object's
// pages and frames: destroying them (Mapping::reset_all) unmaps the object, invalidates its whole
// range with one flush under the address-space lock, then frees its frames. Nothing else in the
// heap maps, unmaps or frees those frames.
//
// Kernel integration: LargeObjectMappings<paging::X86_64> over the kernel address space
// (kernel::memory::HeapSpace), handed to mm::heap::init as HeapConfig::space with the large-object area's
// range (and one per test heap, over a slice of the test-heap slot). On the host (mm.heap.host) the
// same class runs over an AddressSpace in simulated memory, with a HostView that shows the frames
// at the region's addresses (mmap of the memfd) after a Mapping is created and hides them before
// it is destroyed; the view never flushes, so the Mapping's flush is the only one.
//
// Locking: called with heap.large_objects held; Mapping takes the address-space lock (heap.large_objects ->
// address-space -> pmm.arena, docs/ARCHITECTURE.md). The large-object area's part of the tables is
// changed by nobody else. FIXME(smp): when other CPUs run, the flush must reach them (mm.arch's
// flush_tlb is local today).
module;

#include <ktl/macros.h>
#include <ktl/new.h>

export module mm.heap.paging;

import ktl;
import mm.addr;
import mm.address_space;
import mm.heap;
import mm.mapping;
import mm.paging;
import mm.pmm;

export namespace mm {

// What a refused Mapping::create of the large-object area becomes: the same cause under its heap name.
// Errors a 4 KiB, page-aligned, non-empty mapping cannot get panic.
[[nodiscard]] inline HeapError to_heap_error(PagingError e) {
  switch (e) {
    case PagingError::NoMemory: return HeapError::OutOfMemory;
    case PagingError::AlreadyMapped: return HeapError::AlreadyMapped;
    case PagingError::TableInTheWay: return HeapError::TableInTheWay;
    case PagingError::OutOfRange: return HeapError::OutOfRange;
    case PagingError::Reserved: return HeapError::ReservedRange;
    case PagingError::FrameUnreachable: return HeapError::TableFrameUnreachable;
    case PagingError::OutsideWindow: return HeapError::TableFrameOutsideWindow;
    case PagingError::FrameAllocatorNotReady: return HeapError::PmmNotInitialized;
    default: ktl::panic("large-object area: a paging error a heap mapping cannot get", to_string(e));
  }
}

// How a host makes mapped heap pages dereferenceable at their virtual addresses (mm.heap.host).
// The kernel has none: its MMU walks the tables the Mappings write.
class HostView {
 public:
  // Physical [phys, phys + bytes) becomes readable and writable at `at`; false if it cannot.
  [[nodiscard]] virtual bool show(VirtAddr at, PhysAddr phys, u64 bytes) = 0;
  // [at, at + bytes) becomes inaccessible again (before the frames are freed). No TLB flush: that
  // is the Mapping's.
  virtual void hide(VirtAddr at, u64 bytes) = 0;

 protected:
  ~HostView() = default;
};

template <PageTableFormat F>
class LargeObjectMappings final : public LargeObjectSpace {
 public:
  // Large objects become Mappings of `space` (which must outlive this and the heap). `view`: the
  // host's, or null.
  explicit LargeObjectMappings(AddressSpace<F>& space, HostView* view = nullptr)
      : space_(space), view_(view) {}
  LargeObjectMappings(const LargeObjectMappings&) = delete;
  LargeObjectMappings& operator=(const LargeObjectMappings&) = delete;

  [[nodiscard]] usize record_size() const override { return sizeof(Record); }
  [[nodiscard]] usize record_align() const override { return alignof(Record); }
  [[nodiscard]] LargeObject* construct(void* place) override { return new (place) Record(); }
  [[nodiscard]] inline void* destroy(LargeObject* o) override {
    ktl::check(o->runs == 0, "large-object area: a large-object record destroyed while it holds Mappings");
    Record* r = &record(*o);
    r->~Record();
    return r;
  }

  [[nodiscard]] ktl::Result<void, HeapError> map(LargeObject& o, VirtAddr at,
                                                 AllocatedFrames frames) override {
    ktl::check(o.runs < LargeObject::kMaxRuns,
               "large-object area: a large object has no room for another run");
    PhysAddr phys = frames.start();
    u64 bytes = frames.size_bytes();
    auto created = Mapping<F>::create(space_, at, ktl::move(frames),
                                      PageFlags::kernel_rw().with(Scope::Global), HugePages::Deny);
    if (created.is_err()) return ktl::Err(to_heap_error(created.error()));  // `frames` frees them
    Mapping<F>& m = record(o).mappings[o.runs];
    m = created.release_value();
    if (view_ != nullptr && !view_->show(at, phys, bytes)) {
      m.reset();  // unmap, flush, free: nothing stays
      return ktl::Err(HeapError::HostViewFailed);
    }
    ++o.runs;
    return ktl::ok();
  }

  inline void unmap(LargeObject& o, u32 first) override {
    if (first >= o.runs) return;
    ktl::Span<Mapping<F>> runs = record(o).mappings.span().subspan(first, o.runs - first);
    if (view_ != nullptr) {
      VirtAddr from = runs[0].start();
      VirtAddr to = runs[runs.size() - 1].range().end();
      view_->hide(from, to - from);
    }
    Mapping<F>::reset_all(runs);
    o.runs = first;
  }

  [[nodiscard]] inline LargeRun run(const LargeObject& o, u32 i) const override {
    ktl::check(i < o.runs, "large-object area: no such run");
    const Mapping<F>& m = static_cast<const Record&>(o).mappings[i];
    return LargeRun{m.start(), m.pages(), m.phys()};
  }

  [[nodiscard]] inline AddressSpace<F>& space() const { return space_; }

 private:
  // The record: the heap's fields, then the Mappings that own the object's runs ([0, runs)).
  struct Record final : LargeObject {
    ktl::Array<Mapping<F>, LargeObject::kMaxRuns> mappings{};
  };
  // Every record this class sees was built by construct().
  [[nodiscard]] static Record& record(LargeObject& o) { return static_cast<Record&>(o); }

  AddressSpace<F>& space_;
  HostView* view_;
};

}  // namespace mm
