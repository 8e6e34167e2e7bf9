// mm.mapping: a Mapping owns a virtual range of an address space and the frames mapped there
// (Theseus' MappedPages, SerenityOS' Region).
//
//   auto frames = TRY(pmm.alloc_contiguous(16, kPageSize));
//   auto buffer = TRY(mm::Mapping<F>::create(space, va, ktl::move(frames), mm::PageFlags::kernel_rw()));
//   buffer.as<Header>().magic = 42;           // checked: bounds, alignment, writability
//   for (u64& w : buffer.span<u64>()) w = 0;
//   // ~Mapping: unmap the range, invalidate it once, then free the frames
//
// Move-only. Destruction order is the safety argument: the entries are cleared and the whole range
// is invalidated with one flush (under the address-space lock) before the frames go back to the
// allocator, so no CPU can reach a frame after it is reused. Emptied page tables are left for the
// explicit reclaim step. Mapping::reset_all destroys several Mappings of one space with one flush
// (the runs of a kernel-heap object: mm.heap.paging).
//
// Views go through the physical window (the kernel's direct map), so they work whether or not the
// address space is active; they enforce the mapping's own permissions (a writable view of a
// read-only mapping panics) and are [[clang::lifetimebound]] to the Mapping.
//
// Lock order: AddressSpace::lock() (taken here), then the page-table frame allocator, then the
// PMM (frames are freed after the address-space lock is dropped).
module;

#include <ktl/macros.h>

export module mm.mapping;

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.address_space;
import mm.pmm;

export namespace mm {

template <PageTableFormat F>
class [[nodiscard]] Mapping {
 public:
  // Maps all of `frames` at `start` (4 KiB aligned) with `flags`, using huge pages where the
  // alignment of both addresses allows (HugePages::Deny: 4 KiB pages only). On success the
  // Mapping owns the frames; on error they stay with the caller and nothing is mapped.
  // Errors: NoFrames (`frames` is empty), those of PageTable::map_range (AlreadyMapped,
  // NoMemory, Reserved, ...).
  [[nodiscard]] static ktl::Result<Mapping, PagingError> create(AddressSpace<F>& space, VirtAddr start,
                                                                AllocatedFrames&& frames, PageFlags flags,
                                                                HugePages huge = HugePages::Allow)
      EXCLUDES(space.lock()) {
    if (frames.empty()) return ktl::Err(PagingError::NoFrames);
    PhysWindow window;
    {
      ktl::LockGuard guard(space.lock());
      TlbFlush flush = TRY(space.tables().map_range(start, frames.start(), frames.size_bytes(), flags, huge));
      // Only non-empty when a table entry above had to be loosened; flush it before use.
      ktl::move(flush).flush();
      window = space.tables().window();
    }
    space.mapping_created();
    return Mapping(space, window, start, ktl::move(frames), flags);
  }

