// libFuzzer target for loader.memory_map: the input is a firmware memory map (hostile values:
// zero lengths, overlaps, unsorted entries, unaligned bases, page counts that overflow, ranges
// that wrap at 2^64, unknown types) plus loader placements, normalised by normalise_memory_map.
// The code below checks the result against a model computed on its own in 128-bit arithmetic
// (nothing of the module is shared but kind_priority, whose documented order is checked too):
//
//   - form: every region non-empty, page aligned, base + size without wrap and at most 2^64 - 4 KiB
//     (the last page cannot be described), sorted, non-overlapping, neighbours of the same kind
//     merged, numa_node 0, a valid kind; count <= output_entries_needed.
//   - content, everywhere in [0, 2^64 - 4 KiB): the region covering an address has the kind of
//     the highest-priority input covering it, with firmware RAM (usable and loader data) shrunk
//     inwards to whole pages and everything else grown outwards; no region where nothing covers.
//     So every page the firmware called usable and nothing else claims stays Usable, nothing is
//     Usable that the firmware did not call usable (holes stay holes), and every byte the loader
//     placed is reported with its kind or a stronger firmware one.
//   - classify_efi_type follows the UEFI specification's types; kind_priority ranks free RAM below
//     loader data, loader data below the loader's placements, and those below firmware reservations
//     (the framebuffer ranks above the ACPI, runtime and MMIO kinds; Reserved and Bad above all).
//   - buffers: too little scratch is ScratchTooSmall; an output buffer of k entries gives the same
//     map when it holds k or fewer regions and OutputTooSmall otherwise.
//
// Input layout (reads past the end yield zeros):
//   byte 0: bits 0-2 placement count; bit 3: also run with a short output buffer; bit 4: also run
//           with short scratch. byte 1: how much shorter.
//   then 18-byte records, the placements first, then firmware descriptors until the input ends:
//     type:u8 ctl:u8 base:u64 len:u64 (little endian)
//     ctl bits 0-1, base: 0 raw, 1 (base & 0xffff) pages (+ (base >> 16) & 0xfff if bit 2),
//                         2 ~0 - (base & 0xfffff), 3 page aligned, (base & 0xff) pages below 2^64
//     ctl bits 3-4, len: 0 raw, 1 len & 0xff (placements: & 0xffff bytes), 2 zero, 3 ~0 - (len & 0xff)
//     ctl bit 5: firmware EFI_MEMORY_RUNTIME; bit 6: other attribute bits from len's top byte
//     type: firmware EFI type (unknown ones included), placement kind 1 + type % 14
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() replays the files given as arguments
// or, with none, the checked-in corpus (uefi_loader/fuzz/memory_map_corpus, see make_corpora.py).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "testing/fuzz/corpus_replay.h"

import ktl;
import boot.info;
import loader.memory_map;

namespace {

using u64 = ktl::u64;
using u128 = unsigned __int128;
using boot::MemoryKind;

constexpr u64 kPage = 4096;
constexpr u128 kLimit = (u128{1} << 64) - kPage;  // the end of what a region can describe
constexpr u64 kRuntime = u64{1} << 63;

[[noreturn]] void fail(const char* what, u64 a = 0, u64 b = 0) {
  std::fprintf(stderr, "memory_map_fuzz: %s (%#llx, %#llx)\n", what, static_cast<unsigned long long>(a),
               static_cast<unsigned long long>(b));
  std::abort();
}

class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : data_(data, data + size) {}
  std::uint8_t byte() { return at_ < data_.size() ? data_[at_++] : 0; }
  u64 u64le() {
    u64 v = 0;
    for (int i = 0; i < 8; ++i) v |= u64{byte()} << (8 * i);
    return v;
  }
  [[nodiscard]] bool done() const { return at_ >= data_.size(); }

 private:
  std::vector<std::uint8_t> data_;
  std::size_t at_ = 0;
};

struct Record {
  std::uint8_t type;
  std::uint8_t ctl;
  u64 base;
  u64 len;
};

Record read_record(Reader& in, bool placement) {
  Record r{in.byte(), in.byte(), in.u64le(), in.u64le()};
  switch (r.ctl & 3) {
    case 0: break;
    case 1: r.base = (r.base & 0xffff) * kPage + ((r.ctl & 4) != 0 ? (r.base >> 16) & 0xfff : 0); break;
    case 2: r.base = ~u64{0} - (r.base & 0xfffff); break;
    case 3: r.base = (~u64{0} & ~(kPage - 1)) - (r.base & 0xff) * kPage; break;
  }
  switch ((r.ctl >> 3) & 3) {
    case 0: break;
    case 1: r.len &= placement ? 0xffff : 0xff; break;
    case 2: r.len = 0; break;
    case 3: r.len = ~u64{0} - (r.len & 0xff); break;
  }
  return r;
}

