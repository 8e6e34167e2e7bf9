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
