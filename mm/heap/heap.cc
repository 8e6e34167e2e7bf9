// mm.heap: implementation (see heap.cppm for the rules and the lock order).
module;

#include <ktl/macros.h>
#include <ktl/new.h>
#if defined(FERRITE_ASAN)
#include <sanitizer/asan_interface.h>
#endif

// See mm/slab/slab.cc: bytes that may be poisoned in ASan's shadow are touched only by these helpers.
#define HEAP_RAW __attribute__((no_sanitize("address", "coverage"), no_builtin))

module mm.heap;

import ktl;
import mm.addr;
import mm.arch;
import mm.bitmap;
import mm.pmm;
import mm.slab;
import mm.slab.cpu;

namespace mm {

namespace {

constexpr ktl::u8 kTailByte = 0xbb;

ktl::Atomic<Heap*> g_heap{nullptr};
alignas(Heap) ktl::Array<ktl::u8, sizeof(Heap)> g_heap_storage;

ktl::u8* byte_at(void* p, usize offset) {
  KTL_UNSAFE_BUFFER_BEGIN  // inside one object or mapping (the caller's contract)
      return static_cast<ktl::u8*>(p) +
      offset;
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

// --- HeapRegion ---------------------------------------------------------------------------------------
ktl::Result<void, HeapError> HeapRegion::init(Pmm& pmm, PhysWindow window, SlabAllocator& slab,
                                              VirtRange range, RegionSpace& space, Hardening hardening) {
  if (space_ != nullptr) return ktl::Err(HeapError::AlreadyInitialized);
  if (range.empty() || !range.start().is_aligned(kPageSize) ||
      !ktl::is_aligned<u64>(range.size(), kPageSize)) {
    return ktl::Err(HeapError::InvalidArgument);
  }
  u64 pages = range.size() / kPageSize;
  u64 bitmap_bytes = ktl::align_up<u64>(SummaryBitmap::storage_words(pages) * sizeof(u64), kPageSize);
  auto bitmap = pmm.alloc_contiguous(bitmap_bytes / kPageSize, kPageSize);
  if (bitmap.is_err()) return ktl::Err(to_heap_error(bitmap.error()));
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
  bitmap_frames_ = bitmap.release_value();
  root_frames_ = root.release_value();
  free_pages_ = SummaryBitmap(window.array<u64>(bitmap_frames_.start(), bitmap_bytes / sizeof(u64)), pages);
  free_pages_.set_range(0, pages);
  root_ = window.array<ktl::uptr>(root_frames_.start(), root_entries);
  for (ktl::uptr& e : root_) e = 0;
  stats_.table_frames = bitmap_frames_.count() + root_frames_.count();
  space_ = &space;
  return ktl::ok();
}

HeapRegion::~HeapRegion() {
  if (space_ == nullptr) return;
  {
    ktl::LockGuard guard(lock_);
    for (u64 i = 0; i < root_.size(); ++i) {
      if (root_[i] == 0) continue;
      for (u64 j = 0; j < kLeafEntries; ++j) {
        ktl::uptr v = table_get(i * kLeafEntries + j);
        if (v > kTombstone) release_locked(reinterpret_cast<LargeObject*>(v));
      }
      auto leaf = window_.phys_of(reinterpret_cast<void*>(root_[i]));
      auto r = pmm_->free_frames(Frame4K::from_start(leaf.value()).value(), 1);
      ktl::check_ok(r, "heap region: a table leaf was freed behind its back");
    }
  }
  auto r = slab_->destroy_cache(descriptors_);
  ktl::check_ok(r, "heap region: descriptors still live");
  bitmap_frames_.reset();
  root_frames_.reset();
}

ktl::uptr HeapRegion::table_get(u64 page) const {
  ktl::uptr leaf = root_[page / kLeafEntries];
  if (leaf == 0) return 0;
  return window_.array<ktl::uptr>(window_.phys_of(reinterpret_cast<void*>(leaf)).value(),
                                  kLeafEntries)[page % kLeafEntries];
}

bool HeapRegion::table_set(u64 page, ktl::uptr value) {
  ktl::uptr& leaf = root_[page / kLeafEntries];
  if (leaf == 0) {
    if (value == 0) return true;
    auto frame = pmm_->alloc_page();
    if (frame.is_err()) return false;
    ktl::Bytes bytes = window_.bytes(frame.value().start(), kPageSize);
    ktl::fill_bytes(bytes, 0);
    leaf = reinterpret_cast<ktl::uptr>(bytes.data());
    (void)frame.release_value().release();  // owned by the table (freed by the destructor)
    ++stats_.table_frames;
  }
  window_.array<ktl::uptr>(window_.phys_of(reinterpret_cast<void*>(leaf)).value(),
                           kLeafEntries)[page % kLeafEntries] = value;
  return true;
}

void HeapRegion::report(const char* what, const void* p) const {
  ktl::InlineString<256> message;
  ktl::format_to(message, "heap: {} of {} in the heap region (large objects)", what, p);
  ktl::panic(message.c_str());
}

LargeObject* HeapRegion::live_object_locked(const void* p, const char* operation) const {
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
  auto* o = reinterpret_cast<LargeObject*>(v);
  if (o->magic != (kMagic ^ v) || o->start.value() != addr(p)) report("corrupted large-object descriptor", p);
  return o;
}

void HeapRegion::fill_tail(const LargeObject& o) const {
  void* p = o.start.as_ptr<void>();
  usize mapped = o.pages * kPageSize;
  if (hardened_) raw_fill(byte_at(p, o.requested), mapped - o.requested, kTailByte);
  asan_unpoison(p, mapped);
  asan_poison(byte_at(p, o.requested), mapped - o.requested);
}

void HeapRegion::check_tail(const LargeObject& o) const {
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
bool HeapRegion::map_pages_locked(LargeObject& o, VirtAddr at, u64 pages) {
  u32 runs_before = o.runs;
  VirtAddr cursor = at;
  u64 remaining = pages;
  bool ok = true;
  while (remaining > 0) {
    if (o.runs == LargeObject::kMaxRuns) {
      ok = false;
      break;
    }
    u64 budget = fail_after_.load(ktl::MemoryOrder::Relaxed);
    if (budget != ~u64{0}) {
      if (budget == 0) {
        ok = false;
        break;
      }
      fail_after_.fetch_sub(1, ktl::MemoryOrder::Relaxed);
    }
    // The largest contiguous run we can get (halving), so objects have few runs.
    u64 n = remaining;
    ktl::Optional<AllocatedFrames> run;
    while (n > 0) {
      auto r = pmm_->alloc_contiguous(n, kPageSize);
      if (r.is_ok()) {
        run = r.release_value();
        break;
      }
      n /= 2;
    }
    if (!run.has_value()) {
      ok = false;
      break;
    }
    // The frames move into the run's Mapping (freed by map() itself if it fails).
    if (space_->map(o, cursor, run.release_value()).is_err()) {
      ok = false;
      break;
    }
    cursor = cursor + n * kPageSize;
    remaining -= n;
  }
  if (!ok) space_->unmap(o, runs_before);
  return ok;
}

ktl::Result<void*, HeapError> HeapRegion::allocate(usize bytes, usize align) {
  if (space_ == nullptr) return ktl::Err(HeapError::NotInitialized);
  if (align == 0) align = kPageSize;
  if (!ktl::is_power_of_two(align)) return ktl::Err(HeapError::InvalidArgument);
  auto rounded = ktl::checked_align_up<u64>(ktl::max<u64>(bytes, 1), kPageSize);
  if (rounded.overflow || rounded.value / kPageSize + 1 > range_.size() / kPageSize)
    return ktl::Err(HeapError::TooLarge);
  u64 pages = rounded.value / kPageSize;
  u64 align_pages = ktl::max<u64>(align / kPageSize, 1);

  void* place = descriptors_->alloc();
  if (place == nullptr) return ktl::Err(HeapError::OutOfMemory);
  ktl::LockGuard guard(lock_);
  u64 phase = range_.start().value() / kPageSize;
  auto found = free_pages_.find_set_run(pages + 1, align_pages, phase, 0, free_pages_.size());
  if (!found.has_value()) {
    descriptors_->free(place);
    return ktl::Err(HeapError::OutOfMemory);
  }
  u64 index = found.value();
  free_pages_.clear_range(index, index + pages + 1);
  LargeObject* o = space_->construct(place);
  o->magic = kMagic ^ reinterpret_cast<ktl::uptr>(o);
  o->start = range_.start() + index * kPageSize;
  o->requested = bytes;
  if (!map_pages_locked(*o, o->start, pages) || !table_set(index, reinterpret_cast<ktl::uptr>(o))) {
    space_->unmap(*o, 0);  // no-op unless the table leaf was what failed
    free_pages_.set_range(index, index + pages + 1);
    o->magic = 0;
    descriptors_->free(space_->destroy(o));
    return ktl::Err(HeapError::OutOfMemory);
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
void HeapRegion::release_locked(LargeObject* o) {
  u64 index = page_index(o->start);
  asan_unpoison(o->start.as_ptr<void>(), o->pages * kPageSize);
  stats_.mappings -= o->runs;
  space_->unmap(*o, 0);
  bool ok = table_set(index, kTombstone);
  ktl::check(ok, "heap region: the table leaf of a live object exists");
  free_pages_.set_range(index, index + o->pages + 1);
  --stats_.objects;
  stats_.mapped_pages -= o->pages;
  stats_.reserved_pages -= o->pages + 1;
  o->magic = 0;
  descriptors_->free(space_->destroy(o));
}

void HeapRegion::free(void* p) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "kfree");
  check_tail(*o);
  release_locked(o);
}

bool HeapRegion::resize_in_place(void* p, usize bytes) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "krealloc");
  check_tail(*o);
  auto rounded = ktl::checked_align_up<u64>(ktl::max<u64>(bytes, 1), kPageSize);
  if (rounded.overflow) return false;
  u64 pages = rounded.value / kPageSize;
  if (pages > o->pages) {
    u64 index = page_index(o->start);
    u64 from = index + o->pages + 1;  // the current guard page stays reserved and gets mapped
    u64 to = index + pages + 1;       // the new guard page
    if (to > free_pages_.size() || !free_pages_.all_set(from, to)) return false;
    free_pages_.clear_range(from, to);
    u32 runs_before = o->runs;
    // New Mappings for the new pages only: the old ones keep theirs, so every page has one owner.
    if (!map_pages_locked(*o, o->start + o->pages * kPageSize, pages - o->pages)) {
      free_pages_.set_range(from, to);
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

usize HeapRegion::requested_size(const void* p) {
  ktl::LockGuard guard(lock_);
  return live_object_locked(p, "size query")->requested;
}

usize HeapRegion::usable_size(const void* p) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "size query");
  return hardened_ ? o->requested : o->pages * kPageSize;
}

u32 HeapRegion::runs_of(const void* p, ktl::Span<LargeRun> out) {
  ktl::LockGuard guard(lock_);
  LargeObject* o = live_object_locked(p, "run query");
  for (u32 i = 0; i < o->runs && i < out.size(); ++i) out[i] = space_->run(*o, i);
  return o->runs;
}

RegionStats HeapRegion::stats() const {
  ktl::LockGuard guard(lock_);
  return stats_;
}

// --- Heap ----------------------------------------------------------------------------------------------
ktl::Result<void, HeapError> Heap::init(Pmm& pmm, PhysWindow window, const HeapConfig& config) {
  if (slab_.initialized()) return ktl::Err(HeapError::AlreadyInitialized);
  hardening_ = config.hardening;
  if (auto r = slab_.init(pmm, window, SlabOptions{config.hardening, config.seed}); r.is_err()) {
    return ktl::Err(to_heap_error(r.error()));
  }
  for (usize i = 0; i < heap_classes::kCount; ++i) {
    ktl::InlineString<32> name;
    ktl::format_to(name, "kmalloc-{}", heap_classes::size_of(i));
    auto cache = slab_.create_cache(name.view(), heap_classes::size_of(i), heap_classes::align_of(i));
    if (cache.is_err()) return ktl::Err(to_heap_error(cache.error()));
    if (!cache.value()->has_cpu_slot()) return ktl::Err(HeapError::TooManyCaches);
    classes_[i] = cache.value();
  }
  if (config.space != nullptr) {
    TRY(region_.init(pmm, window, slab_, config.region, *config.space, config.hardening));
  }
  return ktl::ok();
}

void Heap::report_invalid_free(const void* p, const char* why) const {
  ktl::InlineString<160> message;
  ktl::format_to(message, "heap: invalid kfree of {} ({})", p, why);
  ktl::panic(message.c_str());
}

void* Heap::kmalloc_slow(usize size) {
  if (size <= heap_classes::kMaxSize) {
    void* p = classes_[heap_classes::index_of(size)]->alloc_general(size);
    if (p != nullptr) return p;
  }
  // A big class whose contiguous slab could not be had still has the region.
  if (size <= heap_classes::kMaxSize && size < 8192) return nullptr;
  if (!region_.initialized()) return nullptr;
  auto r = region_.allocate(size, kPageSize);
  return r.is_ok() ? r.value() : nullptr;
}

void Heap::free_large(void* p) {
  if (region_.initialized() && region_.contains(p)) {
    region_.free(p);
    return;
  }
  report_invalid_free(p, "not from the heap");
}

ktl::Result<void*, HeapError> Heap::allocate(usize size, usize align) {
  void* p = align == 0 ? kmalloc(size) : kmalloc_aligned(size, align);
  if (p == nullptr) return ktl::Err(HeapError::OutOfMemory);
  return p;
}

void* Heap::kmalloc_aligned(usize size, usize align) {
  if (align == 0) align = 1;
  if (!ktl::is_power_of_two(align)) return nullptr;
  usize want = ktl::max(size, align);
  if (want <= heap_classes::kMaxSize && align <= kPageSize) {
    for (usize i = heap_classes::index_of(want); i < heap_classes::kCount; ++i) {
      if (heap_classes::align_of(i) >= align) {
        void* p = classes_[i]->alloc_sized(size);
        if (p != nullptr) return p;
        break;
      }
    }
  }
  if (!region_.initialized()) return nullptr;
  auto r = region_.allocate(size, ktl::max<usize>(align, kPageSize));
  return r.is_ok() ? r.value() : nullptr;
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
  } else if (region_.initialized() && region_.contains(p)) {
    usize mapped = region_.usable_size(p);
    bool shrinks_a_lot = size <= heap_classes::kMaxSize && size * 2 < mapped;
    if (!shrinks_a_lot && region_.resize_in_place(p, size)) return p;
    old_size = region_.requested_size(p);
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
  if (region_.initialized() && region_.contains(p)) return region_.usable_size(p);
  report_invalid_free(p, "usable_size of a pointer not from the heap");
}

HeapStats Heap::stats() const {
  HeapStats s;
  s.slab_frames = slab_.slab_frames();
  s.metadata_frames = slab_.metadata_frames();
  if (region_.initialized()) {
    RegionStats r = region_.stats();
    s.large_frames = r.mapped_pages;
    s.metadata_frames += r.table_frames;
  }
  return s;
}

// --- the kernel's heap -----------------------------------------------------------------------------------
namespace heap {

ktl::Result<void, HeapError> init(Pmm& pmm, PhysWindow window, const HeapConfig& config) {
  if (installed() != nullptr) return ktl::Err(HeapError::AlreadyInitialized);
  auto* h = new (g_heap_storage.data()) Heap();
  auto r = h->init(pmm, window, config);
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
