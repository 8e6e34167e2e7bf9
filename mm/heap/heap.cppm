// mm.heap: kmalloc / krealloc / kcalloc / kfree over size-class slab caches, and large allocations
// mapped into the kernel large-object area.
//
//   mm::heap::init(pmm, direct_map, {.large_objects = heap_range, .space = &region_space, .hardening = On});
//   void* p = mm::kmalloc(100);      // null when out of memory, never a crash
//   p = mm::krealloc(p, 4000);
//   mm::kfree(p);
//
// Size classes: 8, 16, 32, 48, ..., 128 (16-byte steps), then four classes per power of two
// (x1.25, x1.5, x1.75, x2) up to 64 KiB: 45 caches "kmalloc-<size>", at most 25% (typically
// ~10%) internal waste. A request goes to the smallest class that fits; above 64 KiB (or when a
// big class cannot get its contiguous slab) it is a large allocation.
//
// Large allocations (LargeObjectArena): whole pages of the large-object area, each followed by an unmapped
// guard page, backed by frames from the PMM (contiguous runs when available, at most
// LargeObject::kMaxRuns of them). Each run is an mm::Mapping (mm.mapping) of an address space,
// and the Mappings live in the object's record in the large-object table: the record is the one
// owner of the object's pages and frames, and kfree destroys its Mappings (unmap, one TLB flush for
// the whole object, then the frames go back to the PMM: Mapping::reset_all). The heap itself
// never maps, unmaps or frees a large object's frame. Growing in place adds a Mapping for the new
// pages only (each page keeps exactly one owner); rolling back a failed allocation or growth
// destroys the Mappings it made.
//
// Why the records hold Mapping<F> behind the LargeObjectSpace interface instead of the heap naming a
// format: the heap stays format-agnostic (mm knows no CPU: x86_64 now, aarch64 later, and the
// host tests), so the format-specific record (LargeObject + Mapping<F>[kMaxRuns]) is built and
// changed by a LargeObjectSpace, mm.heap.paging's LargeObjectMappings<F> over an AddressSpace<F>: the
// kernel's (kernel heap, test heaps) and, on the host, one in simulated memory (mm.heap.host). The
// host path runs the same Mapping code; a HostView (mirror of the memfd frames at the same
// addresses) only makes the mapped pages dereferenceable, since only the host kernel can make
// memory appear at an address.
//
// Rules (tested in heap_ktest.cc):
//   * kmalloc(0) returns a unique, non-null pointer to zero usable bytes (any access is a
//     redzone hit in hardened mode and an ASan report under ASan); kfree it like any other.
//   * krealloc(nullptr, n) == kmalloc(n); krealloc(p, 0) shrinks p to zero bytes in place and
//     returns p (it does not free). kfree(nullptr) is a no-op.
//   * krealloc keeps min(old, new) bytes. It stays in place when the new size fits the object's
//     class (and is more than half of it) or, for large objects, when the pages after it are free
//     in the region (growth maps more pages behind the object).
//   * Alignment: every result is aligned to 16 bytes when n > 8 (8 bytes when n <= 8); a request
//     of a power of two n <= 4096 is aligned to n; large allocations are page aligned.
//     kmalloc_aligned(n, a) gives any power-of-two alignment a <= 1 MiB.
//   * kcalloc(n, size) returns zeroed memory, and null when n * size overflows.
//   * Out of memory returns null (Result<..., HeapError>::OutOfMemory inside mm).
//   * kfree of a pointer the heap did not return panics with a report: "not from the heap",
//     misaligned or interior pointers, double frees. In hardened mode also redzone overwrites
//     and writes after free (see mm.slab for what each mode detects).
//
// LOCK ORDER: heap.large_objects -> address-space (taken inside Mapping create/reset_all; table frames
//             from pmm.arena under it) -> pmm.arena (data frames: allocated before a Mapping is
//             created, freed by it after the address-space lock is dropped). The large-object
//             descriptors' slab.cache is taken under heap.large_objects but never together with the
//             address-space lock. kmalloc/kfree of small sizes take only the slab locks (mm.slab).
//             For fork, HostHeap::lock_for_fork (mm.heap.host) takes all of them in this order
//             (LargeObjectArena::lock_all first).
module;

#include <ktl/macros.h>
#include <ktl/new.h>

