// mm.heap: implementation (see heap.cppm for the rules and the lock order).
module;

#include <ktl/macros.h>
#include <ktl/new.h>
#if defined(FERRITE_ASAN)
#include <sanitizer/asan_interface.h>
#endif

// See mm/slab/slab.cppm: bytes that may be poisoned in ASan's shadow are touched only by these helpers.
#define HEAP_RAW __attribute__((no_sanitize("address", "coverage"), no_builtin))

module mm.heap;

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.pmm;
import mm.range_allocator;
import mm.slab;
import mm.slab.cpu;

namespace mm {

namespace {

constexpr ktl::u8 kTailByte = 0xbb;

ktl::Atomic<Heap*> g_heap{nullptr};
alignas(Heap) ktl::Array<ktl::u8, sizeof(Heap)> g_heap_storage;

ktl::u8* byte_at(void* p, usize offset) {
  KTL_UNSAFE_BUFFER_BEGIN  // inside one object or mapping (the caller's contract)
  return static_cast<ktl::u8*>(p) + offset;
  KTL_UNSAFE_BUFFER_END
}

HEAP_RAW void raw_fill(void* p, usize n, ktl::u8 value) {
  auto* b = static_cast<volatile ktl::u8*>(p);
  KTL_UNSAFE_BUFFER_BEGIN  // [p, p + n) lies in one large object's mapped pages
  for (usize i = 0; i < n; ++i) b[i] = value;
  KTL_UNSAFE_BUFFER_END
}
HEAP_RAW usize raw_find_not(const void* p, usize n, ktl::u8 value) {
  auto* b = static_cast<const volatile ktl::u8*>(p);
  KTL_UNSAFE_BUFFER_BEGIN  // as raw_fill
  for (usize i = 0; i < n; ++i) {
    if (b[i] != value) return i;
  }
  KTL_UNSAFE_BUFFER_END
  return n;
}

void copy_object(void* to, const void* from, usize n) {
  KTL_UNSAFE_BUFFER_BEGIN  // n <= the size of both objects (krealloc's min(old, new))
  __builtin_memcpy(to, from, n);
  KTL_UNSAFE_BUFFER_END
}

void asan_poison([[maybe_unused]] const void* p, [[maybe_unused]] usize n) {
#if defined(FERRITE_ASAN)
  __asan_poison_memory_region(p, n);
#endif
}
void asan_unpoison([[maybe_unused]] const void* p, [[maybe_unused]] usize n) {
#if defined(FERRITE_ASAN)
  __asan_unpoison_memory_region(p, n);
#endif
}

}  // namespace

// --- errors of the layers below -------------------------------------------------------------------------
HeapError to_heap_error(SlabError e) {
  switch (e) {
    case SlabError::OutOfMemory: return HeapError::OutOfMemory;
    case SlabError::InvalidArgument: return HeapError::InvalidArgument;
    case SlabError::TooManyCaches: return HeapError::TooManyCaches;
    case SlabError::AlreadyInitialized: return HeapError::AlreadyInitialized;
    case SlabError::PmmNotInitialized: return HeapError::PmmNotInitialized;
    case SlabError::NotEmpty:
    case SlabError::NotInitialized: break;
  }
  ktl::panic("heap: a slab error the heap's calls cannot get", to_string(e));
}

HeapError to_heap_error(PmmError e) {
  switch (e) {
    case PmmError::OutOfMemory: return HeapError::OutOfMemory;
    case PmmError::NotInitialized: return HeapError::PmmNotInitialized;
    default: ktl::panic("heap: a PMM error the heap's requests cannot get", to_string(e));
  }
}

HeapError to_heap_error(RangeError e) {
  switch (e) {
    case RangeError::InvalidArgument: return HeapError::InvalidArgument;
    case RangeError::TooLarge: return HeapError::TooLarge;
    case RangeError::NoSpace: return HeapError::LargeObjectsFull;
    case RangeError::OutOfMemory: return HeapError::OutOfMemory;
    case RangeError::PmmNotInitialized: return HeapError::PmmNotInitialized;
    case RangeError::AlreadyInitialized: return HeapError::AlreadyInitialized;
    case RangeError::NotInitialized: return HeapError::NoLargeObjects;
  }
  ktl::panic("heap: a range error the heap's calls cannot get", to_string(e));
}

// --- LargeObjectArena
// ---------------------------------------------------------------------------------------
ktl::Result<void, HeapError> LargeObjectArena::init(Pmm& pmm, PhysWindow window, SlabAllocator& slab,
                                                    VirtRange range, LargeObjectSpace& space,
                                                    Hardening hardening) {
  if (space_ != nullptr) return ktl::Err(HeapError::AlreadyInitialized);
  RangeAllocator ranges;
  if (auto r = ranges.init(pmm, window, range, Guard::PageAfter); r.is_err()) {
    return ktl::Err(to_heap_error(r.error()));
  }
  u64 pages = range.size() / kPageSize;
  u64 root_entries = (pages + kLeafEntries - 1) / kLeafEntries;
  u64 root_bytes = ktl::align_up<u64>(root_entries * sizeof(ktl::uptr), kPageSize);
  auto root = pmm.alloc_contiguous(root_bytes / kPageSize, kPageSize);
  if (root.is_err()) return ktl::Err(to_heap_error(root.error()));
  auto descriptors = slab.create_cache("heap-large", space.record_size(), space.record_align(), nullptr,
                                       CacheFlags::NoCpuCache);
  if (descriptors.is_err()) return ktl::Err(to_heap_error(descriptors.error()));

  ktl::LockGuard guard(lock_);
  pmm_ = &pmm;
  window_ = window;
  slab_ = &slab;
  range_ = range;
  hardened_ = hardening == Hardening::On;
  descriptors_ = descriptors.value();
  ranges_ = ktl::move(ranges);
  root_frames_ = root.release_value();
  root_ = window.array<ktl::uptr>(root_frames_.start(), root_entries);
  for (ktl::uptr& e : root_) e = 0;
  stats_.table_frames = ranges_.metadata_frames() + root_frames_.count();
  space_ = &space;
  return ktl::ok();
}

LargeObjectArena::~LargeObjectArena() {
  if (space_ == nullptr) return;
  {
    ktl::LockGuard guard(lock_);
    for (u64 i = 0; i < root_.size(); ++i) {
      if (root_[i] == 0) continue;
      for (u64 j = 0; j < kLeafEntries; ++j) {
        ktl::uptr v = table_get(i * kLeafEntries + j);
        KTL_UNSAFE_BUFFER_BEGIN  // non-tombstone table values are LargeObject descriptors this arena
                                 // allocated
        if (v > kTombstone) release_locked(reinterpret_cast<LargeObject*>(v));
        KTL_UNSAFE_BUFFER_END
      }
      KTL_UNSAFE_BUFFER_BEGIN  // root entries are pointers to leaf frames in the window
      auto leaf = window_.phys_of(reinterpret_cast<void*>(root_[i]));
      KTL_UNSAFE_BUFFER_END
      auto r = pmm_->free_frames(Frame4K::from_start(leaf.value()).value(), 1);
      ktl::check_ok(r, "large-object area: a table leaf was freed behind its back");
    }
  }
  auto r = slab_->destroy_cache(descriptors_);
  ktl::check_ok(r, "large-object area: descriptors still live");
  root_frames_.reset();
}

ktl::uptr LargeObjectArena::table_get(u64 page) const {
  ktl::uptr leaf = root_[page / kLeafEntries];
  if (leaf == 0) return 0;
  KTL_UNSAFE_BUFFER_BEGIN  // root entries are pointers to leaf frames in the window
  return window_.array<ktl::uptr>(window_.phys_of(reinterpret_cast<void*>(leaf)).value(),
                                  kLeafEntries)[page % kLeafEntries];
  KTL_UNSAFE_BUFFER_END
}

ktl::Result<void, HeapError> LargeObjectArena::table_set(u64 page, ktl::uptr value) {
  ktl::uptr& leaf = root_[page / kLeafEntries];
  if (leaf == 0) {
    if (value == 0) return ktl::ok();
    auto frame = pmm_->alloc_page();
    if (frame.is_err()) return ktl::Err(to_heap_error(frame.error()));
    ktl::Bytes bytes = window_.bytes(frame.value().start(), kPageSize);
    ktl::fill_bytes(bytes, 0);
    leaf = ktl::address_of(bytes.data());
    (void)frame.release_value().release();  // owned by the table (freed by the destructor)
    ++stats_.table_frames;
  }
  KTL_UNSAFE_BUFFER_BEGIN  // root entries are pointers to leaf frames in the window
  window_.array<ktl::uptr>(window_.phys_of(reinterpret_cast<void*>(leaf)).value(),
                           kLeafEntries)[page % kLeafEntries] = value;
  KTL_UNSAFE_BUFFER_END
  return ktl::ok();
}

void LargeObjectArena::report(const char* what, const void* p) const {
  ktl::InlineString<256> message;
  ktl::format_to(message, "heap: {} of {} in the large-object area (large objects)", what, p);
  ktl::panic(message.c_str());
}

LargeObject* LargeObjectArena::live_object_locked(const void* p, const char* operation) const {
  ktl::InlineString<96> what;
  if (!ktl::is_aligned<ktl::uptr>(addr(p), kPageSize)) {
    ktl::format_to(what, "invalid {} (misaligned or interior pointer)", operation);
    report(what.c_str(), p);
  }
  ktl::uptr v = table_get(page_index(VirtAddr::from(addr(p))));
  if (v == kTombstone) report("double free", p);
  if (v == 0) {
    ktl::format_to(what, "invalid {} (not an allocated object: interior pointer or never allocated)",
                   operation);
    report(what.c_str(), p);
  }
  KTL_UNSAFE_BUFFER_BEGIN  // non-zero, non-tombstone table values are descriptors (the magic is checked next)
  auto* o = reinterpret_cast<LargeObject*>(v);
  KTL_UNSAFE_BUFFER_END
  if (o->magic != (kMagic ^ v) || o->start.value() != addr(p)) report("corrupted large-object descriptor", p);
  return o;
}

void LargeObjectArena::fill_tail(const LargeObject& o) const {
  void* p = o.start.as_ptr<void>();
  usize mapped = o.pages * kPageSize;
  if (hardened_) raw_fill(byte_at(p, o.requested), mapped - o.requested, kTailByte);
  asan_unpoison(p, mapped);
  asan_poison(byte_at(p, o.requested), mapped - o.requested);
}

void LargeObjectArena::check_tail(const LargeObject& o) const {
  if (!hardened_) return;
  void* p = o.start.as_ptr<void>();
  usize tail = o.pages * kPageSize - o.requested;
  usize bad = raw_find_not(byte_at(p, o.requested), tail, kTailByte);
  if (bad != tail) {
    ktl::InlineString<128> what;
    ktl::format_to(what, "buffer overflow detected (byte {} past the {}-byte object overwritten)", bad,
                   o.requested);
    report(what.c_str(), p);
  }
}

// Maps `pages` pages at `at` as new runs of `o` (each a Mapping that owns its frames). All or
// nothing: on failure the runs made here are destroyed again (their frames go back to the PMM).
ktl::Result<void, HeapError> LargeObjectArena::map_pages_locked(LargeObject& o, VirtAddr at, u64 pages) {
  u32 runs_before = o.runs;
  auto map_all = [&]() -> ktl::Result<void, HeapError> {
    for (u64 done = 0; done < pages;) {
      if (o.runs == LargeObject::kMaxRuns) return ktl::Err(HeapError::TooFragmented);
      u64 budget = fail_after_.load(ktl::MemoryOrder::Relaxed);
      if (budget == 0) return ktl::Err(HeapError::OutOfMemory);  // injected
      if (budget != ~u64{0}) fail_after_.fetch_sub(1, ktl::MemoryOrder::Relaxed);
      // The largest contiguous run we can get (halving), so objects have few runs.
      u64 n = pages - done;
      auto run = [&]() {
        for (;; n /= 2) {
          auto r = pmm_->alloc_contiguous(n, kPageSize);
          if (r.is_ok() || n == 1) return r;
        }
      }();
      if (run.is_err()) return ktl::Err(to_heap_error(run.error()));
      // The frames move into the run's Mapping (freed by map() itself if it fails).
      TRY(space_->map(o, at + done * kPageSize, run.release_value()));
      done += n;
    }
    return ktl::ok();
  };
  auto r = map_all();
  if (r.is_err()) space_->unmap(o, runs_before);
  return r;
}

ktl::Result<void*, HeapError> LargeObjectArena::allocate(usize bytes, usize align, AllocContext context) {
  if (space_ == nullptr) return ktl::Err(HeapError::NoLargeObjects);
  if (!may_block(context)) return ktl::Err(HeapError::WouldBlock);
  if (align == 0) align = kPageSize;
  if (!ktl::is_power_of_two(align)) return ktl::Err(HeapError::InvalidArgument);
  auto rounded = ktl::checked_align_up<u64>(ktl::max<u64>(bytes, 1), kPageSize);
  if (rounded.overflow) return ktl::Err(HeapError::TooLarge);
  u64 pages = rounded.value / kPageSize;

  void* place = descriptors_->alloc();
  if (place == nullptr) return ktl::Err(HeapError::OutOfMemory);  // (slabs fail only for want of frames)
  ktl::LockGuard guard(lock_);
  auto reserved = ranges_.allocate(pages, ktl::max<u64>(align / kPageSize, 1));
  if (reserved.is_err()) {
    descriptors_->free(place);
    return ktl::Err(to_heap_error(reserved.error()));
  }
  LargeObject* o = space_->construct(place);
  o->magic = kMagic ^ ktl::address_of(o);
  o->start = reserved.value().start();
  o->requested = bytes;
  auto mapped = [&]() REQUIRES(lock_) -> ktl::Result<void, HeapError> {
    TRY(map_pages_locked(*o, o->start, pages));
    return table_set(page_index(o->start), ktl::address_of(o));
  }();
  if (mapped.is_err()) {
    space_->unmap(*o, 0);  // no-op unless the table leaf was what failed
    ranges_.free(reserved.value());
    o->magic = 0;
    descriptors_->free(space_->destroy(o));
    return ktl::Err(mapped.error());
  }
  o->pages = pages;
  fill_tail(*o);
  ++stats_.objects;
  stats_.mappings += o->runs;
  stats_.mapped_pages += pages;
  stats_.reserved_pages += pages + 1;
  return o->start.as_ptr<void>();
}

// Destroys the object's Mappings (unmap, one flush, frames back to the PMM) and its record.
void LargeObjectArena::release_locked(LargeObject* o) {
  u64 index = page_index(o->start);
  asan_unpoison(o->start.as_ptr<void>(), o->pages * kPageSize);
  stats_.mappings -= o->runs;
  space_->unmap(*o, 0);
  auto cleared = table_set(index, kTombstone);
  ktl::check_ok(cleared, "large-object area: the table leaf of a live object exists");
  ranges_.free(object_range(*o));
  --stats_.objects;
  stats_.mapped_pages -= o->pages;
  stats_.reserved_pages -= o->pages + 1;
  o->magic = 0;
  descriptors_->free(space_->destroy(o));
}

void LargeObjectArena::free(void* p) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "kfree");
  check_tail(*o);
  release_locked(o);
}