// The UEFI specification's memory types, as the hand-off map must report them.
MemoryKind expected_class(std::uint32_t type, u64 attribute) {
  if ((attribute & kRuntime) != 0) return MemoryKind::RuntimeServices;
  switch (type) {
    case 1:
    case 2: return MemoryKind::LoaderReclaimable;
    case 3:
    case 4:
    case 7: return MemoryKind::Usable;
    case 5:
    case 6: return MemoryKind::RuntimeServices;
    case 8: return MemoryKind::Bad;
    case 9: return MemoryKind::AcpiReclaimable;
    case 10: return MemoryKind::AcpiNvs;
    case 11:
    case 12: return MemoryKind::Mmio;
    default: return MemoryKind::Reserved;
  }
}

void check_priorities() {
  using K = MemoryKind;
  auto p = [](K k) { return loader::kind_priority(k); };
  const K placed[] = {K::KernelImage, K::KernelStack, K::PageTables, K::BootInfo, K::Ramdisk, K::Framebuffer};
  const K firmware[] = {K::AcpiReclaimable, K::AcpiNvs, K::RuntimeServices, K::Mmio, K::Reserved, K::Bad};
  if (!(p(K::Usable) < p(K::LoaderReclaimable))) fail("free RAM does not rank below loader data");
  for (K k : placed) {
    if (!(p(K::LoaderReclaimable) < p(k)))
      fail("a placement does not beat loader data", ktl::to_underlying(k));
    for (K f : firmware) {
      if (k == K::Framebuffer && f != K::Reserved && f != K::Bad) continue;
      if (!(p(k) < p(f))) fail("a firmware reservation does not beat a placement", ktl::to_underlying(f));
    }
  }
  for (std::uint32_t k = 1; k <= 14; ++k) {
    for (std::uint32_t j = 1; j < k; ++j) {
      if (p(static_cast<K>(k)) == p(static_cast<K>(j))) fail("two kinds share a priority", k, j);
    }
  }
}

struct Range {
  u128 lo, hi;
  MemoryKind kind;
};

u128 round_down(u128 v) { return v / kPage * kPage; }
u128 round_up(u128 v) { return (v + kPage - 1) / kPage * kPage; }

Range clip(u128 lo, u128 hi, MemoryKind kind) {
  lo = std::min(lo, kLimit);
  hi = std::min(hi, kLimit);
  return {lo, hi < lo ? lo : hi, kind};
}

Range firmware_range(const loader::FirmwareRange& r) {
  const MemoryKind kind = expected_class(r.efi_type, r.attribute);
  const u128 start = r.base;
  const u128 end = start + u128{r.pages} * kPage;
  if (kind == MemoryKind::Usable || kind == MemoryKind::LoaderReclaimable)
    return clip(round_up(start), round_down(end), kind);
  return clip(round_down(start), round_up(end), kind);
}

Range placement_range(const loader::Placement& p) {
  return clip(round_down(p.base), round_up(u128{p.base} + p.size), p.kind);
}

// The kind the model gives `at` (covered = false where nothing covers it).
struct Expected {
  bool covered;
  MemoryKind kind;
};
Expected expected_at(const std::vector<Range>& ranges, u128 at) {
  Expected e{false, MemoryKind::Usable};
  for (const Range& r : ranges) {
    if (r.lo <= at && at < r.hi &&
        (!e.covered || loader::kind_priority(r.kind) > loader::kind_priority(e.kind))) {
      e = {true, r.kind};
    }
  }
  return e;
}

struct Outcome {
  bool ok;
  loader::MapError error;
  std::vector<boot::MemoryMapEntry> regions;
};

Outcome normalise(const std::vector<loader::FirmwareRange>& fw, const std::vector<loader::Placement>& pl,
                  std::size_t scratch_entries, std::size_t out_entries) {
  // Exact sizes on the heap: ASan reports any write past them.
  std::vector<u64> scratch(scratch_entries);
  std::vector<boot::MemoryMapEntry> out(out_entries,
                                        boot::MemoryMapEntry{0xdead, 0xbeef, MemoryKind::Bad, 7});
  auto r = loader::normalise_memory_map(ktl::Span<const loader::FirmwareRange>(fw),
                                        ktl::Span<const loader::Placement>(pl), ktl::Span<u64>(scratch),
                                        ktl::Span<boot::MemoryMapEntry>(out));
  if (r.is_err()) return {false, r.error(), {}};
  if (r.value() > out.size()) fail("count larger than the output buffer", r.value(), out.size());
  out.resize(r.value());
  return {true, loader::MapError::OutputTooSmall, out};
}

void check_form(const std::vector<boot::MemoryMapEntry>& m, std::size_t max) {
  if (m.size() > max) fail("more regions than output_entries_needed", m.size(), max);
  for (std::size_t i = 0; i < m.size(); ++i) {
    const boot::MemoryMapEntry& r = m[i];
    const auto kind = ktl::to_underlying(r.kind);
    if (kind < 1 || kind > 14) fail("invalid kind", i, kind);
    if (r.size == 0) fail("empty region", r.base);
    if (r.base % kPage != 0 || r.size % kPage != 0) fail("region not page aligned", r.base, r.size);
    if (u128{r.base} + r.size > kLimit) fail("region wraps or reaches the last page", r.base, r.size);
    if (r.numa_node != 0) fail("numa_node set", r.base, r.numa_node);
    if (i > 0) {
      const boot::MemoryMapEntry& p = m[i - 1];
      if (p.base + p.size > r.base) fail("regions unsorted or overlapping", p.base, r.base);
      if (p.base + p.size == r.base && p.kind == r.kind)
        fail("neighbours of one kind not merged", p.base, r.base);
    }
  }
}