export module mm.heap;

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.frames;
import mm.pmm;
import mm.range_allocator;
import mm.slab;
import mm.slab.cpu;

export namespace mm {

enum class HeapError : u32 {
  OutOfMemory,
  InvalidArgument,  // alignment not a power of two, or larger than supported
  TooLarge,         // bigger than the large-object area
  NotInitialized,
  AlreadyInitialized,
  TooManyCaches,      // the slab allocator has no per-CPU slot for a size class (SlabError::TooManyCaches)
  PmmNotInitialized,  // the PMM the heap takes frames from is not initialized
  HostViewFailed,     // host heaps: the host view could not show a large object's pages
  NoLargeObjects,     // a large allocation from a heap configured without a region
  LargeObjectsFull,   // no free range of the large-object area fits the large object (RangeError::NoSpace)
  TooFragmented,      // the object's frames would need more than LargeObject::kMaxRuns runs
  // The region's address space refused a mapping (mm.heap.paging's to_heap_error(PagingError)):
  AlreadyMapped,            // a page of the region is mapped already (PagingError::AlreadyMapped)
  TableInTheWay,            // a page table occupies the slot (PagingError::TableInTheWay)
  OutOfRange,               // the format cannot translate the address (PagingError::OutOfRange)
  ReservedRange,            // the region overlaps a reserved range (PagingError::Reserved)
  TableFrameUnreachable,    // a page-table frame out of the format's reach (PagingError::FrameUnreachable)
  TableFrameOutsideWindow,  // a page-table frame outside the window (PagingError::OutsideWindow)
  WouldBlock,  // an AllocContext::Atomic request only the large-object path (heap.large_objects) could serve
};
[[nodiscard]] constexpr const char* to_string(HeapError e) {
  switch (e) {
    case HeapError::OutOfMemory: return "out of memory";
    case HeapError::InvalidArgument: return "invalid argument";
    case HeapError::TooLarge: return "allocation too large";
    case HeapError::NotInitialized: return "heap not initialized";
    case HeapError::AlreadyInitialized: return "heap already initialized";
    case HeapError::TooManyCaches: return "no per-CPU slot for a size class";
    case HeapError::PmmNotInitialized: return "the PMM is not initialized";
    case HeapError::HostViewFailed: return "the host view could not show the pages";
    case HeapError::NoLargeObjects: return "the heap has no region for large allocations";
    case HeapError::LargeObjectsFull: return "no free range in the large-object area";
    case HeapError::TooFragmented: return "too many physical runs for one large object";
    case HeapError::AlreadyMapped: return "a heap-region page is already mapped";
    case HeapError::TableInTheWay: return "a page table occupies a heap-region slot";
    case HeapError::OutOfRange: return "heap-region address out of the format's range";
    case HeapError::ReservedRange: return "the large-object area overlaps a reserved range";
    case HeapError::TableFrameUnreachable: return "page-table frame out of the format's reach";
    case HeapError::TableFrameOutsideWindow: return "page-table frame outside the physical window";
    case HeapError::WouldBlock: return "an atomic allocation would have to block";
  }
  return "unknown heap error";
}
// What a slab, PMM or range error becomes in the heap: the same cause under its heap name. Errors
// that the heap's own calls cannot get (SlabError::NotEmpty, NotInitialized; a PmmError other than
// OutOfMemory and NotInitialized) panic. (PagingError: mm.heap.paging.)
[[nodiscard]] HeapError to_heap_error(SlabError e);
[[nodiscard]] HeapError to_heap_error(PmmError e);
[[nodiscard]] HeapError to_heap_error(RangeError e);

// --- size classes ------------------------------------------------------------------------------------
namespace heap_classes {
inline constexpr usize kCount = 45;
inline constexpr usize kMaxSize = 65536;
[[nodiscard]] constexpr usize size_of(usize index) {
  if (index < 2) return 8 * (index + 1);  // 8, 16
  if (index < 9) return 16 * index;       // 32 .. 128
  usize k = index - 9;                    // four per power of two above 128
  usize pow = usize{128} << (k / 4);
  return pow + (pow / 4) * (k % 4 + 1);
}
// The smallest class of at least `size` bytes, computed (size <= kMaxSize).
[[nodiscard]] constexpr usize compute_index(usize size) {
  if (size <= 16) return size <= 8 ? 0 : 1;
  if (size <= 128) return (size + 15) / 16;
  usize s = size - 1;
  u32 e = ktl::log2_floor(s);  // >= 7
  return 9 + (e - 7) * 4 + ((s >> (e - 2)) & 3);
}
// The same for sizes up to 4 KiB from a table (one load instead of a bit scan and shifts on the
// allocation fast path), indexed by ceil(size / 8).
inline constexpr usize kTableMax = 4096;
inline constexpr ktl::Array<ktl::u8, kTableMax / 8 + 1> kIndexTable = [] {
  ktl::Array<ktl::u8, kTableMax / 8 + 1> t{};
  for (usize i = 0; i < t.size(); ++i) t[i] = static_cast<ktl::u8>(compute_index(i * 8));
  return t;
}();
// The smallest class of at least `size` bytes (size <= kMaxSize; 0 maps to the 8-byte class).
[[nodiscard]] constexpr usize index_of(usize size) {
  KTL_UNSAFE_BUFFER_BEGIN  // (size + 7) / 8 <= kTableMax / 8, the table's last index
  if (size <= kTableMax) return kIndexTable.data()[(size + 7) / 8];
  KTL_UNSAFE_BUFFER_END
  return compute_index(size);
}
// The alignment every object of a class has: its lowest set bit, at most a page.
[[nodiscard]] constexpr usize align_of(usize index) {
  usize s = size_of(index);
  return ktl::min<usize>(s & (~s + 1), kPageSize);
}
}  // namespace heap_classes

// --- large objects ------------------------------------------------------------------------------------
// The format-agnostic part of a large object's record. The record a LargeObjectSpace constructs extends
// it with the Mappings that own the object's pages ([0, runs), in address order, covering
// [start, start + pages) exactly once); only the LargeObjectSpace changes `runs`.
struct LargeObject {
  static constexpr u32 kMaxRuns = 4;
  u64 magic = 0;
  VirtAddr start = VirtAddr::zero();
  u64 pages = 0;      // mapped pages (the guard page after them is reserved, not mapped)
  u64 requested = 0;  // bytes the caller asked for
  u32 runs = 0;       // Mappings the record holds
};

// One run of a large object: what its Mapping covers.
struct LargeRun {
  VirtAddr start = VirtAddr::zero();
  u64 pages = 0;
  PhysAddr phys = PhysAddr::zero();  // the first frame (the run is physically contiguous)
};

// Where the large-object area's pages are mapped, and the owner of the large-object records (see the
// module comment). Called with heap.large_objects held; takes the address-space lock itself (through
// mm::Mapping). mm.heap.paging implements it for any page-table format.
class LargeObjectSpace {
 public:
  // The record's size and alignment (the descriptor cache's objects).
  [[nodiscard]] virtual usize record_size() const = 0;
  [[nodiscard]] virtual usize record_align() const = 0;
  // Constructs an empty record (no Mappings) in `place` (record_size() bytes).
  [[nodiscard]] virtual LargeObject* construct(void* place) = 0;
  // Destroys a record that holds no Mappings; returns its storage (for the descriptor cache).
  [[nodiscard]] virtual void* destroy(LargeObject* o) = 0;
  // Maps `frames` at `at` (page aligned, inside the region, not mapped) kernel read-write, not
  // executable, 4 KiB pages, as a Mapping that the record keeps as its run `o.runs` (which grows by
  // one; o.runs < kMaxRuns). All or nothing: on error nothing is mapped and the frames are freed.
  // Errors: the address space's, each under its own name (to_heap_error(PagingError)),
  // HostViewFailed.
  [[nodiscard]] virtual ktl::Result<void, HeapError> map(LargeObject& o, VirtAddr at,
                                                         AllocatedFrames frames) = 0;
  // Destroys the record's runs [first, o.runs) together: their pages are unmapped, one TLB flush
  // covers them, then their frames go back to the PMM. o.runs becomes `first`.
  virtual void unmap(LargeObject& o, u32 first) = 0;
  // What run `i` (< o.runs) of the record covers.
  [[nodiscard]] virtual LargeRun run(const LargeObject& o, u32 i) const = 0;

