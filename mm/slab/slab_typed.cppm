// mm.slab.typed: the typed surface of mm.slab (Cache<T>, SlabBox<T>).
module;

#include <ktl/macros.h>
#include <ktl/new.h>

export module mm.slab.typed;

import ktl;
import mm.slab;

export namespace mm {

// An owned object of a Cache<T>: destroys and frees it when it goes away. Move-only.
template <class T>
class SlabBox {
 public:
  SlabBox() = default;
  inline SlabBox(SlabCache& cache, T* object) : cache_(&cache), object_(object) {}
  SlabBox(const SlabBox&) = delete;
  SlabBox& operator=(const SlabBox&) = delete;
  inline SlabBox(SlabBox&& o) : cache_(o.cache_), object_(ktl::exchange(o.object_, nullptr)) {}
  inline SlabBox& operator=(SlabBox&& o) {
    if (this != &o) {
      reset();
      cache_ = o.cache_;
      object_ = ktl::exchange(o.object_, nullptr);
    }
    return *this;
  }
  inline ~SlabBox() { reset(); }
  inline void reset() {
    if (T* p = ktl::exchange(object_, nullptr)) {
      p->~T();
      cache_->free(p);
    }
  }
  [[nodiscard]] inline T* get() const { return object_; }
  inline T* operator->() const { return object_; }
  inline T& operator*() const { return *object_; }
  inline explicit operator bool() const { return object_ != nullptr; }

 private:
  SlabCache* cache_ = nullptr;
  T* object_ = nullptr;
};

// A cache of T: make() constructs with placement new and returns an owner. Destroying the Cache
// destroys the byte cache (all objects must be gone). Move-only.
template <class T>
class Cache {
 public:
  [[nodiscard]] static ktl::Result<Cache, SlabError> create(SlabAllocator& slab, ktl::StringView name,
                                                            CacheFlags flags = CacheFlags::None) {
    SlabCache* c = TRY(slab.create_cache(name, sizeof(T), alignof(T), nullptr, flags));
    return Cache(slab, c);
  }
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  inline Cache(Cache&& o) : slab_(o.slab_), cache_(ktl::exchange(o.cache_, nullptr)) {}
  Cache& operator=(Cache&&) = delete;
  inline ~Cache() {
    if (cache_ != nullptr) {
      auto r = slab_->destroy_cache(cache_);
      ktl::check_ok(r, "Cache<T> destroyed while objects are live");
    }
  }
  template <class... A>
  [[nodiscard]] inline ktl::Result<SlabBox<T>, SlabError> make(A&&... args) {
    void* p = cache_->alloc();
    if (p == nullptr) return ktl::Err(SlabError::OutOfMemory);
    return SlabBox<T>(*cache_, new (p) T(ktl::forward<A>(args)...));
  }
  [[nodiscard]] inline SlabCache& raw() const { return *cache_; }

 private:
  inline Cache(SlabAllocator& slab, SlabCache* cache) : slab_(&slab), cache_(cache) {}
  SlabAllocator* slab_;
  SlabCache* cache_;
};

}  // namespace mm