bool LargeObjectArena::resize_in_place(void* p, usize bytes) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "krealloc");
  check_tail(*o);
  auto rounded = ktl::checked_align_up<u64>(ktl::max<u64>(bytes, 1), kPageSize);
  if (rounded.overflow) return false;
  u64 pages = rounded.value / kPageSize;
  if (pages > o->pages) {
    // The current guard page becomes part of the object and gets mapped; a new one follows.
    auto grown = ranges_.grow(object_range(*o), pages);
    if (grown.is_err()) return false;
    u32 runs_before = o->runs;
    // New Mappings for the new pages only: the old ones keep theirs, so every page has one owner.
    if (map_pages_locked(*o, o->start + o->pages * kPageSize, pages - o->pages).is_err()) {
      (void)ranges_.shrink(grown.value(), o->pages);
      return false;
    }
    stats_.mappings += o->runs - runs_before;
    stats_.mapped_pages += pages - o->pages;
    stats_.reserved_pages += pages - o->pages;
    o->pages = pages;
  }
  o->requested = bytes;
  fill_tail(*o);
  return true;
}

usize LargeObjectArena::requested_size(const void* p) {
  ktl::LockGuard guard(lock_);
  return live_object_locked(p, "size query")->requested;
}

usize LargeObjectArena::usable_size(const void* p) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "size query");
  return hardened_ ? o->requested : o->pages * kPageSize;
}