 protected:
  ~LargeObjectSpace() = default;
};

struct LargeObjectStats {
  u64 objects = 0;
  u64 mappings = 0;        // Mappings the live records hold (>= objects; one per run)
  u64 mapped_pages = 0;    // = frames held for large objects
  u64 reserved_pages = 0;  // mapped + guard pages
  u64 table_frames = 0;    // lookup-table leaves and the range allocator's bitmap
};

class LargeObjectArena {
 public:
  LargeObjectArena() = default;
  LargeObjectArena(const LargeObjectArena&) = delete;
  LargeObjectArena& operator=(const LargeObjectArena&) = delete;
  // Contract: every large object has been freed (live ones are freed now, leaking nothing).
  ~LargeObjectArena();

  // The region [range) (page aligned), whose pages `space` maps (and whose records it builds).
  // Frames and bookkeeping (an mm.range_allocator over the region, each object followed by a guard
  // page, and a lookup table) come from `pmm`, seen through `window`; descriptors from `slab`.
  [[nodiscard]] ktl::Result<void, HeapError> init(Pmm& pmm, PhysWindow window, SlabAllocator& slab,
                                                  VirtRange range, LargeObjectSpace& space,
                                                  Hardening hardening);
  [[nodiscard]] inline bool initialized() const { return space_ != nullptr; }

