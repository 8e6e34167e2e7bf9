// libFuzzer target for mm.paging: an input is a format selector and a stream of operations (map,
// unmap, protect at every page size, range operations, reclaim, allocation-failure injection),
// run on the engine and on the shadow model of mm/paging/paging_model.h. Any disagreement (outcome, frame,
// flush range, translations against the software walker, table accounting) aborts.
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() replays the files given as arguments
// or, with none, the checked-in corpus (mm/paging/paging_corpus) from the runfiles: that is what
// paging_corpus_test does, also under asan.
//
// Input layout: byte 0 selects the format (x86_64, x86_32, aarch64 TTBR0, aarch64 TTBR1); then
// 12-byte records: kind, 3 address bytes, level, 2 size bytes, flags, 3 physical-address bytes,
// control (bit 0: HugePages::Deny; bits 1-3: fail the allocation after that many, 7 = never).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mm/paging/paging_model.h"

#include "testing/fuzz/corpus_replay.h"

namespace {

using paging_model::Harness;
using paging_model::Op;
using paging_model::OpKind;
using std::uint64_t;
namespace paging = mm::paging;

constexpr std::size_t kRecord = 12;

[[noreturn]] void fail(const std::string& what, const Op& op, std::size_t index) {
  std::fprintf(stderr, "paging_fuzz: operation %zu (%s): %s\n", index, paging_model::describe(op).c_str(),
               what.c_str());
  std::abort();
}

template <class F>
Op decode(const std::uint8_t* r) {
  using M = paging_model::Model<F>;
  Op op;
  op.kind = static_cast<OpKind>(r[0] % static_cast<unsigned>(OpKind::kCount));
  // The address: a few root slots, gigabytes, 2 MiB blocks and pages, so operations collide.
  uint64_t a = r[1] | (uint64_t{r[2]} << 8) | (uint64_t{r[3]} << 16);
  uint64_t page = (a & 0x100) ? (a & 0xff) % (uint64_t{1} << F::kIndexBits) : (a & 7);
  if constexpr (F::kLevels == 2) {
    op.va = (1 + (a >> 9) % 6) * M::size(1) + page * 4096;
  } else {
    uint64_t half = 0;
    if constexpr (ktl::is_same<F, paging::Aarch64Upper>) half = uint64_t{1} << 47;
    if constexpr (ktl::is_same<F, paging::X86_64>) half = (a >> 23) & 1 ? uint64_t{1} << 47 : 0;
    op.va = half + (1 + ((a >> 9) & 1)) * M::size(3) + ((a >> 10) % 3) * M::size(2) +
            ((a >> 13) % 4) * M::size(1) + page * 4096;
  }
  op.level = r[4] % (F::kLargestLeafLevel + 1);
  uint64_t n = r[5] | (uint64_t{r[6]} << 8);
  std::uint8_t f = r[7];
  op.flags = mm::PageFlags()
                 .with((f & 1) ? mm::Access::ReadWrite : mm::Access::ReadOnly)
                 .with((f & 2) ? mm::Exec::Yes : mm::Exec::No)
                 .with((f & 4) ? mm::Privilege::User : mm::Privilege::Kernel)
                 .with((f & 8) ? mm::Scope::Global : mm::Scope::Local)
                 .with(static_cast<mm::CacheMode>((f >> 4) % 4));
  uint64_t p = r[8] | (uint64_t{r[9]} << 8) | (uint64_t{r[10]} << 16);
  op.pa = (p << 12) % F::kPhysLimit;
  op.huge = (r[11] & 1) ? mm::HugePages::Deny : mm::HugePages::Allow;
  switch (op.kind) {
    case OpKind::Map:
    case OpKind::Unmap:
    case OpKind::Protect:
      op.va &= ~(M::size(op.level) - 1);
      op.pa &= ~(M::size(op.level) - 1);
      op.bytes = M::size(op.level);
      break;
    case OpKind::MapRange:
      // bit 15 of the size: keep the physical address congruent so huge pages fit.
      if (n & 0x8000)
        op.pa =
            (op.pa & ~(M::size(F::kLargestLeafLevel) - 1)) + (op.va & (M::size(F::kLargestLeafLevel) - 1));
      op.bytes = (1 + (n & 0x7ff)) * 4096;
      break;
    case OpKind::UnmapRange:
    case OpKind::ProtectRange: op.bytes = (1 + (n & 0x7ff)) * 4096; break;
    case OpKind::Reclaim:
      op.va &= ~(M::size(op.level) - 1);
      op.bytes = M::size(op.level) * (1 + n % 3);
      break;
    default: op.bytes = 4096; break;
  }
  uint64_t end = Harness<F>::space_end();
  if (op.va + op.bytes > end) op.bytes = end - op.va;
  if (ktl::is_same<F, paging::X86_64> && op.va < (uint64_t{1} << 47) &&
      op.va + op.bytes > (uint64_t{1} << 47)) {
    op.bytes = (uint64_t{1} << 47) - op.va;
  }
  return op;
}

// Work per input is bounded: once the model holds more than kLeafBudget leaves after an operation,
// the rest of the input is ignored (the final checks still run). The whole-tree check and the drain
// cost time per leaf, and one operation can make thousands (a map_range of 2048 pages, splitting a
// gigabyte leaf), so without a bound a few inputs cost as much as thousands of others.
constexpr std::size_t kLeafBudget = 256;

// The table frames, made once and zeroed again for each input (as a fresh block would be), so an
// input's outcome never depends on the inputs before it. ArenaFrames hands frames out lowest
// first and reuses freed ones first (a LIFO free list over an ascending one), so the frames an
// input can have written are its bitmap frame and the first `allocations()` frames after it: only
// those are zeroed again (`dirty` frames, from the previous input), not the whole megabyte.
constexpr std::uint64_t kMemoryBytes = 1 << 20;
std::uint64_t g_dirty_frames = kMemoryBytes / 4096;  // the first input zeroes everything

const mm::test_env::TestMemory& fresh_memory() {
  static const mm::test_env::TestMemory m = mm::test_env::TestMemory::acquire(kMemoryBytes).release_value();
  ktl::Span<ktl::u8> bytes = m.window().bytes(m.base(), m.size());
  std::memset(bytes.data(), 0, g_dirty_frames * 4096);
  return m;
}

// After an input: the frames it may have written (see fresh_memory).
void note_dirty(std::uint64_t allocations) {
  std::uint64_t frames = kMemoryBytes / 4096;
  std::uint64_t bitmap_frames = (frames + 4096 * 8 - 1) / (4096 * 8);
  std::uint64_t dirty = bitmap_frames + allocations;
  g_dirty_frames = dirty < frames ? dirty : frames;
}

template <class F>
void run(const std::uint8_t* data, std::size_t size) {
  Harness<F> h(fresh_memory());
  std::size_t count = size / kRecord;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* r = data + i * kRecord;
    unsigned failing = (r[11] >> 1) & 7;
    if (failing == 7) {
      h.frames().fail_never();
    } else if (failing != 0) {
      h.frames().fail_after(failing - 1);
    }
    Op op = decode<F>(r);
    const uint64_t probes[] = {op.va, op.va + (op.bytes - 1), op.va ^ 0x1'2345'6000ull};
    std::string f = h.run(op, probes);
    if (!f.empty()) fail(f, op, i);
    if (h.model().leaves.size() > kLeafBudget) break;
  }
  h.frames().fail_never();
  std::string f = h.check_everything();
  if (!f.empty()) fail(f, Op{}, count);
  f = h.drain();
  if (!f.empty()) fail(f, Op{}, count);
  note_dirty(h.frames().allocations());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 4) {
    case 0: run<paging::X86_64>(data + 1, size - 1); break;
    case 1: run<paging::X86_32>(data + 1, size - 1); break;
    case 2: run<paging::Aarch64Lower>(data + 1, size - 1); break;
    default: run<paging::Aarch64Upper>(data + 1, size - 1); break;
  }
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "mm/paging/paging_corpus", LLVMFuzzerTestOneInput,
                                     "paging_fuzz");
}
#endif