  constexpr Mapping() = default;
  Mapping(Mapping&& o)
      : space_(ktl::exchange(o.space_, nullptr)),
        window_(o.window_),
        start_(o.start_),
        frames_(ktl::move(o.frames_)),
        flags_(o.flags_) {}
  inline Mapping& operator=(Mapping&& o) {
    if (this != &o) {
      reset();
      space_ = ktl::exchange(o.space_, nullptr);
      window_ = o.window_;
      start_ = o.start_;
      frames_ = ktl::move(o.frames_);
      flags_ = o.flags_;
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  inline ~Mapping() { reset(); }

  // Unmaps, invalidates the whole range once, then frees the frames. The Mapping is empty after.
  inline void reset() {
    if (space_ == nullptr) return;
    {
      ktl::LockGuard guard(space_->lock());
      auto unmapped = space_->tables().unmap_range(start_, frames_.size_bytes());
      ktl::check_ok(unmapped, "Mapping::reset: the range can no longer be unmapped");
      RangeUnmapped u = unmapped.release_value();
      ktl::check(u.pages == frames_.count(), "Mapping::reset: pages were unmapped behind the Mapping's back");
      ktl::move(u.flush).flush();
    }
    frames_.reset();
    space_->mapping_destroyed();
    space_ = nullptr;
  }

  // Destroys several Mappings of one address space together (empty ones are skipped): every range
  // is unmapped under one hold of the address-space lock, one invalidation covers them all (a
  // FlushBatch: a single range flush of their hull when they are adjacent, as the runs of a grown
  // heap object are; the whole TLB when they are scattered), and only then are the frames freed.
  // The same safety argument as reset(), with one flush instead of one per Mapping. All Mappings
  // are empty after. Panics if they belong to different address spaces.
  static void reset_all(ktl::Span<Mapping> mappings) {
    AddressSpace<F>* space = nullptr;
    for (Mapping& m : mappings) {
      if (m.empty()) continue;
      if (space == nullptr) space = m.space_;
      ktl::check(m.space_ == space, "Mapping::reset_all: Mappings of different address spaces");
    }
    if (space == nullptr) return;
    {
      ktl::LockGuard guard(space->lock());
      FlushBatch batch;
      for (Mapping& m : mappings) {
        if (m.empty()) continue;
        auto unmapped = space->tables().unmap_range(m.start_, m.frames_.size_bytes());
        ktl::check_ok(unmapped, "Mapping::reset_all: a range can no longer be unmapped");
        RangeUnmapped u = unmapped.release_value();
        ktl::check(u.pages == m.frames_.count(),
                   "Mapping::reset_all: pages were unmapped behind the Mapping's back");
        batch.add(ktl::move(u.flush));
      }
      batch.flush();
    }
    for (Mapping& m : mappings) {
      if (m.empty()) continue;
      m.frames_.reset();
      space->mapping_destroyed();
      m.space_ = nullptr;
    }
  }

  [[nodiscard]] inline bool empty() const { return space_ == nullptr; }
  [[nodiscard]] inline VirtAddr start() const { return start_; }
  [[nodiscard]] inline u64 size() const { return frames_.size_bytes(); }
  [[nodiscard]] inline u64 pages() const { return frames_.count(); }
  [[nodiscard]] inline PhysAddr phys() const { return frames_.start(); }
  [[nodiscard]] inline PageFlags flags() const { return flags_; }
  [[nodiscard]] inline VirtRange range() const { return VirtRange::with_size(start_, size()).value(); }

  // Changes the permissions of the whole mapping; one invalidation. Errors: NoMemory is impossible
  // (the mapping's own leaves never need splitting); others indicate a corrupted table.
  [[nodiscard]] inline ktl::Result<void, PagingError> protect(PageFlags flags) {
    ktl::check(space_ != nullptr, "Mapping::protect on an empty Mapping");
    ktl::LockGuard guard(space_->lock());
    TlbFlush flush = TRY(space_->tables().protect_range(start_, size(), flags));
    ktl::move(flush).flush();
    flags_ = flags;
    return ktl::ok();
  }

  // The T at byte `offset`. A non-const T needs a writable mapping; bounds and alignment are
  // checked (panics: misuse of a view is a bug, not a runtime condition).
  template <class T>
    requires ktl::is_trivially_copyable<T>
  [[nodiscard]] inline T& as(u64 offset = 0) const KTL_LIFETIMEBOUND {
    return span<T>(offset, 1)[0];
  }
  // `count` Ts from byte `offset`.
  template <class T>
    requires ktl::is_trivially_copyable<T>
  [[nodiscard]] inline ktl::Span<T> span(u64 offset, ktl::usize count) const KTL_LIFETIMEBOUND {
    ktl::check(space_ != nullptr, "Mapping view of an empty Mapping");
    if constexpr (!ktl::is_const<T>) {
      ktl::check(flags_.writable(), "Mapping: writable view of a read-only mapping");
    }
    auto bytes = ktl::checked_mul<u64>(count, sizeof(T));
    auto end = ktl::checked_add<u64>(offset, bytes.value);
    ktl::check(!bytes.overflow && !end.overflow && end.value <= size(), "Mapping view out of bounds");
    ktl::check(ktl::is_aligned<u64>(start_.value() + offset, alignof(T)), "Mapping view misaligned");
    using Mutable = __remove_const(T);
    return window_.array<Mutable>(phys() + offset, count);
  }
  // The whole mapping as Ts (size() must be a multiple of sizeof(T)).
  template <class T>
    requires ktl::is_trivially_copyable<T>
  [[nodiscard]] inline ktl::Span<T> span() const KTL_LIFETIMEBOUND {
    ktl::check(size() % sizeof(T) == 0, "Mapping::span: the mapping is not a whole number of T");
    return span<T>(0, size() / sizeof(T));
  }

 private:
  Mapping(AddressSpace<F>& space, PhysWindow window, VirtAddr start, AllocatedFrames&& frames,
          PageFlags flags)
      : space_(&space), window_(window), start_(start), frames_(ktl::move(frames)), flags_(flags) {}

  AddressSpace<F>* space_ = nullptr;  // not owned; must outlive the Mapping (checked at its end)
  PhysWindow window_;
  VirtAddr start_ = VirtAddr::zero();
  AllocatedFrames frames_;
  PageFlags flags_;
};

static_assert(!ktl::is_copy_constructible<Mapping<paging::X86_64>>, "Mapping is move-only");

using KernelMapping = Mapping<paging::X86_64>;

}  // namespace mm
