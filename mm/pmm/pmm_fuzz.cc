// libFuzzer target for mm.pmm: the input is a memory map and a stream of operations, run on a real
// Pmm and on the shadow model of mm/pmm/pmm_model.h, which must agree on every result (frames chosen,
// errors, logged addresses, statistics, every frame's state). Any disagreement aborts.
//
// Per input only what the input needs: the simulated memory is made once, for the
// largest map the layout can describe, and each input builds a new Pmm in it; every 256 operations
// and at the end, the frames they touched (each once) and the free count are compared
// (Harness::check_touched), and every frame and the statistics once, after the input has given
// everything back (teardown's check_all).
//
// Input layout (every read past the end yields zeros, so any byte string is valid):
//   [n] then n regions of 6 bytes: kind, size (2 bytes, frames), gap, node, flags
//       flags bit 0/1: unaligned start/end (partial frames); bit 2: overlap the previous region,
//       bit 3: put the region before the previous one (both make the map invalid); gap 0xff is a
//       hole larger than the PMM's merge gap (a separate arena)
//   then operations of 1 + 4 bytes until the input ends.
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() below replays files given as
// arguments (pmm_fuzz_corpus_test runs the checked-in corpus that way).
#include <ktl/macros.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mm/pmm/pmm_model.h"

#include "testing/fuzz/corpus_replay.h"

namespace {

using pmm_model::Harness;
using pmm_model::ModelMapEntry;
using pmm_model::u64;

class Reader {
 public:
  Reader(const std::uint8_t* data, size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() {
    if (at_ >= size_) return 0;
    std::uint8_t b;
    KTL_UNSAFE_BUFFER_BEGIN  // at_ < size_ checked above: inside libFuzzer's input
    __builtin_memcpy(&b, reinterpret_cast<const void*>(ktl::address_of(data_) + at_), 1);
    KTL_UNSAFE_BUFFER_END
    ++at_;
    return b;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() | (byte() << 8)); }
  [[nodiscard]] bool done() const { return at_ >= size_; }

 private:
  const std::uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

constexpr u64 kPage = 4096;
constexpr u64 kBase = 4ull * 1024 * 1024 * 1024 - 8 * 1024 * 1024;  // 8 MiB below 4 GiB
constexpr int kMaxMapEntries = 8;
constexpr u64 kHoleFrames = 17'000;  // gap 0xff
constexpr u64 kMaxEntryFrames = 1024;
// Operations per input: the rest of a longer input is ignored. Each operation costs a model
// prediction, a PMM call (and, for the refused ones, a formatted log line), so this bounds an
// input's cost; 256 operations can fill, fragment and drain the largest map many times over.
constexpr int kMaxOps = 256;

// Simulated memory for the largest map: every region after the largest gap, plus a page. Only the
// pages the PMMs' metadata lands on are ever touched.
const mm::test_env::TestMemory& memory() {
  static const mm::test_env::TestMemory m =
      mm::test_env::TestMemory::acquire_at(mm::PhysAddr::from(kBase),
                                           (kMaxMapEntries * (kHoleFrames + kMaxEntryFrames) + 1) * kPage)
          .release_value();
  return m;
}

mm::PhysKind kind_of(std::uint8_t b) {
  static const mm::PhysKind kinds[] = {mm::PhysKind::KernelImage,       mm::PhysKind::BootData,
                                       mm::PhysKind::LoaderReclaimable, mm::PhysKind::PageTables,
                                       mm::PhysKind::Firmware,          mm::PhysKind::Device,
                                       mm::PhysKind::Reserved,          mm::PhysKind::Bad};
  return b % 2 == 0 ? mm::PhysKind::Usable : kinds[(b / 2) % 8];
}

void run(Reader& in) {
  std::vector<ModelMapEntry> map;
  u64 cursor = kBase;
  const int regions = 1 + in.byte() % kMaxMapEntries;
  for (int i = 0; i < regions; ++i) {
    mm::PhysKind kind = kind_of(in.byte());
    u64 frames = 1 + in.u16() % kMaxEntryFrames;
    std::uint8_t gap = in.byte();
    std::uint8_t node_byte = in.byte();
    std::uint8_t flags = in.byte();
    cursor += gap == 0xff ? kHoleFrames * kPage : (gap % 4) * kPage;
    u64 start = cursor + ((flags & 1) ? 0x800 : 0);
    u64 end = cursor + frames * kPage - ((flags & 2) ? 0x800 : 0);
    if (end <= start) end = start + 0x800;
    std::uint32_t node = node_byte == 0xee ? mm::kMaxNumaNodes : node_byte % 3;
    if ((flags & 4) && !map.empty()) start = map.back().end - 0x1000;  // overlap
    ModelMapEntry r{start, end, kind, node};
    if ((flags & 8) && !map.empty()) {
      map.insert(map.end() - 1, r);  // out of order
    } else {
      map.push_back(r);
    }
    cursor += frames * kPage;
  }
  u64 size = (cursor - kBase + kPage - 1) / kPage * kPage + kPage;
  Harness h(memory().window(), size, map);
  if (!h.ok()) {
    std::fprintf(stderr, "pmm_fuzz: %s\n", h.failure().c_str());
    std::abort();
  }
  if (!h.ready()) return;  // an invalid map, rejected with the expected error

  const u64 first = h.first_frame();
  const u64 span = h.frame_count();
  const u64 four_gib = 4ull * 1024 * 1024 * 1024 / kPage;
  int steps = 0;
  while (!in.done() && h.ok() && steps < kMaxOps) {
    std::uint8_t op = in.byte();
    std::uint8_t a = in.byte(), b = in.byte(), c = in.byte(), d = in.byte();
    std::optional<std::uint32_t> node;
    if (a & 1) node = (a >> 1) % 4;
    mm::Fallback fallback = (a & 8) ? mm::Fallback::None : mm::Fallback::AnyNode;
    std::optional<u64> below;
    if (a & 16) below = (a & 32) ? four_gib : first + (b | (c << 8)) % (span + 1);
    switch (op % 10) {
      case 0:
      case 1:
      case 2: h.alloc(1, 1, node, fallback, below, /*raw=*/(a & 64) != 0); break;
      case 3: h.alloc(1 + (b | ((c & 3) << 8)), u64{1} << (d % 10), node, fallback, below); break;
      case 4: h.drop_owned(b | (c << 8)); break;
      case 5: h.split_owned(b | (c << 8), d); break;
      case 6: h.release_owned(b | (c << 8)); break;
      case 7: h.free_raw(b | (c << 8), (d & 1) != 0); break;
      case 8: h.free_arbitrary(first - 4 + (b | (c << 8)) % (span + 8), 1 + d % 32); break;
      case 9: h.claim(first - 4 + (b | (c << 8)) % (span + 8), 1 + d % 4); break;
    }
    if (++steps % 256 == 0) h.check_touched();
  }
  h.check_touched();
  h.teardown();
  if (!h.ok()) {
    std::fprintf(stderr, "pmm_fuzz: %s\n", h.failure().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  Reader in(data, size);
  run(in);
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "mm/pmm/pmm_corpus", LLVMFuzzerTestOneInput, "pmm_fuzz");
}
#endif
