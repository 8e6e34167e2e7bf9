// mm.slab.types: the vocabulary of the slab allocator (mm.slab, which re-exports it): errors, cache
// flags, hardening, slabinfo lines and the allocator's options.
export module mm.slab.types;

import ktl;
import mm.addr;

export namespace mm {

enum class SlabError : u32 {
  OutOfMemory,         // no frames for a slab, a magazine or a descriptor
  InvalidArgument,     // zero or oversized object size, alignment not a power of two, ...
  TooManyCaches,       // no per-CPU slot left (slab_cpu::kMaxSlots)
  NotEmpty,            // destroy with live objects
  NotInitialized,      // the slab allocator has not been initialized
  AlreadyInitialized,  // SlabAllocator::init called twice
  PmmNotInitialized,   // the PMM the frames come from is not initialized
};
[[nodiscard]] constexpr const char* to_string(SlabError e) {
  switch (e) {
    case SlabError::OutOfMemory: return "out of memory";
    case SlabError::InvalidArgument: return "invalid argument";
    case SlabError::TooManyCaches: return "too many caches";
    case SlabError::NotEmpty: return "cache still has live objects";
    case SlabError::NotInitialized: return "slab allocator not initialized";
    case SlabError::AlreadyInitialized: return "slab allocator already initialized";
    case SlabError::PmmNotInitialized: return "the PMM is not initialized";
  }
  return "unknown slab error";
}

enum class CacheFlags : u32 {
  None = 0,
  Hardened = 1u << 0,    // redzones, poisoning, live/free state (see mm.slab)
  NoCpuCache = 1u << 1,  // no magazines: every operation goes to the slab layer under the lock
};
[[nodiscard]] constexpr CacheFlags operator|(CacheFlags a, CacheFlags b) {
  return static_cast<CacheFlags>(ktl::to_underlying(a) | ktl::to_underlying(b));
}
[[nodiscard]] constexpr bool has(CacheFlags set, CacheFlags flag) {
  return (ktl::to_underlying(set) & ktl::to_underlying(flag)) != 0;
}

enum class Hardening : u32 { Off, On };

// Runs once per object, when its slab is created (not on every allocation): freed objects go back
// in their constructed state (Bonwick's object caching).
using Constructor = void (*)(void* object);

// One line of slabinfo. objects = slots in all slabs; active = slots not on a slab free list
// (live objects plus those cached in magazines); cached = objects in the depot's magazines (the
// CPUs' own magazines are not counted: they change without a lock); waste = slab bytes that are
// not object payload (tail, padding, redzones, metadata, on-slab descriptors).
struct SlabInfo {
  ktl::StringView name;
  u64 object_size = 0;
  u64 stride = 0;
  u64 align = 0;
  u64 objects_per_slab = 0;
  u64 frames_per_slab = 0;
  u64 objects = 0;
  u64 active = 0;
  u64 cached = 0;
  u64 slabs = 0;
  u64 partial_slabs = 0;
  u64 full_slabs = 0;
  u64 empty_slabs = 0;
  u64 frames = 0;
  u64 waste_bytes = 0;
};
void format_value(ktl::FormatSink& sink, const SlabInfo& info, const ktl::FormatSpec& spec);

struct SlabOptions {
  Hardening hardening = Hardening::Off;
  u64 seed = 0x5eed;  // mixed into every cache's free-list secret
};

}  // namespace mm
