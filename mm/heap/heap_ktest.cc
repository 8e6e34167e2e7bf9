// mm.heap unit tests as KTEST bodies (host: heap_test; kernel: test mode). Each test owns a
// private heap over private memory (mm.testing.env); the environment checks at the end that every
// frame went back to that heap's PMM, and tests check their own frame balance where it matters.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.heap;
import mm.testing.env;
import mm.pmm;
import mm.range_allocator;
import mm.slab;

namespace {

using ktl::u64;
using ktl::u8;
using ktl::uptr;
using ktl::usize;
using mm::Heap;
using mm::test_env::check_pattern;
using mm::test_env::fill_pattern;
using mm::test_env::TestHeap;
namespace classes = mm::heap_classes;

constexpr usize KiB = 1024;
constexpr usize MiB = 1024 * KiB;

uptr addr(const void* p) { return ktl::address_of(p); }

// The slab's and the PMM's causes survive into HeapError (heap init used to turn every one of
// them into OutOfMemory).
KTEST(Heap, ErrorsOfTheLayersBelowKeepTheirCause) {
  using mm::HeapError;
  KEXPECT_EQ(mm::to_heap_error(mm::SlabError::OutOfMemory), HeapError::OutOfMemory);
  KEXPECT_EQ(mm::to_heap_error(mm::SlabError::InvalidArgument), HeapError::InvalidArgument);
  KEXPECT_EQ(mm::to_heap_error(mm::SlabError::TooManyCaches), HeapError::TooManyCaches);
  KEXPECT_EQ(mm::to_heap_error(mm::SlabError::AlreadyInitialized), HeapError::AlreadyInitialized);
  KEXPECT_EQ(mm::to_heap_error(mm::SlabError::PmmNotInitialized), HeapError::PmmNotInitialized);
  KEXPECT_EQ(mm::to_heap_error(mm::PmmError::OutOfMemory), HeapError::OutOfMemory);
  KEXPECT_EQ(mm::to_heap_error(mm::PmmError::NotInitialized), HeapError::PmmNotInitialized);
  KEXPECT_EQ(mm::to_heap_error(mm::RangeError::InvalidArgument), HeapError::InvalidArgument);
  KEXPECT_EQ(mm::to_heap_error(mm::RangeError::TooLarge), HeapError::TooLarge);
  KEXPECT_EQ(mm::to_heap_error(mm::RangeError::NoSpace), HeapError::LargeObjectsFull);
  KEXPECT_EQ(mm::to_heap_error(mm::RangeError::OutOfMemory), HeapError::OutOfMemory);
  KEXPECT_EQ(mm::to_heap_error(mm::RangeError::PmmNotInitialized), HeapError::PmmNotInitialized);
  KEXPECT_EQ(mm::to_heap_error(mm::RangeError::AlreadyInitialized), HeapError::AlreadyInitialized);
  KEXPECT_EQ(mm::to_heap_error(mm::RangeError::NotInitialized), HeapError::NoLargeObjects);
  auto env = KTRY(TestHeap::create());
  mm::HeapConfig config;
  auto again = env.heap().init(env.frames(), config);
  KASSERT(again.is_err());
  KEXPECT_EQ(again.error(), HeapError::AlreadyInitialized);
  ktl::EnumTextCheck texts = ktl::check_enum_text<HeapError>();
  KEXPECT(texts.ok);
  KEXPECT_EQ(texts.count, ktl::to_underlying(HeapError::WouldBlock) + 1);
  ktl::EnumTextCheck contexts = ktl::check_enum_text<mm::AllocContext>();
  KEXPECT(contexts.ok);
  KEXPECT_EQ(contexts.count, ktl::to_underlying(mm::AllocContext::Atomic) + 1u);
}

// An atomic allocation never takes the large-object path (heap.large_objects, the address-space lock and
// page-table frames): the size classes serve it, a large one fails with WouldBlock, and the same
// requests succeed when they may block.
KTEST(Heap, AtomicAllocationsNeverTakeTheBlockingPath) {
  using mm::AllocContext;
  using mm::HeapError;
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  u64 balance = env.balance();
  KEXPECT(!mm::may_block(AllocContext::Atomic) && !mm::may_reclaim(AllocContext::Atomic));
  KEXPECT(mm::may_block(AllocContext::NoReclaim) && !mm::may_reclaim(AllocContext::NoReclaim));
  KEXPECT(mm::may_block(AllocContext::MayBlock) && mm::may_reclaim(AllocContext::MayBlock));
  void* small = KTRY(heap.allocate(200, 0, AllocContext::Atomic));
  void* aligned = KTRY(heap.allocate(100, 64, AllocContext::Atomic));
  KEXPECT_EQ(addr(aligned) % 64, 0u);
  u64 objects = heap.large_objects().stats().objects;
  auto large = heap.allocate(200 * KiB, 0, AllocContext::Atomic);
  KEXPECT(large.is_err() && large.error() == HeapError::WouldBlock);
  auto page_aligned = heap.allocate(100, 2 * MiB, AllocContext::Atomic);  // only the region aligns so
  KEXPECT(page_aligned.is_err() && page_aligned.error() == HeapError::WouldBlock);
  KEXPECT_EQ(heap.large_objects().stats().objects, objects);
  void* blocking = KTRY(heap.allocate(200 * KiB, 0, AllocContext::NoReclaim));
  heap.kfree(blocking);
  heap.kfree(aligned);
  heap.kfree(small);
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Heap, SizeClassesAreTightAndOrdered) {
  KEXPECT_EQ(classes::size_of(0), 8u);
  KEXPECT_EQ(classes::size_of(classes::kCount - 1), classes::kMaxSize);
  for (usize i = 1; i < classes::kCount; ++i) {
    KEXPECT_LT(classes::size_of(i - 1), classes::size_of(i));
    KEXPECT_EQ(classes::size_of(i) % 16, 0u);  // every class above 8 bytes keeps 16-byte alignment
  }
  for (usize n = 0; n <= classes::kMaxSize; ++n) {
    usize i = classes::index_of(n);
    if (!KEXPECT_LE(n, classes::size_of(i))) return;
    if (i > 0 && !KEXPECT_LT(classes::size_of(i - 1), n)) return;            // the smallest class that fits
    if (n > 128 && !KEXPECT_LE(classes::size_of(i) * 4, n * 5 + 4)) return;  // <= 25% waste
  }
}

KTEST(Heap, EverySizeIsWritableDistinctAndFreed) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  u64 balance = env.balance();
  ktl::Array<void*, 600> live{};
  usize count = 0;
  for (usize n = 0; n <= 8 * KiB; n += (n < 256 ? 1 : 61)) {
    void* p = heap.kmalloc(n);
    KASSERT(p != nullptr);
    KEXPECT_LE(n, heap.usable_size(p));
    fill_pattern(p, n, n);
    live[count++] = p;
    KASSERT(count < live.size());
  }
  for (usize n : ktl::Array<usize, 4>{{100 * KiB, 300 * KiB, 1 * MiB, 3 * MiB + 5}}) {
    void* p = heap.kmalloc(n);
    KASSERT(p != nullptr);
    KEXPECT(heap.large_objects().contains(p));
    KEXPECT_EQ(addr(p) % mm::kPageSize, 0u);
    fill_pattern(p, n, n);
    live[count++] = p;
  }
  // No two objects overlap: each still holds its own pattern.
  usize at = 0;
  for (usize n = 0; n <= 8 * KiB; n += (n < 256 ? 1 : 61)) KEXPECT(check_pattern(live[at++], n, n));
  for (usize n : ktl::Array<usize, 4>{{100 * KiB, 300 * KiB, 1 * MiB, 3 * MiB + 5}}) {
    KEXPECT(check_pattern(live[at++], n, n));
  }
  for (usize i = 0; i < count; ++i) heap.kfree(live[i]);
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Heap, ZeroSizeRule) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  void* a = heap.kmalloc(0);
  void* b = heap.kmalloc(0);
  KASSERT(a != nullptr && b != nullptr);
  KEXPECT_NE(a, b);                     // unique, like any allocation
  KEXPECT_EQ(heap.usable_size(a), 0u);  // hardened: zero usable bytes (the rest is redzone)
  void* c = heap.kmalloc(5);
  KEXPECT_EQ(heap.krealloc(c, 0), c);  // shrinks in place, does not free
  KEXPECT_EQ(heap.usable_size(c), 0u);
  void* d = heap.krealloc(nullptr, 0);  // krealloc(nullptr, n) == kmalloc(n)
  KEXPECT(d != nullptr);
  heap.kfree(nullptr);  // a no-op
  for (void* p : ktl::Array<void*, 4>{{a, b, c, d}}) heap.kfree(p);
}

