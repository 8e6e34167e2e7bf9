// mm.slab: SlabAllocator, fork and the installed allocator.
module;

#include <ktl/macros.h>

module mm.slab;

import ktl;
import mm.addr;
import mm.frame_table;
import mm.pmm;
import mm.slab.cpu;

namespace mm {

namespace {

ktl::Atomic<SlabAllocator*> g_installed{nullptr};

u64 splitmix64(u64 x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

SlabError to_slab_error(PmmError e) {
  switch (e) {
    case PmmError::OutOfMemory: return SlabError::OutOfMemory;
    case PmmError::NotInitialized: return SlabError::PmmNotInitialized;
    default: ktl::panic("slab: the PMM refused a frame request with an impossible error", to_string(e));
  }
}

u64 SlabAllocator::next_secret() {
  return splitmix64(options_.seed ^ splitmix64(secret_counter_.fetch_add(1) + addr(this)));
}

ktl::Result<void, SlabError> SlabAllocator::init(FrameTable& frames, const SlabOptions& options) {
  if (frames_ != nullptr) return ktl::Err(SlabError::AlreadyInitialized);
  ktl::check(frames.initialized(), "SlabAllocator::init: the frame table is not initialized");
  options_ = options;
  frames_ = &frames;
  owners_ = frames.owners();
  TRY(desc_cache_.setup(*this, "slab-desc", sizeof(SlabDesc), alignof(SlabDesc), nullptr, CacheFlags::None,
                        next_secret(), true));
  register_cache(&desc_cache_);
  for (u32 k = 0; k < kMagazineKinds; ++k) {
    ktl::InlineString<32> name;
    ktl::format_to(name, "slab-magazine-{}", kMagazineCapacity[k]);
    TRY(magazine_cache(k).setup(*this, name.view(), Magazine::bytes_for(kMagazineCapacity[k]), 8, nullptr,
                                CacheFlags::None, next_secret(), true));
    register_cache(&magazine_cache(k));
  }
  TRY(cache_cache_.setup(*this, "slab-cache", sizeof(SlabCache), alignof(SlabCache), nullptr,
                         CacheFlags::None, next_secret(), true));
  register_cache(&cache_cache_);
  return ktl::ok();
}

SlabAllocator::~SlabAllocator() {
  if (frames_ == nullptr) return;
  for (;;) {
    SlabCache* c = nullptr;
    {
      ktl::LockGuard guard(registry_lock_);
      for (SlabCache* i = registry_; i != nullptr; i = i->registry_next_) {
        if (!i->internal_) {
          c = i;
          break;
        }
      }
    }
    if (c == nullptr) break;
    auto r = destroy_cache(c);
    ktl::check_ok(r, "SlabAllocator destroyed while a cache has live objects");
  }
  cache_cache_.teardown();
  for (u32 k = 0; k < kMagazineKinds; ++k) magazine_cache(k).teardown();
  desc_cache_.teardown();
  if (installed_slab_allocator() == this) install_slab_allocator(nullptr);
}

void SlabAllocator::register_cache(SlabCache* cache) {
  ktl::LockGuard guard(registry_lock_);
  cache->registry_next_ = registry_;
  registry_ = cache;
}

void SlabAllocator::unregister_cache(SlabCache* cache) {
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache** p = &registry_; *p != nullptr; p = &(*p)->registry_next_) {
    if (*p == cache) {
      *p = cache->registry_next_;
      return;
    }
  }
}

ktl::Result<AllocatedFrames, SlabError> SlabAllocator::alloc_slab_frames(u32 frames, AllocContext context) {
  u64 budget = fail_after_.load(ktl::MemoryOrder::Relaxed);
  if (budget != ~u64{0}) {
    if (budget == 0) return ktl::Err(SlabError::OutOfMemory);
    fail_after_.fetch_sub(1, ktl::MemoryOrder::Relaxed);
  }
  AllocOptions options;
  options.context = context;
  auto r = pmm().alloc_contiguous(frames, kPageSize, options);
  if (r.is_err()) return ktl::Err(to_slab_error(r.error()));
  return r.release_value();
}

ktl::Result<SlabCache*, SlabError> SlabAllocator::create_cache(ktl::StringView name, usize size, usize align,
                                                               Constructor ctor, CacheFlags flags) {
  if (frames_ == nullptr) return ktl::Err(SlabError::NotInitialized);
  void* place = cache_cache_.alloc();
  if (place == nullptr) return ktl::Err(SlabError::OutOfMemory);
  auto* cache = new (place) SlabCache();
  auto r = cache->setup(*this, name, size, align, ctor, flags, next_secret(), false);
  if (r.is_err()) {
    if (cache->cpu_slot_ != slab_cpu::kNoSlot) {
      ktl::LockGuard guard(slab_cpu::g_registry_lock);
      g_slot_owner[cache->cpu_slot_] = nullptr;
    }
    cache->~SlabCache();
    cache_cache_.free_known(place);
    return ktl::Err(r.release_error());
  }
  register_cache(cache);
  return cache;
}

ktl::Result<void, SlabError> SlabAllocator::destroy_cache(SlabCache* cache) {
  ktl::check(cache != nullptr && cache->owner_ == this && !cache->internal_,
             "destroy_cache: not a cache of this allocator");
  if (cache->cpu_slot_ != slab_cpu::kNoSlot) {
    u32 slot = cache->cpu_slot_;
    slab_cpu::for_each_block([&](CpuBlock& block) { cache->return_magazines(block.slots[slot]); });
  }
  {
    ktl::LockGuard guard(cache->lock_);
    cache->purge_depot_locked();
    if (cache->inuse_ != 0) return ktl::Err(SlabError::NotEmpty);
  }
  unregister_cache(cache);
  if (cache->cpu_slot_ != slab_cpu::kNoSlot) {
    ktl::LockGuard guard(slab_cpu::g_registry_lock);
    g_slot_owner[cache->cpu_slot_] = nullptr;
  }
  cache->teardown();
  cache->~SlabCache();
  cache_cache_.free_known(cache);
  return ktl::ok();
}

u64 SlabAllocator::reclaim(u32 keep, u64 max_frames) {
  // Ordinary caches first (they free magazines and off-slab descriptors into the internal caches,
  // which come last in the registry because they were registered first).
  u64 freed = 0;
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache* c = registry_; c != nullptr && freed < max_frames; c = c->registry_next_) {
    freed += c->reclaim(keep, max_frames - freed);
  }
  return freed;
}

u64 SlabAllocator::live_objects() {
  flush_local_cpu();
  u64 live = 0;
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) {
    if (c->internal_) continue;
    SlabInfo i = c->info();
    live += i.active - i.cached;
  }
  return live;
}