u32 LargeObjectArena::runs_of(const void* p, ktl::Span<LargeRun> out) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "run query");
  for (u32 i = 0; i < o->runs && i < out.size(); ++i) out[i] = space_->run(*o, i);
  return o->runs;
}

LargeObjectStats LargeObjectArena::stats() const {
  ktl::LockGuard guard(lock_);
  return stats_;
}

// --- Heap ----------------------------------------------------------------------------------------------
ktl::Result<void, HeapError> Heap::init(FrameTable& frames, const HeapConfig& config) {
  if (slab_.initialized()) return ktl::Err(HeapError::AlreadyInitialized);
  hardening_ = config.hardening;
  if (auto r = slab_.init(frames, SlabOptions{config.hardening, config.seed}); r.is_err()) {
    return ktl::Err(to_heap_error(r.error()));
  }
  Pmm& pmm = frames.pmm();  // (slab_.init checked that the table is initialized)
  PhysWindow window = frames.window();
  for (usize i = 0; i < heap_classes::kCount; ++i) {
    ktl::InlineString<32> name;
    ktl::format_to(name, "kmalloc-{}", heap_classes::size_of(i));
    auto cache = slab_.create_cache(name.view(), heap_classes::size_of(i), heap_classes::align_of(i));
    if (cache.is_err()) return ktl::Err(to_heap_error(cache.error()));
    if (!cache.value()->has_cpu_slot()) return ktl::Err(HeapError::TooManyCaches);
    classes_[i] = cache.value();
  }
  if (config.space != nullptr) {
    TRY(large_objects_.init(pmm, window, slab_, config.large_objects, *config.space, config.hardening));
  }
  return ktl::ok();
}

