// mm.compat: implementation (see compat.cppm).
module;

#include <ktl/macros.h>

module mm.compat;

import ktl;
import mm.addr;
import mm.pmm;
import mm.slab;

namespace mm {

ktl::Result<AllocatedFrames, PmmError> alloc_physical_page(const AllocOptions& options) {
  Pmm* p = global_pmm();
  if (p == nullptr) return ktl::Err(PmmError::NotInstalled);
  return p->alloc_page(options);
}

ktl::Result<AllocatedFrames, PmmError> set_page_used(Frame4K frame) {
  Pmm* p = global_pmm();
  if (p == nullptr) return ktl::Err(PmmError::NotInstalled);
  return p->claim_page(frame);
}

ktl::Result<void, PmmError> set_page_free(Frame4K frame) {
  Pmm* p = global_pmm();
  if (p == nullptr) return ktl::Err(PmmError::NotInstalled);
  return p->free_page(frame);
}

ktl::Result<Frame4K, PmmError> pmm_alloc_page() {
  Pmm* p = global_pmm();
  if (p == nullptr) return ktl::Err(PmmError::NotInstalled);
  return p->alloc_page_unowned();
}

ktl::Result<void, PmmError> pmm_free_page(Frame4K frame) { return set_page_free(frame); }

SlabCache* kmem_cache_create(const char* name, usize size, usize align, Constructor ctor, CacheFlags flags) {
  SlabAllocator* slab = installed_slab_allocator();
  if (slab == nullptr) {
    ktl::log::error("kmem_cache_create({}): no slab allocator installed", name);
    return nullptr;
  }
  auto r = slab->create_cache(name, size, align, ctor, flags);
  if (r.is_err()) {
    ktl::log::error("kmem_cache_create({}, {}, {}): {}", name, size, align, r.error());
    return nullptr;
  }
  return r.value();
}

void kmem_cache_destroy(SlabCache* cache) {
  if (cache == nullptr) return;
  SlabAllocator* slab = installed_slab_allocator();
  ktl::check(slab != nullptr, "kmem_cache_destroy: no slab allocator installed");
  auto r = slab->destroy_cache(cache);
  ktl::check_ok(r, "kmem_cache_destroy: the cache still has live objects");
}

void* slab_alloc(SlabCache* cache) { return cache->alloc(); }
void slab_free(SlabCache* cache, void* object) { cache->free(object); }

u64 slab_reclaim() {
  SlabAllocator* slab = installed_slab_allocator();
  return slab == nullptr ? 0 : slab->reclaim();
}

}  // namespace mm