usize SlabAllocator::cache_count() const {
  ktl::LockGuard guard(registry_lock_);
  usize n = 0;
  for (const SlabCache* c = registry_; c != nullptr; c = c->registry_next_) ++n;
  return n;
}

void SlabAllocator::flush_local_cpu() {
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) c->flush_local_cpu();
}

// --- fork -------------------------------------------------------------------------------------------------
// Unchecked (see the declarations): they leave a run-time set of cache locks held / released.
void SlabAllocator::lock_caches(CacheKind kind) {
  for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) {
    if (c->internal_ == (kind == CacheKind::Internal)) c->lock_.lock_ordered();
  }
}

void SlabAllocator::unlock_caches_reverse(CacheKind kind) {
  // The registry is singly linked: each step finds the last cache of the kind before the one just
  // unlocked (quadratic in a few dozen caches, once per fork).
  for (SlabCache* end = nullptr;;) {
    SlabCache* last = nullptr;
    for (SlabCache* c = registry_; c != end; c = c->registry_next_) {
      if (c->internal_ == (kind == CacheKind::Internal)) last = c;
    }
    if (last == nullptr) return;
    last->lock_.unlock_ordered();
    end = last;
  }
}

void SlabAllocator::lock_all() {
  registry_lock_.lock();
  slab_cpu::g_registry_lock.lock();
  lock_caches(CacheKind::Ordinary);
  lock_caches(CacheKind::Internal);
}

void SlabAllocator::unlock_all() {
  unlock_caches_reverse(CacheKind::Internal);
  unlock_caches_reverse(CacheKind::Ordinary);
  slab_cpu::g_registry_lock.unlock();
  registry_lock_.unlock();
}

// --- the installed allocator (what mm.compat's seed names use) ------------------------------------
void install_slab_allocator(SlabAllocator* slab) { g_installed.store(slab, ktl::MemoryOrder::Release); }
SlabAllocator* installed_slab_allocator() { return g_installed.load(ktl::MemoryOrder::Acquire); }

}  // namespace mm