KTEST(Heap, AlignmentGuarantees) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  ktl::Array<void*, 64> live{};
  usize count = 0;
  for (usize n = 1; n <= 8 * KiB; n = n * 3 / 2 + 1) {
    void* p = heap.kmalloc(n);
    KEXPECT_EQ(addr(p) % (n <= 8 ? 8 : 16), 0u);
    live[count++] = p;
  }
  for (usize n = 1; n <= 4096; n *= 2) {  // powers of two are naturally aligned
    for (int i = 0; i < 3; ++i) {
      void* p = heap.kmalloc(n);
      KEXPECT_EQ(addr(p) % ktl::max<usize>(n, 8), 0u);
      heap.kfree(p);
    }
  }
  for (usize a = 1; a <= 1 * MiB; a *= 4) {
    for (usize n : ktl::Array<usize, 4>{{1, 100, 5000, 70000}}) {
      void* p = heap.kmalloc_aligned(n, a);
      KASSERT(p != nullptr);
      KEXPECT_EQ(addr(p) % a, 0u);
      fill_pattern(p, n, a);
      KEXPECT(check_pattern(p, n, a));
      heap.kfree(p);
    }
  }
  KEXPECT(heap.kmalloc_aligned(16, 48) == nullptr);  // not a power of two
  void* big = heap.kmalloc(200 * KiB);
  KEXPECT_EQ(addr(big) % mm::kPageSize, 0u);
  heap.kfree(big);
  for (usize i = 0; i < count; ++i) heap.kfree(live[i]);
}

