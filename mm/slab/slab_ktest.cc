// mm.slab unit tests as KTEST bodies: GoogleTest cases on the host (slab_test), and the kernel's
// test mode runs the same bodies. Each test gets a private heap (mm.testing.env) whose PMM must
// get every frame back when the test ends, and checks its own frame balance where it matters.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import mm.addr;
import mm.arch;
import mm.compat;
import mm.frames;
import mm.heap;
import mm.testing.env;
import mm.pmm;
import mm.slab;
import mm.slab.typed;

namespace {

using ktl::u64;
using ktl::u8;
using ktl::uptr;
using ktl::usize;
using mm::CacheFlags;
using mm::SlabCache;
using mm::SlabError;
using mm::test_env::check_pattern;
using mm::test_env::fill_pattern;
using mm::test_env::TestHeap;

uptr addr(const void* p) { return ktl::address_of(p); }

KTEST(Slab, AllocatesDistinctAlignedObjectsAndAccountsForThem) {
  auto env = KTRY(TestHeap::create());
  u64 balance = env.balance();
  SlabCache* c = KTRY(env.slab().create_cache("test-40", 40, 8));
  KEXPECT_EQ(c->object_size(), 40u);
  constexpr usize kCount = 1000;
  ktl::Array<void*, kCount> objects{};
  for (usize i = 0; i < kCount; ++i) {
    objects[i] = c->alloc();
    KASSERT(objects[i] != nullptr);
    KEXPECT_EQ(addr(objects[i]) % 8, 0u);
    fill_pattern(objects[i], 40, i);
  }
  for (usize i = 0; i < kCount; ++i) KEXPECT(check_pattern(objects[i], 40, i));
  c->flush_local_cpu();
  mm::SlabInfo info = c->info();
  KEXPECT_EQ(info.active, kCount + info.cached);  // live ones plus those parked in the depot
  KEXPECT_LE(kCount, info.objects);
  KEXPECT_EQ(info.objects, info.slabs * info.objects_per_slab);
  KEXPECT_EQ(info.frames, info.slabs * info.frames_per_slab);
  KEXPECT_EQ(info.waste_bytes, info.frames * mm::kPageSize - info.objects * 40);
  KEXPECT_EQ(info.full_slabs + info.partial_slabs + info.empty_slabs, info.slabs);
  for (usize i = 0; i < kCount; ++i) c->free(objects[i]);
  KEXPECT_OK(env.slab().destroy_cache(c));
  KEXPECT_EQ(env.balance(), balance);
}

// A cache grows with the caller's context: when only the PMM's atomic reserve is left, a new slab
// is refused to MayBlock and NoReclaim allocations and given to Atomic ones.
KTEST(Slab, OnlyAtomicAllocationsGrowACacheIntoThePmmReserve) {
  auto env = KTRY(TestHeap::create());
  u64 balance = env.balance();
  SlabCache* c = KTRY(env.slab().create_cache("context-64", 64, 8));
  const u64 previous = env.pmm().atomic_reserve();
  KASSERT_OK(env.pmm().set_atomic_reserve(env.pmm().free_frame_count()));
  void* refused = c->alloc();
  void* refused_too = c->alloc_sized(64, mm::AllocContext::NoReclaim);
  void* object = c->alloc_sized(64, mm::AllocContext::Atomic);
  KASSERT_OK(env.pmm().set_atomic_reserve(previous));
  KEXPECT(refused == nullptr);
  KEXPECT(refused_too == nullptr);
  KEXPECT(object != nullptr);
  ktl::Array<void*, 3> objects{refused, refused_too, object};
  for (void* p : objects) {
    if (p != nullptr) c->free(p);
  }
  KEXPECT_OK(env.slab().destroy_cache(c));
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Slab, ConstructorRunsOncePerObjectNotOnReuse) {
  static usize constructed = 0;
  constructed = 0;
  auto env = KTRY(TestHeap::create());
  SlabCache* c = KTRY(env.slab().create_cache("ctor", 24, 8, [](void* p) {
    ++constructed;
    *static_cast<u64*>(p) = 0xc0ffee;
  }));
  constexpr usize kCount = 300;
  ktl::Array<void*, kCount> objects{};
  for (void*& p : objects) {
    p = c->alloc();
    KASSERT(p != nullptr);
    KEXPECT_EQ(*static_cast<u64*>(p), 0xc0ffeeu);  // constructed state, also after reuse
  }
  usize after_first = constructed;
  KEXPECT_EQ(after_first, c->info().objects);  // every slot of every slab, once
  for (void* p : objects) c->free(p);
  for (void*& p : objects) {
    p = c->alloc();
    KEXPECT_EQ(*static_cast<u64*>(p), 0xc0ffeeu);
  }
  KEXPECT_EQ(constructed, after_first);  // reuse does not construct again
  for (void* p : objects) c->free(p);
  c->flush_local_cpu();
  KEXPECT_LT(0u, c->reclaim(0));  // slabs gone: new ones construct their objects again
  void* p = c->alloc();
  KEXPECT_LT(after_first, constructed);
  c->free(p);
  KEXPECT_OK(env.slab().destroy_cache(c));
}

KTEST(Slab, PartialFullEmptyListsAndReclaimReportsFrames) {
  auto env = KTRY(TestHeap::create());
  u64 balance = env.balance();
  SlabCache* c = KTRY(env.slab().create_cache("lists", 256, 8, nullptr, CacheFlags::NoCpuCache));
  usize per_slab = c->objects_per_slab();
  usize frames = c->frames_per_slab();
  constexpr usize kSlabs = 5;
  ktl::Array<void*, 1024> objects{};
  KASSERT_LE(per_slab * kSlabs, objects.size());
  for (usize i = 0; i < per_slab * kSlabs; ++i) objects[i] = c->alloc();
  mm::SlabInfo full = c->info();
  KEXPECT_EQ(full.full_slabs, kSlabs);
  KEXPECT_EQ(full.partial_slabs, 0u);
  KEXPECT_EQ(full.empty_slabs, 0u);
  c->free(objects[0]);
  KEXPECT_EQ(c->info().partial_slabs, 1u);
  for (usize i = 1; i < per_slab * kSlabs; ++i) c->free(objects[i]);
  mm::SlabInfo empty = c->info();
  KEXPECT_EQ(empty.empty_slabs, kSlabs);
  KEXPECT_EQ(empty.active, 0u);
  u64 free_before = env.pmm().free_frame_count();
  // Keeps kKeepEmptySlabs, returns the rest, and says how many frames that was.
  u64 freed = c->reclaim();
  KEXPECT_EQ(freed, (kSlabs - SlabCache::kKeepEmptySlabs) * frames);
  KEXPECT_EQ(env.pmm().free_frame_count(), free_before + freed);
  KEXPECT_EQ(c->info().empty_slabs, u64{SlabCache::kKeepEmptySlabs});
  // Bounded: asked for one frame, it frees one slab and stops; 0 frees nothing.
  KEXPECT_EQ(c->reclaim(0, 0), 0u);
  KEXPECT_EQ(c->reclaim(0, 1), u64{frames});
  KEXPECT_EQ(c->info().empty_slabs, u64{SlabCache::kKeepEmptySlabs} - 1);
  KEXPECT_EQ(c->reclaim(0), (SlabCache::kKeepEmptySlabs - 1) * frames);
  KEXPECT_EQ(c->info().slabs, 0u);
  KEXPECT_OK(env.slab().destroy_cache(c));
  KEXPECT_EQ(env.balance(), balance);
}

KTEST(Slab, DestroyIsRefusedWhileObjectsAreLive) {
  auto env = KTRY(TestHeap::create());
  SlabCache* c = KTRY(env.slab().create_cache("busy", 64, 8));
  void* p = c->alloc();
  auto r = env.slab().destroy_cache(c);
  KASSERT(r.is_err());
  KEXPECT_EQ(r.error(), SlabError::NotEmpty);
  c->free(p);
  KEXPECT_OK(env.slab().destroy_cache(c));
}

KTEST(Slab, ErrorsKeepTheirCause) {
  auto env = KTRY(TestHeap::create());
  // A second init is AlreadyInitialized (it was InvalidArgument, the error of a bad size).
  auto again = env.slab().init(env.frames());
  KASSERT(again.is_err());
  KEXPECT_EQ(again.error(), SlabError::AlreadyInitialized);
  auto bad_size = env.slab().create_cache("zero", 0, 8);
  KASSERT(bad_size.is_err());
  KEXPECT_EQ(bad_size.error(), SlabError::InvalidArgument);
  // A refused frame request keeps the PMM's cause (every refusal used to be OutOfMemory).
  KEXPECT_EQ(mm::to_slab_error(mm::PmmError::OutOfMemory), SlabError::OutOfMemory);
  KEXPECT_EQ(mm::to_slab_error(mm::PmmError::NotInitialized), SlabError::PmmNotInitialized);
  ktl::EnumTextCheck texts = ktl::check_enum_text<SlabError>();
  KEXPECT(texts.ok);
  KEXPECT_EQ(texts.count, ktl::to_underlying(SlabError::PmmNotInitialized) + 1);
}

KTEST(Slab, AlignmentIsHonoured) {
  auto env = KTRY(TestHeap::create());
  ktl::Array<usize, 5> alignments{{8, 16, 64, 256, 4096}};
  for (usize align : alignments) {
    SlabCache* c = KTRY(env.slab().create_cache("aligned", 100, align));
    ktl::Array<void*, 40> objects{};
    for (void*& p : objects) {
      p = c->alloc();
      KASSERT(p != nullptr);
      KEXPECT_EQ(addr(p) % align, 0u);
    }
    for (void* p : objects) c->free(p);
    KEXPECT_OK(env.slab().destroy_cache(c));
  }
  KEXPECT(env.slab().create_cache("bad", 100, 24).is_err());    // not a power of two
  KEXPECT(env.slab().create_cache("bad", 0, 8).is_err());       // empty objects
  KEXPECT(env.slab().create_cache("bad", 100, 8192).is_err());  // beyond a page
}

KTEST(Slab, OutOfMemoryReturnsNullAndRecovers) {
  auto env = KTRY(TestHeap::create());
  u64 balance = env.balance();
  SlabCache* c = KTRY(env.slab().create_cache("oom", 512, 8));
  c->free(c->alloc());  // one slab and this CPU's magazine exist now
  env.slab().fail_slab_allocations_after(0);
  ktl::Array<void*, 256> objects{};
  usize got = 0;
  for (void*& p : objects) {
    p = c->alloc();
    if (p != nullptr) ++got;
  }
  KEXPECT_EQ(got, usize{c->objects_per_slab()});  // exactly the one slab that was allowed
  env.slab().fail_slab_allocations_after(~u64{0});
  void* more = c->alloc();
  KEXPECT(more != nullptr);
  c->free(more);
  for (void* p : objects) c->free(p);  // free(nullptr) is a no-op
  KEXPECT_OK(env.slab().destroy_cache(c));
  KEXPECT_EQ(env.balance(), balance);
}

struct Tracked {
  static inline usize live = 0;
  explicit Tracked(u64 v) : value(v) { ++live; }
  ~Tracked() { --live; }
  u64 value;
  u64 pad[3]{};
};

KTEST(Slab, TypedCacheConstructsAndDestroys) {
  auto env = KTRY(TestHeap::create());
  {
    auto cache = KTRY(mm::Cache<Tracked>::create(env.slab(), "tracked"));
    {
      auto a = KTRY(cache.make(1u));
      auto b = KTRY(cache.make(2u));
      KEXPECT_EQ(Tracked::live, 2u);
      KEXPECT_EQ(a->value + b->value, 3u);
      KEXPECT_EQ(addr(a.get()) % alignof(Tracked), 0u);
      auto moved = ktl::move(a);
      KEXPECT(!a);
      KEXPECT_EQ(moved->value, 1u);
    }
    KEXPECT_EQ(Tracked::live, 0u);
    KEXPECT_EQ(cache.raw().object_size(), sizeof(Tracked));
  }  // ~Cache destroys the byte cache (it would panic with live objects)
}

KTEST(Slab, SeedApiOverTheInstalledAllocator) {
  auto env = KTRY(TestHeap::create());
  mm::SlabAllocator* previous = mm::installed_slab_allocator();
  mm::install_slab_allocator(&env.slab());
  SlabCache* c = mm::kmem_cache_create("seed", 72, 8, nullptr, CacheFlags::None);
  KASSERT(c != nullptr);
  void* p = mm::slab_alloc(c);
  KASSERT(p != nullptr);
  fill_pattern(p, 72, 9);
  KEXPECT(check_pattern(p, 72, 9));
  mm::slab_free(c, p);
  // Four slabs' worth, all freed: reclaim returns all but the kept empty slabs.
  ktl::Array<void*, 1024> objects{};
  usize n = ktl::min<usize>(objects.size(), usize{c->objects_per_slab()} * 4);
  for (usize i = 0; i < n; ++i) objects[i] = mm::slab_alloc(c);
  for (usize i = 0; i < n; ++i) mm::slab_free(c, objects[i]);
  c->flush_local_cpu();
  KEXPECT_LE(u64{c->frames_per_slab()} * 2, mm::slab_reclaim());
  KEXPECT_EQ(c->info().active, 0u);
  mm::kmem_cache_destroy(c);
  KEXPECT(mm::kmem_cache_create("bad", 0, 8, nullptr, CacheFlags::None) == nullptr);
  mm::install_slab_allocator(previous);
}

KTEST(Slab, MagazinesReturnRecentlyFreedObjectsFirst) {
  auto env = KTRY(TestHeap::create(mm::Hardening::Off));
  SlabCache* c = KTRY(env.slab().create_cache("lifo", 48, 16));
  KEXPECT_LT(0u, c->magazine_capacity());
  void* a = c->alloc();
  void* b = c->alloc();
  c->free(a);
  c->free(b);
  KEXPECT_EQ(c->alloc(), b);  // LIFO: cache-warm objects go out first
  KEXPECT_EQ(c->alloc(), a);
  c->free(a);
  c->free(b);
  // Full magazines reach the depot, which slabinfo reports as cached.
  ktl::Array<void*, 400> objects{};
  for (void*& p : objects) p = c->alloc();
  for (void* p : objects) c->free(p);
  c->flush_local_cpu();
  mm::SlabInfo info = c->info();
  KEXPECT_LT(0u, info.cached);
  KEXPECT_EQ(info.active, info.cached);  // all of them sit in depot magazines
  KEXPECT_OK(env.slab().destroy_cache(c));
}

KTEST(Slab, FreeListLinksAreStoredEncoded) {
  auto env = KTRY(TestHeap::create(mm::Hardening::Off));
  SlabCache* c = KTRY(env.slab().create_cache("links", 64, 8, nullptr, CacheFlags::NoCpuCache));
  void* a = c->alloc();
  void* b = c->alloc();
  void* d = c->alloc();
  c->free(a);
  c->free(b);               // b's link now points at a
#if !defined(FERRITE_ASAN)  // (under ASan the freed object is poisoned: not readable here)
  // The link sits in the middle of the object (offset 32 for 64 bytes): it is not a plain pointer.
  KTL_UNSAFE_BUFFER_BEGIN  // b is a live 64-byte object; its link sits at offset 32
  u64 raw = *reinterpret_cast<u64*>(ktl::Span<u8>::from_raw(static_cast<u8*>(b), 64).subspan(32, 8).data());
  KTL_UNSAFE_BUFFER_END
  KEXPECT_NE(raw, static_cast<u64>(addr(a)));
  KEXPECT_NE(raw, 0u);
#endif
  KEXPECT_EQ(c->alloc(), b);
  KEXPECT_EQ(c->alloc(), a);
  c->free(a);
  c->free(b);
  c->free(d);
  KEXPECT_OK(env.slab().destroy_cache(c));
}

KTEST(Slab, HardenedObjectsArePoisonedWhenFree) {
  auto env = KTRY(TestHeap::create(mm::Hardening::On));
  SlabCache* c = KTRY(env.slab().create_cache("poison", 64, 8, nullptr, CacheFlags::NoCpuCache));
  KEXPECT(c->hardened());
  KEXPECT_LT(64u, c->stride());  // room for the redzones and the metadata
  void* p = c->alloc();
  fill_pattern(p, 64, 3);
  c->free(p);
#if !defined(FERRITE_ASAN)
  // (Under ASan the freed bytes are poisoned in the shadow and may not be read here.)
  KTL_UNSAFE_BUFFER_BEGIN  // p is a 64-byte object of this cache
  ktl::Span<const u8> bytes = ktl::Span<const u8>::from_raw(static_cast<const u8*>(p), 64);
  KTL_UNSAFE_BUFFER_END
  usize poisoned = 0;
  for (u8 b : bytes) poisoned += b == 0x6b ? 1 : 0;
  KEXPECT_EQ(poisoned, 64u);
#endif
  void* q = c->alloc();  // the poison is checked and accepted on reuse
  KEXPECT_EQ(q, p);
  c->free(q);
  KEXPECT_OK(env.slab().destroy_cache(c));
}

}  // namespace