  // Errors: NoLargeObjects (not initialized), InvalidArgument, TooLarge, LargeObjectsFull, TooFragmented, the
  // PMM's (to_heap_error) and the address space's (LargeObjectSpace::map). fail_allocations_after's
  // injected failures are OutOfMemory. WouldBlock for AllocContext::Atomic: heap.large_objects and the
  // address-space lock are not interrupt-safe, and page tables may have to be allocated.
  [[nodiscard]] ktl::Result<void*, HeapError> allocate(usize bytes, usize align,
                                                       AllocContext context = AllocContext::MayBlock)
      EXCLUDES(lock_);
  // Frees a pointer inside the region; panics with a report if it is not a live large object.
  void free(void* p) EXCLUDES(lock_);
  // Changes the size of a live large object without moving it; false if it cannot.
  [[nodiscard]] bool resize_in_place(void* p, usize bytes) EXCLUDES(lock_);
  [[nodiscard]] inline bool contains(const void* p) const { return range_.contains(VirtAddr::from(addr(p))); }
  // The requested size of a live large object (panics on anything else).
  [[nodiscard]] usize requested_size(const void* p) EXCLUDES(lock_);
  [[nodiscard]] usize usable_size(const void* p) EXCLUDES(lock_);
  // The runs (Mappings) of a live large object, in address order, into `out`; returns how many it
  // has (which may exceed out.size()). Panics on anything but a live large object.
  [[nodiscard]] u32 runs_of(const void* p, ktl::Span<LargeRun> out) EXCLUDES(lock_);
  [[nodiscard]] LargeObjectStats stats() const EXCLUDES(lock_);
  [[nodiscard]] inline VirtRange range() const { return range_; }
  inline void fail_allocations_after(u64 n) { fail_after_.store(n, ktl::MemoryOrder::Relaxed); }

  // For fork (mm.heap.host's HostHeap::lock_for_fork): takes heap.large_objects and keeps it, so no
  // large allocation, growth or free is in progress while it is held. The first lock of the
  // heap's order; the caller takes the rest (address-space, the slab's, pmm.arena) after it.
  inline void lock_all() ACQUIRE(lock_) { lock_.lock(); }
  inline void unlock_all() RELEASE(lock_) { lock_.unlock(); }

 private:
  static constexpr u64 kMagic = 0x4c41524745u;  // "LARGE"
  static constexpr ktl::uptr kTombstone = 1;    // a freed object's table entry until its VA is reused
  static constexpr u64 kLeafEntries = kPageSize / sizeof(ktl::uptr);

  [[nodiscard]] static ktl::uptr addr(const void* p) { return ktl::address_of(p); }
  [[nodiscard]] inline u64 page_index(VirtAddr v) const { return (v - range_.start()) / kPageSize; }
  [[nodiscard]] ktl::uptr table_get(u64 page) const REQUIRES(lock_);
  [[nodiscard]] ktl::Result<void, HeapError> table_set(u64 page, ktl::uptr value) REQUIRES(lock_);
  // The pages an object holds in ranges_ (its guard page follows them).
  [[nodiscard]] static VirtRange object_range(const LargeObject& o) {
    return VirtRange::with_size(o.start, o.pages * kPageSize).value();
  }
  [[nodiscard]] LargeObject* live_object_locked(const void* p, const char* operation) const REQUIRES(lock_);
  [[nodiscard]] ktl::Result<void, HeapError> map_pages_locked(LargeObject& o, VirtAddr at, u64 pages)
      REQUIRES(lock_);
  void release_locked(LargeObject* o) REQUIRES(lock_);
  void fill_tail(const LargeObject& o) const;
  void check_tail(const LargeObject& o) const;
  [[noreturn]] void report(const char* what, const void* p) const;