void Heap::report_invalid_free(const void* p, const char* why) const {
  ktl::InlineString<160> message;
  ktl::format_to(message, "heap: invalid kfree of {} ({})", p, why);
  ktl::panic(message.c_str());
}

namespace {
// The C-style surface's context: an interrupt handler's allocations are Atomic, everyone else's
// may block.
AllocContext c_style_context() {
  return arch::in_interrupt() ? AllocContext::Atomic : AllocContext::MayBlock;
}

// An allocation that may block and found no memory waits (arch::wait_for_memory: the kernel's
// task sleeps, later until kswapd has freed some) and tries again, while the arch lets it.
template <class F>
ktl::Result<void*, HeapError> retry_while_waiting(MemoryWait wait, AllocContext context, F attempt_once) {
  for (u32 attempt = 0;; ++attempt) {
    ktl::Result<void*, HeapError> r = attempt_once();
    // Short of frames (none, or not in few enough runs): worth waiting for frees.
    bool short_of_memory =
        r.is_err() && (r.error() == HeapError::OutOfMemory || r.error() == HeapError::TooFragmented);
    if (!short_of_memory || wait == MemoryWait::Never || !may_block(context) ||
        !arch::wait_for_memory(attempt)) {
      return r;
    }
  }
}
}  // namespace