KTEST(Heap, KcallocZeroesAndRejectsOverflow) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  // Dirty some memory first so zeroing is observable.
  void* dirty = heap.kmalloc(4000);
  fill_pattern(dirty, 4000, 1);
  heap.kfree(dirty);
  auto* p = static_cast<u8*>(heap.kcalloc(1000, 4));
  KASSERT(p != nullptr);
  KTL_UNSAFE_BUFFER_BEGIN  // kcalloc(1000, 4) returned 4000 bytes
  ktl::Span<u8> s = ktl::Span<u8>::from_raw(p, 4000);
  KTL_UNSAFE_BUFFER_END
  usize nonzero = 0;
  for (u8 b : s) nonzero += b != 0 ? 1 : 0;
  KEXPECT_EQ(nonzero, 0u);
  heap.kfree(p);
  KEXPECT(heap.kcalloc(~usize{0} / 2, 3) == nullptr);
  KEXPECT(heap.kcalloc(usize{1} << 33, usize{1} << 33) == nullptr);
}

KTEST(Heap, KreallocKeepsContentsThroughGrowthAndShrink) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  u64 balance = env.balance();
  void* p = heap.kmalloc(1);
  fill_pattern(p, 1, 5);
  usize size = 1;
  while (size < 2 * MiB) {
    usize next = size * 2 + 3;
    p = heap.krealloc(p, next);
    KASSERT(p != nullptr);
    KASSERT(check_pattern(p, size, 5));
    fill_pattern(p, next, 5);
    size = next;
  }
  while (size > 1) {
    size /= 3;
    p = heap.krealloc(p, size);
    KASSERT(p != nullptr);
    KASSERT(check_pattern(p, size, 5));
  }
  heap.kfree(p);
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Heap, KreallocGrowsInPlaceWhenItCan) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  void* small = heap.kmalloc(100);  // class 112
  KEXPECT_EQ(heap.krealloc(small, 112), small);
  KEXPECT_EQ(heap.krealloc(small, 60), small);  // more than half the class: stays
  void* moved = heap.krealloc(small, 113);
  KEXPECT_NE(moved, small);
  heap.kfree(moved);

  void* big = heap.kmalloc(100 * KiB);
  fill_pattern(big, 100 * KiB, 7);
  void* grown = heap.krealloc(big, 300 * KiB);  // the pages behind it are free: map more there
  KEXPECT_EQ(grown, big);
  KEXPECT(check_pattern(grown, 100 * KiB, 7));
  fill_pattern(grown, 300 * KiB, 8);
  void* blocker = heap.kmalloc(200 * KiB);  // lands right behind (first fit)
  void* moved_big = heap.krealloc(grown, 600 * KiB);
  KASSERT(moved_big != nullptr);
  if (addr(blocker) == addr(grown) + 300 * KiB + mm::kPageSize) {
    KEXPECT_NE(moved_big, grown);  // blocked: had to move
  }
  KEXPECT(check_pattern(moved_big, 300 * KiB, 8));
  heap.kfree(blocker);
  heap.kfree(moved_big);
}