  Pmm* pmm_ = nullptr;
  PhysWindow window_;
  LargeObjectSpace* space_ = nullptr;
  SlabCache* descriptors_ = nullptr;
  SlabAllocator* slab_ = nullptr;
  VirtRange range_ = VirtRange::try_from(VirtAddr::zero(), VirtAddr::zero()).value();
  bool hardened_ = false;
  ktl::Atomic<u64> fail_after_{~u64{0}};
  mutable ktl::SpinLock lock_{ktl::LockRank::HeapLargeObjects};
  AllocatedFrames root_frames_;
  RangeAllocator ranges_ GUARDED_BY(lock_);      // an object's pages and its guard page
  ktl::Span<ktl::uptr> root_ GUARDED_BY(lock_);  // leaf addresses (window views), 0 = none
  u64 leaves_ GUARDED_BY(lock_) = 0;
  LargeObjectStats stats_ GUARDED_BY(lock_);
};

// --- the heap ------------------------------------------------------------------------------------------
struct HeapConfig {
  // The large-object area for large allocations and where it is mapped; without a space, large
  // allocations fail (null). The space must outlive the heap.
  VirtRange large_objects = VirtRange::try_from(VirtAddr::zero(), VirtAddr::zero()).value();
  LargeObjectSpace* space = nullptr;
  Hardening hardening = Hardening::Off;
  u64 seed = 0x5eed;
};

struct HeapStats {
  u64 slab_frames = 0;      // frames in slabs (every cache of the heap's slab allocator)
  u64 large_frames = 0;     // frames mapped for large objects
  u64 metadata_frames = 0;  // the large objects' range allocator, lookup table and page tables
                            // (the frame table the slabs are recorded in is the PMM's: FrameTable)
  [[nodiscard]] inline u64 total_frames() const { return slab_frames + large_frames + metadata_frames; }
};

// Whether an allocation that may block waits for memory when there is none (MayBlock, NoReclaim:
// mm::arch::wait_for_memory). Never for a heap whose memory nobody else frees (test heaps).
enum class MemoryWait : ktl::u8 { WhenShort, Never };

class Heap {
 public:
  Heap() = default;
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;
  // Contract: nothing allocated from the heap is still in use.
  ~Heap() = default;

  // Over the PMM and window of `frames` (the frame table beside the PMM, which must outlive the
  // heap): slabs, large objects and their bookkeeping come from that PMM.
  [[nodiscard]] ktl::Result<void, HeapError> init(FrameTable& frames, const HeapConfig& config);

  // --- the Result API (mm code) ---
  // kmalloc (align 0) or kmalloc_aligned with the cause of a failure: InvalidArgument, and those of
  // LargeObjectArena::allocate; OutOfMemory when a size class cannot grow (a slab allocation fails only
  // for want of frames). An Atomic request is served by the size classes only (WouldBlock where
  // it would need a large object). A request that may block waits for memory when there is none
  // (mm::arch::wait_for_memory) and retries while the arch lets it. The C-style surface below
  // allocates as AllocContext::Atomic in an interrupt handler (mm::arch::in_interrupt), as
  // MayBlock elsewhere.
  [[nodiscard]] ktl::Result<void*, HeapError> allocate(usize size, usize align = 0,
                                                       AllocContext context = AllocContext::MayBlock);