void* Heap::kmalloc_slow(usize size) {
  auto r = allocate_any(size, c_style_context());
  return r.is_ok() ? r.value() : nullptr;
}

ktl::Result<void*, HeapError> Heap::allocate_any(usize size, AllocContext context) {
  return retry_while_waiting(memory_wait_, context, [&] { return allocate_any_once(size, context); });
}

ktl::Result<void*, HeapError> Heap::allocate_any_once(usize size, AllocContext context) {
  if (size <= heap_classes::kMaxSize) {
    void* p = classes_[heap_classes::index_of(size)]->alloc_general(size, context);
    if (p != nullptr) return p;
    // A big class whose contiguous slab could not be had still has the region.
    if (size < 8192) return ktl::Err(HeapError::OutOfMemory);
  }
  return large_objects_.allocate(size, kPageSize, context);
}

void Heap::free_large(void* p) {
  if (large_objects_.initialized() && large_objects_.contains(p)) {
    large_objects_.free(p);
    return;
  }
  report_invalid_free(p, "not from the heap");
}

ktl::Result<void*, HeapError> Heap::allocate(usize size, usize align, AllocContext context) {
  return align == 0 ? allocate_any(size, context) : allocate_aligned(size, align, context);
}

void* Heap::kmalloc_aligned(usize size, usize align) {
  auto r = allocate_aligned(size, align, c_style_context());
  return r.is_ok() ? r.value() : nullptr;
}

ktl::Result<void*, HeapError> Heap::allocate_aligned(usize size, usize align, AllocContext context) {
  return retry_while_waiting(memory_wait_, context,
                             [&] { return allocate_aligned_once(size, align, context); });
}

