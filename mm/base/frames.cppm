// mm.frames: the narrow interface through which code that needs physical frames (page tables,
// slabs) gets them, without depending on a particular allocator. The PMM (mm.pmm) implements it;
// tests may implement it over simulated memory to inject failures.
module;

#include <ktl/macros.h>

export module mm.frames;

import ktl;
import mm.addr;

export namespace mm {

enum class FrameError : ktl::u32 {
  OutOfMemory,     // no frame satisfies the request
  InvalidRequest,  // zero count, alignment not a power of two, ...
  NotInitialized,  // the allocator has no memory map yet
};

[[nodiscard]] constexpr const char* to_string(FrameError e) {
  switch (e) {
    case FrameError::OutOfMemory: return "out of physical memory";
    case FrameError::InvalidRequest: return "invalid frame request";
    case FrameError::NotInitialized: return "frame allocator not initialized";
  }
  return "unknown frame error";
}

// What an allocation may do to get memory (Linux's GFP_KERNEL / GFP_NOFS-like / GFP_ATOMIC). Every
// allocation entry point that can take a path which blocks (a lock that is not interrupt-safe, a
// wait) or reclaims takes one and refuses that path when the context forbids it; the heap's large
// objects are such a path (HeapError::WouldBlock). The PMM never blocks; it keeps its last
// Pmm::atomic_reserve() frames for Atomic requests (AllocOptions::context). Nothing reclaims yet.
enum class AllocContext : ktl::u8 {
  MayBlock,   // process context, no spinlock held: may block and (once there is reclaim) reclaim
  NoReclaim,  // may block but must not reclaim (the reclaim path itself)
  Atomic,     // interrupt context or a spinlock held: never blocks, never reclaims
};
[[nodiscard]] constexpr const char* to_string(AllocContext c) {
  switch (c) {
    case AllocContext::MayBlock: return "may block";
    case AllocContext::NoReclaim: return "no reclaim";
    case AllocContext::Atomic: return "atomic";
  }
  return "unknown allocation context";
}
[[nodiscard]] constexpr bool may_block(AllocContext c) { return c != AllocContext::Atomic; }
[[nodiscard]] constexpr bool may_reclaim(AllocContext c) { return c == AllocContext::MayBlock; }

class FrameAllocator {
 public:
  // One 4 KiB frame, contents unspecified.
  [[nodiscard]] virtual ktl::Result<Frame4K, FrameError> allocate_frame() = 0;
  // Returns a frame obtained from allocate_frame(). Freeing anything else is a bug the
  // implementation detects and reports (it never corrupts its state).
  virtual void free_frame(Frame4K frame) = 0;

 protected:
  ~FrameAllocator() = default;
};

}  // namespace mm
