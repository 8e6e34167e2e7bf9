// mm.range_allocator: a typed allocator of page-aligned VirtAddr ranges inside a window of an
// address space (the kernel heap's large objects now; VM regions and user address spaces next).
//
//   RangeAllocator ranges;
//   TRY(ranges.init(pmm, window, heap_range, Guard::PageAfter));
//   VirtRange r = TRY(ranges.allocate(pages, align_pages));  // r.size() == pages * 4 KiB
//   ranges.free(r);
//
// One bit per page of the window (a SummaryBitmap whose storage comes from the PMM, seen through
// the PhysWindow; set = free). With Guard::PageAfter every range is followed by one reserved,
// never handed out, page (the caller leaves it unmapped): ranges never touch, so an overrun
// faults. Alignment is absolute (of the address, not of the offset in the window). The allocator
// only reserves addresses: it maps nothing.
//
// Locking: none of its own. The owner serializes every call (the heap: heap.large_objects).
module;

#include <ktl/macros.h>

export module mm.range_allocator;

import ktl;
import mm.addr;
import mm.arch;
import mm.bitmap;
import mm.pmm;

export namespace mm {

enum class RangeError : u32 {
  InvalidArgument,     // window not page aligned or empty, zero pages, alignment not a power of two
  TooLarge,            // the range (with its guard page) is bigger than the whole window
  NoSpace,             // no free range of that size and alignment is left in the window
  OutOfMemory,         // no frames for the page bitmap
  PmmNotInitialized,   // the PMM the bitmap comes from is not initialized
  AlreadyInitialized,  // init called twice
  NotInitialized,      // allocate before init
};
[[nodiscard]] constexpr const char* to_string(RangeError e) {
  switch (e) {
    case RangeError::InvalidArgument: return "invalid argument";
    case RangeError::TooLarge: return "range larger than the window";
    case RangeError::NoSpace: return "no free range in the window";
    case RangeError::OutOfMemory: return "out of memory for the range bitmap";
    case RangeError::PmmNotInitialized: return "the PMM is not initialized";
    case RangeError::AlreadyInitialized: return "range allocator already initialized";
    case RangeError::NotInitialized: return "range allocator not initialized";
  }
  return "unknown range error";
}

// Whether each range is followed by a reserved, unmapped guard page.
enum class Guard : ktl::u8 { None, PageAfter };

class RangeAllocator {
 public:
  RangeAllocator() = default;
  RangeAllocator(const RangeAllocator&) = delete;
  RangeAllocator& operator=(const RangeAllocator&) = delete;
  RangeAllocator(RangeAllocator&&) = default;  // the bitmap's frames move; the source is empty
  RangeAllocator& operator=(RangeAllocator&&) = default;
  // The bitmap's frames go back to the PMM (ranges still allocated are simply forgotten).
  ~RangeAllocator() = default;

  // Hands out ranges of `window` (page aligned, not empty). The bitmap's frames come from `pmm`,
  // seen through `phys`. Errors: InvalidArgument, OutOfMemory, PmmNotInitialized,
  // AlreadyInitialized.
  [[nodiscard]] inline ktl::Result<void, RangeError> init(Pmm& pmm, PhysWindow phys, VirtRange window,
                                                          Guard guard) {
    if (initialized()) return ktl::Err(RangeError::AlreadyInitialized);
    if (window.empty() || !window.start().is_aligned(kPageSize) ||
        !ktl::is_aligned<u64>(window.size(), kPageSize)) {
      return ktl::Err(RangeError::InvalidArgument);
    }
    u64 pages = window.size() / kPageSize;
    u64 bytes = ktl::align_up<u64>(SummaryBitmap::storage_words(pages) * sizeof(u64), kPageSize);
    auto frames = pmm.alloc_contiguous(bytes / kPageSize, kPageSize);
    if (frames.is_err()) {
      return ktl::Err(frames.error() == PmmError::NotInitialized ? RangeError::PmmNotInitialized
                                                                 : RangeError::OutOfMemory);
    }
    frames_ = frames.release_value();
    free_ = SummaryBitmap(phys.array<u64>(frames_.start(), bytes / sizeof(u64)), pages);
    free_.set_range(0, pages);
    window_ = window;
    guard_pages_ = guard == Guard::PageAfter ? 1 : 0;
    return ktl::ok();
  }
  [[nodiscard]] inline bool initialized() const { return frames_.count() != 0; }