void check_content(const std::vector<boot::MemoryMapEntry>& m, const std::vector<Range>& ranges) {
  // Both the model and the output are constant between consecutive boundaries of either, so
  // comparing at every boundary compares them everywhere.
  std::vector<u128> points{0};
  for (const Range& r : ranges) {
    points.push_back(r.lo);
    points.push_back(r.hi);
  }
  for (const boot::MemoryMapEntry& r : m) {
    points.push_back(r.base);
    points.push_back(u128{r.base} + r.size);
  }
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  std::size_t region = 0;
  for (u128 at : points) {
    if (at >= kLimit) break;
    while (region < m.size() && u128{m[region].base} + m[region].size <= at) ++region;
    const bool in_region = region < m.size() && m[region].base <= at;
    const Expected e = expected_at(ranges, at);
    const u64 a = static_cast<u64>(at);
    if (!e.covered && in_region) {
      fail(m[region].kind == MemoryKind::Usable ? "a hole is reported usable" : "a hole is reported", a,
           ktl::to_underlying(m[region].kind));
    }
    if (e.covered && !in_region) {
      fail(e.kind == MemoryKind::Usable ? "usable memory is lost" : "a covered range is missing", a,
           ktl::to_underlying(e.kind));
    }
    if (e.covered && m[region].kind != e.kind) {
      if (m[region].kind == MemoryKind::Usable)
        fail("memory reported usable that is not free", a, ktl::to_underlying(e.kind));
      if (e.kind == MemoryKind::Usable)
        fail("usable memory reported as something else", a, ktl::to_underlying(m[region].kind));
      fail("wrong kind", a, (u64{ktl::to_underlying(m[region].kind)} << 32) | ktl::to_underlying(e.kind));
    }
  }
}

void run(Reader& in) {
  const std::uint8_t header = in.byte();
  const std::uint8_t shrink = in.byte();
  const std::size_t placement_count = header & 7;

  std::vector<loader::Placement> placements;
  std::vector<loader::FirmwareRange> firmware;
  std::vector<Range> ranges;
  for (std::size_t i = 0; i < placement_count && !in.done(); ++i) {
    Record r = read_record(in, true);
    placements.push_back({r.base, r.len, static_cast<MemoryKind>(1 + r.type % 14)});
    ranges.push_back(placement_range(placements.back()));
  }
  while (!in.done()) {
    Record r = read_record(in, false);
    u64 attribute = (r.ctl & 0x20) != 0 ? kRuntime : 0;
    if ((r.ctl & 0x40) != 0) attribute |= r.len & (u64{0x7f} << 56);  // attribute bits, not the runtime one
    firmware.push_back({r.base, r.len, r.type, attribute});
    if (loader::classify_efi_type(r.type, attribute) != expected_class(r.type, attribute))
      fail("classify_efi_type disagrees with the UEFI types", r.type, attribute);
    ranges.push_back(firmware_range(firmware.back()));
  }

  const std::size_t scratch_needed = loader::scratch_entries_needed(firmware.size(), placements.size());
  const std::size_t out_needed = loader::output_entries_needed(firmware.size(), placements.size());
  const Outcome full = normalise(firmware, placements, scratch_needed, out_needed);
  if (!full.ok) fail("error with buffers of the advertised sizes", ktl::to_underlying(full.error));
  check_form(full.regions, out_needed);
  check_content(full.regions, ranges);

  if ((header & 8) != 0) {
    const std::size_t k = shrink % (out_needed + 1);
    const Outcome small = normalise(firmware, placements, scratch_needed, k);
    if (full.regions.size() <= k) {
      if (!small.ok) fail("output buffer large enough but rejected", k, full.regions.size());
      if (small.regions.size() != full.regions.size()) fail("short output buffer changed the map", k);
      for (std::size_t i = 0; i < small.regions.size(); ++i) {
        const auto& a = small.regions[i];
        const auto& b = full.regions[i];
        if (a.base != b.base || a.size != b.size || a.kind != b.kind)
          fail("short output buffer changed the map", i);
      }
    } else if (small.ok || small.error != loader::MapError::OutputTooSmall) {
      fail("short output buffer not reported as OutputTooSmall", k, full.regions.size());
    }
  }
  if ((header & 16) != 0 && scratch_needed > 0) {
    const std::size_t s = shrink % scratch_needed;
    const Outcome small = normalise(firmware, placements, s, out_needed);
    if (small.ok || small.error != loader::MapError::ScratchTooSmall)
      fail("short scratch not reported as ScratchTooSmall", s, scratch_needed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool priorities_checked = (check_priorities(), true);
  (void)priorities_checked;
  Reader in(data, size);
  run(in);
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "uefi_loader/fuzz/memory_map_corpus", LLVMFuzzerTestOneInput,
                                     "memory_map_fuzz");
}
#endif