  // --- the C-style surface ---
  // The fast paths touch no stack (every other case is a tail call): with a frame, the spills'
  // random stack addresses alias the magazine's in the store-to-load predictor now and then
  // (measured: some runs ~2x slower).
  [[nodiscard]] inline void* kmalloc(usize size) {
    if (size <= heap_classes::kTableMax) [[likely]] {
      KTL_UNSAFE_BUFFER_BEGIN  // (size + 7) / 8 <= kTableMax / 8; table entries are < kCount
      SlabCache* cache = classes_.data()[heap_classes::kIndexTable.data()[(size + 7) / 8]];
      KTL_UNSAFE_BUFFER_END
      if (!cache->hardened()) [[likely]] {
        slab_cpu::CpuPin pin;
        slab_cpu::Magazine* m = cache->local_slot(pin).loaded;
        if (m != nullptr && !m->empty()) [[likely]] {
          void* p = m->pop();
          SlabCache::asan_unpoison(p, size);
          return p;
        }
      }
    }
    return kmalloc_slow(size);
  }
  inline void kfree(void* p) {
    if (p == nullptr) return;
    SlabDesc* slab = slab_.slab_of(p);
    if (slab == nullptr) [[unlikely]]
      return free_large(p);
    if (!SlabCache::is_object_start(*slab, p)) [[unlikely]]
      slab->cache->report_not_object_start(p, "kfree");
    SlabCache* cache = slab->cache;
    if (!cache->hardened() && slab->cpu_slot != slab_cpu::kNoSlot) [[likely]] {
      slab_cpu::CpuPin pin;
      slab_cpu::Magazine* m = SlabCache::slot_at(pin, slab->cpu_slot).loaded;
      if (m != nullptr && !m->full() && m->top() != p) [[likely]] {
        SlabCache::asan_poison(p, cache->object_size());
        m->push(p);
        return;
      }
    }
    return cache->free_general(p);
  }
  [[nodiscard]] void* kmalloc_aligned(usize size, usize align);
  [[nodiscard]] void* kcalloc(usize count, usize size);
  [[nodiscard]] void* krealloc(void* p, usize size);
  // Bytes usable at p (malloc_usable_size): the class size, or the mapped pages of a large
  // object; in hardened mode the requested size (the rest is redzone).
  [[nodiscard]] usize usable_size(const void* p);

  // --- administration ---
  [[nodiscard]] inline SlabAllocator& slab() { return slab_; }
  inline void set_memory_wait(MemoryWait w) { memory_wait_ = w; }
  [[nodiscard]] inline MemoryWait memory_wait() const { return memory_wait_; }
  [[nodiscard]] inline LargeObjectArena& large_objects() { return large_objects_; }
  [[nodiscard]] inline SlabCache& class_cache(usize index) { return *classes_[index]; }
  [[nodiscard]] HeapStats stats() const;
  // Returns unused memory: magazines in the depots and empty slabs beyond a few per cache.
  inline u64 reclaim(u32 keep = SlabCache::kKeepEmptySlabs) { return slab_.reclaim(keep); }
  [[nodiscard]] inline bool hardened() const { return hardening_ == Hardening::On; }

 private:
  [[nodiscard]] void* kmalloc_slow(usize size);
  [[nodiscard]] ktl::Result<void*, HeapError> allocate_any(usize size, AllocContext context);
  [[nodiscard]] ktl::Result<void*, HeapError> allocate_aligned(usize size, usize align, AllocContext context);
  [[nodiscard]] ktl::Result<void*, HeapError> allocate_any_once(usize size, AllocContext context);
  [[nodiscard]] ktl::Result<void*, HeapError> allocate_aligned_once(usize size, usize align,
                                                                    AllocContext context);
  void free_large(void* p);
  [[noreturn]] void report_invalid_free(const void* p, const char* why) const;

  SlabAllocator slab_;
  LargeObjectArena large_objects_;
  MemoryWait memory_wait_ = MemoryWait::WhenShort;
  ktl::Array<SlabCache*, heap_classes::kCount> classes_{};
  Hardening hardening_ = Hardening::Off;
};

// --- the kernel's heap ------------------------------------------------------------------------------------
namespace heap {
// Builds the kernel heap (static storage) over the PMM of `frames` and its window (the direct
// map), installs it for kmalloc & co. and its slab allocator for kmem_cache_create & co. Call
// once, after the PMM and its frame table.
[[nodiscard]] ktl::Result<void, HeapError> init(FrameTable& frames, const HeapConfig& config);
// The installed heap, or null.
[[nodiscard]] Heap* installed();
// Installs `heap` (tests, the host preload library) or uninstalls (null).
void install(Heap* heap);
}  // namespace heap

// Over the installed heap; null when there is none or it is out of memory.
[[nodiscard]] void* kmalloc(usize size);
[[nodiscard]] void* kcalloc(usize count, usize size);
[[nodiscard]] void* krealloc(void* p, usize size);
void kfree(void* p);

}  // namespace mm