ktl::Result<void*, HeapError> Heap::allocate_aligned_once(usize size, usize align, AllocContext context) {
  if (align == 0) align = 1;
  if (!ktl::is_power_of_two(align)) return ktl::Err(HeapError::InvalidArgument);
  usize want = ktl::max(size, align);
  if (want <= heap_classes::kMaxSize && align <= kPageSize) {
    for (usize i = heap_classes::index_of(want); i < heap_classes::kCount; ++i) {
      if (heap_classes::align_of(i) >= align) {
        void* p = classes_[i]->alloc_sized(size, context);
        if (p != nullptr) return p;
        break;
      }
    }
  }
  return large_objects_.allocate(size, ktl::max<usize>(align, kPageSize), context);
}

void* Heap::kcalloc(usize count, usize size) {
  auto total = ktl::checked_mul(count, size);
  if (total.overflow) return nullptr;
  void* p = kmalloc(total.value);
  if (p != nullptr) {
    KTL_UNSAFE_BUFFER_BEGIN  // [p, p + total) is the object just allocated
    __builtin_memset(p, 0, total.value);
    KTL_UNSAFE_BUFFER_END
  }
  return p;
}

void* Heap::krealloc(void* p, usize size) {
  if (p == nullptr) return kmalloc(size);
  usize old_size = 0;
  if (SlabDesc* slab = slab_.slab_of(p)) {
    SlabCache* cache = slab->cache;
    cache->check_object_start(*slab, p, "krealloc");
    usize capacity = cache->object_size();
    if (size <= capacity && (size == 0 || size > capacity / 2 || capacity <= 16)) {
      cache->resize_in_place(p, size);
      return p;
    }
    old_size = cache->requested_size(p);
  } else if (large_objects_.initialized() && large_objects_.contains(p)) {
    usize mapped = large_objects_.usable_size(p);
    bool shrinks_a_lot = size <= heap_classes::kMaxSize && size * 2 < mapped;
    if (!shrinks_a_lot && large_objects_.resize_in_place(p, size)) return p;
    old_size = large_objects_.requested_size(p);
  } else {
    report_invalid_free(p, "krealloc of a pointer not from the heap");
  }
  void* q = kmalloc(size);
  if (q == nullptr) return nullptr;  // p is untouched
  // Without hardening the old size is the class size, beyond what ASan knows was requested.
  asan_unpoison(p, ktl::min(old_size, size));
  copy_object(q, p, ktl::min(old_size, size));
  kfree(p);
  return q;
}

usize Heap::usable_size(const void* p) {
  if (p == nullptr) return 0;
  if (SlabDesc* slab = slab_.slab_of(p)) {
    slab->cache->check_object_start(*slab, p, "usable_size");
    return slab->cache->hardened() ? slab->cache->requested_size(p) : slab->cache->object_size();
  }
  if (large_objects_.initialized() && large_objects_.contains(p)) return large_objects_.usable_size(p);
  report_invalid_free(p, "usable_size of a pointer not from the heap");
}

HeapStats Heap::stats() const {
  HeapStats s;
  s.slab_frames = slab_.slab_frames();
  if (large_objects_.initialized()) {
    LargeObjectStats r = large_objects_.stats();
    s.large_frames = r.mapped_pages;
    s.metadata_frames += r.table_frames;
  }
  return s;
}

// --- the kernel's heap -----------------------------------------------------------------------------------
namespace heap {

ktl::Result<void, HeapError> init(FrameTable& frames, const HeapConfig& config) {
  if (installed() != nullptr) return ktl::Err(HeapError::AlreadyInitialized);
  auto* h = new (g_heap_storage.data()) Heap();
  auto r = h->init(frames, config);
  if (r.is_err()) {
    h->~Heap();
    return r;
  }
  install(h);
  return ktl::ok();
}

Heap* installed() { return g_heap.load(ktl::MemoryOrder::Acquire); }

void install(Heap* h) {
  g_heap.store(h, ktl::MemoryOrder::Release);
  install_slab_allocator(h != nullptr ? &h->slab() : nullptr);
}

}  // namespace heap

void* kmalloc(usize size) {
  Heap* h = heap::installed();
  return h != nullptr ? h->kmalloc(size) : nullptr;
}
void* kcalloc(usize count, usize size) {
  Heap* h = heap::installed();
  return h != nullptr ? h->kcalloc(count, size) : nullptr;
}
void* krealloc(void* p, usize size) {
  Heap* h = heap::installed();
  return h != nullptr ? h->krealloc(p, size) : nullptr;
}
void kfree(void* p) {
  if (p == nullptr) return;
  Heap* h = heap::installed();
  ktl::check(h != nullptr, "kfree: no heap installed");
  h->kfree(p);
}

}  // namespace mm