KTEST(Heap, LargeObjectsMapFramesAndGiveThemBack) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  u64 balance = env.balance();
  u64 free_before = env.pmm().free_frame_count();
  mm::HeapStats s0 = heap.stats();
  u64 table0 = env.frames().metadata_frames();
  void* p = heap.kmalloc(300 * KiB + 1);
  KASSERT(p != nullptr);
  mm::HeapStats s = heap.stats();
  KEXPECT_EQ(s.large_frames, 76u);  // ceil((300 KiB + 1) / 4 KiB)
  // Plus what the heap's own bookkeeping took (the record's slab, a frame-table leaf), nothing else.
  u64 bookkeeping = (s.slab_frames + s.metadata_frames) - (s0.slab_frames + s0.metadata_frames) +
                    (env.frames().metadata_frames() - table0);
  KEXPECT_LE(bookkeeping, 4u);
  KEXPECT_EQ(free_before - env.pmm().free_frame_count(), 76u + bookkeeping);
  fill_pattern(p, 300 * KiB + 1, 11);
  KEXPECT(check_pattern(p, 300 * KiB + 1, 11));
  heap.kfree(p);
  KEXPECT_EQ(heap.stats().large_frames, 0u);
  KEXPECT_EQ(env.balance(), balance);
}

// A large object is owned by Mappings kept in its record (mm.heap.paging): one per physical run,
// covering its pages exactly once. A fresh test heap's memory is one contiguous block, so a large
// kmalloc is exactly one Mapping; growth in place adds one for the new pages and leaves the first
// alone; kfree destroys both and every frame comes back.
KTEST(Heap, LargeObjectIsOneMappingOverItsPages) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  u64 balance = env.balance();
  mm::LargeObjectStats before = heap.large_objects().stats();
  void* p = heap.kmalloc(300 * KiB + 1);
  KASSERT(p != nullptr);
  ktl::Array<mm::LargeRun, mm::LargeObject::kMaxRuns> runs{};
  KASSERT_EQ(heap.large_objects().runs_of(p, runs.span()), 1u);
  KEXPECT_EQ(runs[0].start.value(), addr(p));
  KEXPECT_EQ(runs[0].pages, 76u);  // ceil((300 KiB + 1) / 4 KiB)
  for (u64 i = 0; i < runs[0].pages; ++i) {
    KEXPECT_EQ(env.pmm().state_of(mm::Frame4K::containing(runs[0].phys + i * mm::kPageSize)),
               mm::FrameState::Allocated);
  }
  KEXPECT_EQ(heap.large_objects().stats().mappings, before.mappings + 1);
  KEXPECT_EQ(heap.large_objects().stats().objects, before.objects + 1);
  heap.kfree(p);
  KEXPECT_EQ(heap.large_objects().stats().mappings, before.mappings);
  for (u64 i = 0; i < runs[0].pages; ++i) {
    KEXPECT_EQ(env.pmm().state_of(mm::Frame4K::containing(runs[0].phys + i * mm::kPageSize)),
               mm::FrameState::Free);
  }
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Heap, GrowthInPlaceGivesTheNewPagesTheirOwnMapping) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  u64 balance = env.balance();
  void* p = heap.kmalloc(100 * KiB);
  KASSERT(p != nullptr);
  fill_pattern(p, 100 * KiB, 3);
  ktl::Array<mm::LargeRun, mm::LargeObject::kMaxRuns> first{};
  KASSERT_EQ(heap.large_objects().runs_of(p, first.span()), 1u);
  u64 free_before = env.pmm().free_frame_count();
  u64 metadata_before =
      heap.stats().metadata_frames + heap.stats().slab_frames + env.frames().metadata_frames();
  KASSERT_EQ(heap.krealloc(p, 300 * KiB), p);
  ktl::Array<mm::LargeRun, mm::LargeObject::kMaxRuns> runs{};
  KASSERT_EQ(heap.large_objects().runs_of(p, runs.span()), 2u);
  KEXPECT_EQ(runs[0].start, first[0].start);  // the first Mapping is untouched
  KEXPECT_EQ(runs[0].pages, first[0].pages);
  KEXPECT_EQ(runs[0].phys, first[0].phys);
  KEXPECT_EQ(runs[1].start.value(), addr(p) + 100 * KiB);  // from the old guard page on
  KEXPECT_EQ(runs[1].pages, 50u);                          // the new pages only
  u64 metadata_after =
      heap.stats().metadata_frames + heap.stats().slab_frames + env.frames().metadata_frames();
  KEXPECT_EQ(free_before - env.pmm().free_frame_count(), 50u + (metadata_after - metadata_before));
  KEXPECT_EQ(heap.large_objects().stats().mappings, 2u);
  KEXPECT(check_pattern(p, 100 * KiB, 3));
  fill_pattern(p, 300 * KiB, 4);
  KEXPECT(check_pattern(p, 300 * KiB, 4));
  heap.kfree(p);
  KEXPECT_EQ(heap.large_objects().stats().mappings, 0u);
  KEXPECT_EQ(heap.stats().large_frames, 0u);
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Heap, OutOfMemoryReturnsNullNeverCrashes) {
  auto env = KTRY(TestHeap::create(mm::Hardening::On, 16 * MiB));
  Heap& heap = env.heap();
  u64 balance = env.balance();
  KEXPECT(heap.kmalloc(usize{1} << 40) == nullptr);  // bigger than the region
  KEXPECT(heap.kmalloc(~usize{0}) == nullptr);
  ktl::Array<void*, 64> big{};
  usize got = 0;
  for (void*& p : big) {  // 64 x 1 MiB cannot fit in 16 MiB
    p = heap.kmalloc(1 * MiB);
    if (p != nullptr) ++got;
  }
  KEXPECT_LT(got, big.size());
  KEXPECT_LT(0u, got);
  ktl::Array<void*, 4096> small{};
  usize small_got = 0;
  for (void*& p : small) {  // the remaining memory runs out for small objects too
    p = heap.kmalloc(2048);
    if (p != nullptr) ++small_got;
  }
  KEXPECT_LT(small_got, small.size());
  for (void* p : small) heap.kfree(p);
  for (void* p : big) heap.kfree(p);
  KEXPECT_EQ(env.balance(), balance);
  void* again = heap.kmalloc(1 * MiB);  // and the heap recovers
  KEXPECT(again != nullptr);
  heap.kfree(again);
}

