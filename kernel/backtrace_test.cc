// kernel.backtrace: walking fake frame chains built in an array (host and in-kernel).
#include <ktest/ktest.h>

import ktl;
import ktest;
import kernel.backtrace;

namespace {

using ktl::u64;
using ktl::usize;

struct FakeStack {
  alignas(16) ktl::Array<u64, 64> words{};
  u64 addr(usize i) const { return ktl::address_of(&words.span()[i]); }
  kernel::StackBounds bounds() const { return {addr(0), addr(0) + sizeof(words)}; }
  // A frame at index i: [caller's rbp, return address].
  void frame(usize i, u64 next_rbp, u64 ret) {
    words[i] = next_rbp;
    words[i + 1] = ret;
  }
};

struct Collected {
  ktl::Array<u64, 16> rets{};
  usize n = 0;
};

kernel::WalkResult walk(const FakeStack& s, u64 rbp, Collected& c, usize max = 16) {
  kernel::StackBounds b[1] = {s.bounds()};
  return kernel::walk_frames(rbp, ktl::Span<const kernel::StackBounds>(b), max,
                             [&](u64 r) { c.rets[c.n++] = r; });
}

KTEST(Backtrace, FollowsTheChainToTheEnd) {
  FakeStack s;
  s.frame(4, s.addr(10), 0x1111);
  s.frame(10, s.addr(20), 0x2222);
  s.frame(20, 0, 0x3333);
  Collected c;
  auto r = walk(s, s.addr(4), c);
  KEXPECT_EQ(r.end, kernel::WalkEnd::Finished);
  KASSERT_EQ(c.n, 3u);
  KEXPECT_EQ(c.rets[0], 0x1111u);
  KEXPECT_EQ(c.rets[1], 0x2222u);
  KEXPECT_EQ(c.rets[2], 0x3333u);
}

KTEST(Backtrace, StopsAtImplausibleFrames) {
  FakeStack s;
  s.frame(4, s.addr(2), 0x1111);  // points down the stack: a loop or garbage
  Collected c;
  KEXPECT_EQ(walk(s, s.addr(4), c).end, kernel::WalkEnd::NotAscending);
  KEXPECT_EQ(c.n, 1u);

  FakeStack out;
  out.frame(4, 0xdead'0000, 0x1111);  // leaves the stack: never read
  Collected c2;
  auto r = walk(out, out.addr(4), c2);
  KEXPECT_EQ(r.end, kernel::WalkEnd::OutsideStacks);
  KEXPECT_EQ(r.frames, 1u);

  Collected c3;
  KEXPECT_EQ(walk(s, s.addr(4) + 4, c3).end, kernel::WalkEnd::Misaligned);
  KEXPECT_EQ(c3.n, 0u);

  FakeStack deep;
  for (usize i = 0; i + 3 < 64; i += 2) deep.frame(i, deep.addr(i + 2), 0x1000 + i);
  Collected c4;
  KEXPECT_EQ(walk(deep, deep.addr(0), c4, 5).end, kernel::WalkEnd::Limit);
  KEXPECT_EQ(c4.n, 5u);
}

}  // namespace
