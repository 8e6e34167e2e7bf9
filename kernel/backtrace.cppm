// kernel.backtrace: walking the frame-pointer chain (the kernel is built with
// -fno-omit-frame-pointer, see tools/toolchain/BUILD).
//
// Each frame is [rbp] = the caller's rbp, [rbp + 8] = the return address. The walk reads memory
// only inside the stacks it is given and stops at the first frame that is not plausible (rbp 0,
// misaligned, outside every stack, not moving towards the stack's top), so a corrupted stack
// ends the backtrace instead of faulting inside the panic report. Pure: host tests build fake
// stacks in arrays (backtrace_test.cc).
module;

#include <ktl/macros.h>

export module kernel.backtrace;

import ktl;

export namespace kernel {

using ktl::u64;
using ktl::usize;

struct StackBounds {
  u64 bottom;
  u64 top;  // exclusive
  [[nodiscard]] constexpr bool holds(u64 address, u64 size) const {
    return address >= bottom && address < top && size <= top - address;
  }
};

enum class WalkEnd { Finished, OutsideStacks, Misaligned, NotAscending, Limit };
[[nodiscard]] constexpr const char* to_string(WalkEnd e) {
  switch (e) {
    case WalkEnd::Finished: return "end of chain";
    case WalkEnd::OutsideStacks: return "frame pointer outside the known stacks";
    case WalkEnd::Misaligned: return "misaligned frame pointer";
    case WalkEnd::NotAscending: return "frame pointer does not move up the stack";
    case WalkEnd::Limit: return "frame limit reached";
  }
  return "?";
}

struct WalkResult {
  usize frames;
  WalkEnd end;
};

// Calls visit(return_address) for each frame, from the innermost caller outwards.
template <class Visit>
WalkResult walk_frames(u64 rbp, ktl::Span<const StackBounds> stacks, usize max_frames, Visit&& visit) {
  usize n = 0;
  while (true) {
    if (rbp == 0) return {n, WalkEnd::Finished};
    if (n == max_frames) return {n, WalkEnd::Limit};
    if ((rbp & 7) != 0) return {n, WalkEnd::Misaligned};
    const StackBounds* in = nullptr;
    for (const StackBounds& s : stacks) {
      if (s.holds(rbp, 16)) in = &s;
    }
    if (in == nullptr) return {n, WalkEnd::OutsideStacks};
    KTL_UNSAFE_BUFFER_BEGIN  // inside a known stack (checked just above): these two loads cannot fault
    u64 next = *reinterpret_cast<const u64*>(static_cast<ktl::uptr>(rbp));
    u64 ret = *reinterpret_cast<const u64*>(static_cast<ktl::uptr>(rbp + 8));
    KTL_UNSAFE_BUFFER_END
    if (ret == 0) return {n, WalkEnd::Finished};
    visit(ret);
    ++n;
    if (next != 0 && in->holds(next, 16) && next <= rbp) return {n, WalkEnd::NotAscending};
    rbp = next;
  }
}

}  // namespace kernel