  // The lowest free range of `pages` pages (> 0) whose start is a multiple of `align_pages` pages
  // (a power of two), reserved together with its guard page. Errors: InvalidArgument, TooLarge,
  // NoSpace, NotInitialized.
  [[nodiscard]] inline ktl::Result<VirtRange, RangeError> allocate(u64 pages, u64 align_pages = 1) {
    if (!initialized()) return ktl::Err(RangeError::NotInitialized);
    if (pages == 0 || !ktl::is_power_of_two(align_pages)) return ktl::Err(RangeError::InvalidArgument);
    if (pages > free_.size() || free_.size() - pages < guard_pages_) return ktl::Err(RangeError::TooLarge);
    u64 phase = window_.start().value() / kPageSize;
    auto found = free_.find_set_run(pages + guard_pages_, align_pages, phase, 0, free_.size());
    if (!found.has_value()) return ktl::Err(RangeError::NoSpace);
    free_.clear_range(found.value(), found.value() + pages + guard_pages_);
    return range_at(found.value(), pages);
  }

  // Gives back a range that allocate (or grow/shrink) returned, with its guard page. Panics on a
  // range that is not allocated.
  inline void free(VirtRange r) {
    u64 first = index_of(r);
    u64 end = first + r.size() / kPageSize + guard_pages_;
    ktl::check(free_.none_set(first, end), "range allocator: freeing a range that is not allocated");
    free_.set_range(first, end);
  }

  // Extends allocated `r` in place to `pages` pages (>= its size): the pages after it (its old
  // guard page becomes part of it, a new one follows) must be free. Returns the grown range.
  // Errors: NoSpace (the pages after it are taken or outside the window).
  [[nodiscard]] inline ktl::Result<VirtRange, RangeError> grow(VirtRange r, u64 pages) {
    u64 first = index_of(r);
    u64 old_pages = r.size() / kPageSize;
    ktl::check(pages >= old_pages, "range allocator: grow to a smaller size");
    u64 from = first + old_pages + guard_pages_;
    u64 to = first + pages + guard_pages_;
    if (to > free_.size() || !free_.all_set(from, to)) return ktl::Err(RangeError::NoSpace);
    free_.clear_range(from, to);
    return range_at(first, pages);
  }
  // Gives back the tail of allocated `r` beyond `pages` pages (0 < pages <= its size); the guard
  // page moves down behind the shorter range. Returns the shorter range.
  [[nodiscard]] inline VirtRange shrink(VirtRange r, u64 pages) {
    u64 first = index_of(r);
    u64 old_pages = r.size() / kPageSize;
    ktl::check(pages > 0 && pages <= old_pages, "range allocator: shrink to a bigger or empty size");
    free_.set_range(first + pages + guard_pages_, first + old_pages + guard_pages_);
    return range_at(first, pages);
  }

  [[nodiscard]] inline VirtRange window() const { return window_; }
  [[nodiscard]] inline u64 guard_pages() const { return guard_pages_; }
  [[nodiscard]] inline u64 free_pages() const { return free_.count(); }
  // Frames holding the bitmap.
  [[nodiscard]] inline u64 metadata_frames() const { return frames_.count(); }

 private:
  [[nodiscard]] inline VirtRange range_at(u64 index, u64 pages) const {
    return VirtRange::with_size(window_.start() + index * kPageSize, pages * kPageSize).value();
  }
  // The page index of `r`'s start; panics unless `r` is a page-aligned, non-empty part of the window.
  [[nodiscard]] inline u64 index_of(VirtRange r) const {
    ktl::check(initialized() && !r.empty() && window_.contains(r) && r.start().is_aligned(kPageSize) &&
                   ktl::is_aligned<u64>(r.size(), kPageSize),
               "range allocator: a range that is not a page-aligned part of the window");
    return (r.start() - window_.start()) / kPageSize;
  }

  AllocatedFrames frames_;
  SummaryBitmap free_;  // set = free page
  VirtRange window_ = VirtRange::try_from(VirtAddr::zero(), VirtAddr::zero()).value();
  u64 guard_pages_ = 0;
};

}  // namespace mm