KTEST(Heap, FaultInjectionFailsCleanly) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  u64 balance = env.balance();
  heap.slab().fail_slab_allocations_after(0);
  KEXPECT(heap.kmalloc(3000) == nullptr);  // a class with no slab yet
  heap.slab().fail_slab_allocations_after(~u64{0});
  heap.large_objects().fail_allocations_after(0);
  KEXPECT(heap.kmalloc(200 * KiB) == nullptr);
  auto failed = heap.allocate(200 * KiB);
  KEXPECT(failed.is_err() && failed.error() == mm::HeapError::OutOfMemory);  // injected, not hidden
  auto misaligned = heap.allocate(64, 24);
  KEXPECT(misaligned.is_err() && misaligned.error() == mm::HeapError::InvalidArgument);
  auto huge = heap.allocate(usize{1} << 40);  // bigger than the region
  KEXPECT(huge.is_err() && huge.error() == mm::HeapError::TooLarge);
  heap.large_objects().fail_allocations_after(~u64{0});
  void* p = heap.kmalloc(200 * KiB);
  KEXPECT(p != nullptr);
  heap.kfree(p);
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Heap, ClassCachesShowInSlabinfo) {
  auto env = KTRY(TestHeap::create());
  Heap& heap = env.heap();
  void* p = heap.kmalloc(700);
  usize seen = 0;
  bool found = false;
  heap.slab().for_each_info([&](const mm::SlabInfo& info) {
    ++seen;
    if (info.name == ktl::StringView("kmalloc-768")) found = info.active >= 1;
  });
  KEXPECT_LE(classes::kCount, seen);
  KEXPECT(found);
  heap.kfree(p);
}

KTEST(Heap, GlobalInstanceServesKmalloc) {
  auto env = KTRY(TestHeap::create());
  Heap* previous = mm::heap::installed();
  mm::heap::install(&env.heap());
  void* p = mm::kmalloc(40);
  KASSERT(p != nullptr);
  p = mm::krealloc(p, 4000);
  void* z = mm::kcalloc(10, 10);
  KEXPECT(p != nullptr && z != nullptr);
  mm::kfree(p);
  mm::kfree(z);
  mm::kfree(nullptr);
  mm::heap::install(previous);
}

}  // namespace
