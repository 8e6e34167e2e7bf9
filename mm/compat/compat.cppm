// mm.compat: the C-style names of Ferrite's two design documents, as thin free functions over the
// installed global instances. Nothing in mm or the kernel uses them; they exist so code written
// against the documents (and the tests that pin their behaviour) keeps working.
//
//   English design document ("bitmap physical allocator", "slab allocator with reclaim"):
//     set_page_used, set_page_free, alloc_physical_page, pmm_alloc_page, pmm_free_page,
//     kmem_cache_create, kmem_cache_destroy, slab_alloc, slab_free, slab_reclaim
//   Spanish design document: the same allocator functions (kmalloc/krealloc/kfree are mm.heap's
//   own API, not here).
//
// Each maps to one typed call:
//   alloc_physical_page()  -> global_pmm()->alloc_page()            (owned AllocatedFrames)
//   set_page_used(f)       -> global_pmm()->claim_page(f)           (owned AllocatedFrames)
//   set_page_free(f)       -> global_pmm()->free_page(f)
//   pmm_alloc_page()       -> global_pmm()->alloc_page_unowned()    (caller frees)
//   pmm_free_page(f)       -> global_pmm()->free_page(f)
//   kmem_cache_create(...) -> installed_slab_allocator()->create_cache(...), null on error (logged)
//   kmem_cache_destroy(c)  -> installed_slab_allocator()->destroy_cache(c), panics if objects live
//   slab_alloc/slab_free   -> SlabCache::alloc/free
//   slab_reclaim()         -> installed_slab_allocator()->reclaim(), 0 without one
// The PMM functions return PmmError::NotInstalled when no global Pmm is installed.
module;

#include <ktl/macros.h>

export module mm.compat;

import ktl;
import mm.addr;
import mm.pmm;
import mm.slab;

export namespace mm {

[[nodiscard]] ktl::Result<AllocatedFrames, PmmError> alloc_physical_page(const AllocOptions& options = {});
[[nodiscard]] ktl::Result<AllocatedFrames, PmmError> set_page_used(Frame4K frame);
[[nodiscard]] ktl::Result<void, PmmError> set_page_free(Frame4K frame);
[[nodiscard]] ktl::Result<Frame4K, PmmError> pmm_alloc_page();
[[nodiscard]] ktl::Result<void, PmmError> pmm_free_page(Frame4K frame);

[[nodiscard]] SlabCache* kmem_cache_create(const char* name, usize size, usize align, Constructor ctor,
                                           CacheFlags flags);
void kmem_cache_destroy(SlabCache* cache);
[[nodiscard]] void* slab_alloc(SlabCache* cache);
void slab_free(SlabCache* cache, void* object);
u64 slab_reclaim();

}  // namespace mm
