// libFuzzer target for mm.heap: the input is a stream of kmalloc / kcalloc / kmalloc_aligned /
// krealloc / kfree / reclaim operations on 64 slots, run on a hardened host heap. Every block is
// filled with a pattern of its own; every byte is checked when the block is reallocated or freed,
// alignment and zeroing rules are checked on allocation, and at the end of each input every block
// is freed: no object may stay live, and (checked every 64 inputs) every frame must be back.
//
// Op layout (reads past the end yield zeros, so any byte string is valid):
//   op:u8 slot:u8 a:u16 b:u8   op % 7: 0 kmalloc  1 kcalloc  2 krealloc  3 kfree  4 aligned
//                                       5 krealloc(p, 0)  6 reclaim
//   size = a, scaled by b >> 6: x1, x4, x32 (up to 2 MiB), x1 again.
//
// Work per input is bounded by a byte budget (kByteBudget): every size an allocation or krealloc
// asks for is charged to it, and a request larger than what is left becomes its remainder modulo
// (left + 1), so an input fills, checks and maps at most a few MiB however long it is. One request
// of the largest size still fits the budget; the operations after it exercise the small classes.
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() replays the files given as arguments
// (heap_corpus_test runs the checked-in corpus that way, also under asan).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ktl/macros.h>

#include "testing/fuzz/corpus_replay.h"

import ktl;
import mm.heap;
import mm.heap.host;
import mm.slab;

namespace {

using mm::heap_host::HostHeap;

struct Slot {
  std::uint8_t* p = nullptr;
  std::size_t size = 0;
  std::uint8_t tag = 0;
};

[[noreturn]] void fail(const char* what, std::size_t a, std::size_t b) {
  std::fprintf(stderr, "heap_fuzz: %s (%zu, %zu)\n", what, a, b);
  std::abort();
}

HostHeap& host() {
  static HostHeap* h = [] {
    mm::heap_host::HostHeapOptions options;
    options.phys_bytes = std::uint64_t{256} << 20;
    options.hardening = mm::Hardening::On;
    return new HostHeap(options);
  }();
  return *h;
}

std::uint64_t balance(HostHeap& h) {
  h.heap().slab().flush_local_cpu();
  (void)h.heap().reclaim(0);
  return h.accounted_free_frames() + h.heap().stats().metadata_frames;
}

// Blocks hold their tag byte everywhere. Whole blocks are compared with memset/memcmp (a block
// equals its tag everywhere iff its first byte is the tag and it equals itself shifted by one):
// the fuzzer's instrumentation makes byte loops over megabytes too slow for useful throughput.
bool all_bytes(const std::uint8_t* p, std::size_t n, std::uint8_t value) {
  return n == 0 || (p[0] == value && std::memcmp(p, p + 1, n - 1) == 0);
}
void fill(Slot& s) { std::memset(s.p, s.tag, s.size); }
void check(const Slot& s, std::size_t n) {
  if (!all_bytes(s.p, n, s.tag)) fail("block contents changed", n, s.size);
}
void check_new(const void* p, std::size_t size, std::size_t align) {
  auto a = ktl::address_of(p);
  std::size_t want = align > 16 ? align : (size <= 8 ? 8 : 16);
  if (a % want != 0) fail("misaligned block", a, want);
}

// Bytes one input may ask for in total (see the input layout above): one request of the largest
// size (65535 * 32) and a little more. Each byte requested costs a fill and a check (and, above
// the slab classes, mapping and showing its pages), so this bounds an input's cost.
constexpr std::size_t kByteBudget = std::size_t{512} << 10;

// The size an operation actually asks for: `n`, or what is left of the budget when `n` does not
// fit (n modulo left + 1); charged to the budget.
std::size_t charge(std::size_t n, std::size_t& left) {
  if (n > left) n %= left + 1;
  left -= n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  HostHeap& h = host();
  mm::Heap& heap = h.heap();
  static std::uint64_t baseline = balance(h);
  Slot slots[64];
  std::size_t at = 0;
  auto byte = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };
  std::uint8_t counter = 0;
  std::size_t left = kByteBudget;
  while (at < size) {
    std::uint8_t op = byte() % 7;
    Slot& s = slots[byte() % 64];
    std::size_t a = byte();
    a |= std::size_t{byte()} << 8;
    std::uint8_t b = byte();
    static const std::size_t kScale[4] = {1, 4, 32, 1};
    std::size_t n = a * kScale[b >> 6];
    if (op != 3 && op != 5 && op != 6) n = charge(n, left);
    switch (op) {
      case 0:
      case 1:
      case 4: {
        if (s.p != nullptr) {
          check(s, s.size);
          heap.kfree(s.p);
        }
        std::size_t align = op == 4 ? std::size_t{1} << (b % 14) : 0;
        void* p = op == 0   ? heap.kmalloc(n)
                  : op == 1 ? heap.kcalloc(b % 16 + 1, n / 16)
                            : heap.kmalloc_aligned(n, align);
        std::size_t got = op == 1 ? (b % 16 + 1) * (n / 16) : n;
        s = Slot{static_cast<std::uint8_t*>(p), got, ++counter};
        if (p == nullptr) {
          s.size = 0;
          break;
        }
        check_new(p, got, align);
        if (op == 1 && !all_bytes(s.p, got, 0)) fail("kcalloc memory not zeroed", got, 0);
        if (heap.usable_size(p) < got) fail("usable size below the request", heap.usable_size(p), got);
        fill(s);
        break;
      }
      case 2:
      case 5: {
        std::size_t to = op == 5 ? 0 : n;
        check(s, s.size);
        void* p = heap.krealloc(s.p, to);
        if (p == nullptr) break;  // s unchanged
        s.p = static_cast<std::uint8_t*>(p);
        check(s, to < s.size ? to : s.size);
        s.size = to;
        s.tag = ++counter;
        check_new(p, to, 0);
        fill(s);
        break;
      }
      case 3:
        if (s.p != nullptr) check(s, s.size);
        heap.kfree(s.p);  // kfree(nullptr) is a no-op
        s = Slot{};
        break;
      case 6: (void)heap.reclaim(b % 3); break;
    }
  }
  for (Slot& s : slots) {
    if (s.p == nullptr) continue;
    check(s, s.size);
    heap.kfree(s.p);
  }
  // Every input must leave no live object; every 64 inputs, every frame must be back too (that
  // check drains all caches, which makes the next input rebuild its slabs: too slow for each one).
  if (std::uint64_t live = heap.slab().live_objects(); live != 0)
    fail("objects leaked over one input", live, 0);
  if (heap.large_objects().stats().objects != 0)
    fail("large objects leaked over one input", heap.large_objects().stats().objects, 0);
  static unsigned inputs = 0;
  if (++inputs % 64 == 0) {
    std::uint64_t now = balance(h);
    if (now != baseline)
      fail("frames leaked", static_cast<std::size_t>(baseline), static_cast<std::size_t>(now));
  }
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "mm/heap/heap_corpus", LLVMFuzzerTestOneInput, "heap_fuzz");
}
#endif
