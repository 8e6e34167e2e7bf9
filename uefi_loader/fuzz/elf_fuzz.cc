// libFuzzer target for loader.elf: the input is a kernel ELF file, validated by parse_kernel for
// x86_64 and for aarch64 with the loader's constraints (kernel in [boot::layout::kKernelBase, ~0],
// 4 KiB pages, a guard page and the boot stack's pages free above the image). parse_kernel must either reject
// the file with a known error or accept it; the code below re-derives everything from the raw bytes on its
// own (no structure or helper of the module is shared) and aborts on any disagreement:
//
//   - verdict: the file is accepted exactly when it meets every documented rule (ELF64, little
//     endian, version 1, ET_EXEC, the machine, header sizes, program headers inside the file, 1 to
//     kMaxSegments PT_LOADs with a memory size, and for each of them: file data inside the file,
//     file size <= memory size, page-aligned address, inside the kernel's range with a page-rounded
//     end that does not wrap, not both writable and executable; no two sharing a page; the entry
//     inside an executable one; the page-rounded end of the image plus the room above it below
//     2^64). PT_LOADs with memory size 0 and other headers are ignored.
//   - when accepted, what the loader relies on (uefi_loader/main.cc): the segments are exactly the
//     file's non-empty PT_LOADs in file order (address, sizes, offset, RWX flags); every segment's
//     file data lies inside the file; file size <= memory size; no wrap at 2^64; segments do not
//     share a page; no segment is W+X; the entry lies in an executable segment and is the file's
//     e_entry; lowest_vaddr/highest_vaddr are the page-rounded bounds of all segments, in the
//     higher half (>= kKernelBase), and each segment's copy at (vaddr - lowest_vaddr) stays inside
//     the highest_vaddr - lowest_vaddr bytes the loader allocates.
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() replays the files given as arguments
// or, with none, the checked-in corpus (uefi_loader/fuzz/elf_corpus, made by make_corpora.py).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "testing/fuzz/corpus_replay.h"

import ktl;
import boot.info;
import loader.elf;

namespace {

using u64 = ktl::u64;
using u128 = unsigned __int128;

constexpr u64 kPage = 4096;
constexpr u128 kTwo64 = u128{1} << 64;
constexpr std::size_t kEhdrSize = 64;
constexpr std::size_t kPhdrSize = 56;
constexpr std::uint32_t kPtLoad = 1;
constexpr std::uint32_t kX = 1, kW = 2, kR = 4;

[[noreturn]] void fail(const char* what, u64 a = 0, u64 b = 0) {
  std::fprintf(stderr, "elf_fuzz: %s (%#llx, %#llx)\n", what, static_cast<unsigned long long>(a),
               static_cast<unsigned long long>(b));
  std::abort();
}

// Little-endian field of `n` bytes at `at`; the caller has checked the bounds.
u64 le(const std::vector<std::uint8_t>& f, u128 at, int n) {
  u64 v = 0;
  for (int i = n - 1; i >= 0; --i)
    v = (v << 8) | f[static_cast<std::size_t>(at) + static_cast<std::size_t>(i)];
  return v;
}

u128 round_down(u128 v) { return v / kPage * kPage; }
u128 round_up(u128 v) { return (v + kPage - 1) / kPage * kPage; }

struct Load {
  u64 offset, vaddr, filesz, memsz;
  std::uint32_t flags;
};

struct Reference {
  bool valid = false;
  u64 entry = 0;
  std::vector<Load> loads;  // the non-empty PT_LOADs, in file order
};

// The documented rules, applied to the raw bytes.
Reference reference(const std::vector<std::uint8_t>& f, std::uint16_t machine, u64 min_vaddr,
                    u64 room_above) {
  Reference r;
  const u128 size = f.size();
  if (size < kEhdrSize) return r;
  if (f[0] != 0x7f || f[1] != 'E' || f[2] != 'L' || f[3] != 'F') return r;
  if (f[4] != 2 || f[5] != 1 || f[6] != 1 || le(f, 20, 4) != 1) return r;  // ELF64, LE, version 1
  if (le(f, 16, 2) != 2 || le(f, 18, 2) != machine) return r;              // ET_EXEC, machine
  if (le(f, 52, 2) != kEhdrSize || le(f, 54, 2) != kPhdrSize) return r;
  r.entry = le(f, 24, 8);
  const u128 phoff = le(f, 32, 8);
  const u64 phnum = le(f, 56, 2);
  if (phoff + phnum * kPhdrSize > size) return r;
  for (u64 i = 0; i < phnum; ++i) {
    const u128 at = phoff + i * kPhdrSize;
    if (le(f, at, 4) != kPtLoad) continue;
    Load l{le(f, at + 8, 8), le(f, at + 16, 8), le(f, at + 32, 8), le(f, at + 40, 8),
           static_cast<std::uint32_t>(le(f, at + 4, 4))};
    if (l.memsz != 0) r.loads.push_back(l);
  }
  if (r.loads.empty() || r.loads.size() > loader::kMaxSegments) return r;
  for (std::size_t i = 0; i < r.loads.size(); ++i) {
    const Load& l = r.loads[i];
    if (l.filesz > l.memsz || u128{l.offset} + l.filesz > size) return r;
    if (l.vaddr % kPage != 0 || l.vaddr < min_vaddr) return r;
    if (round_up(u128{l.vaddr} + l.memsz) >= kTwo64) return r;
    if ((l.flags & kW) != 0 && (l.flags & kX) != 0) return r;
    for (std::size_t j = 0; j < i; ++j) {
      const Load& o = r.loads[j];
      if (round_down(l.vaddr) < round_up(u128{o.vaddr} + o.memsz) &&
          round_down(o.vaddr) < round_up(u128{l.vaddr} + l.memsz))
        return r;
    }
  }
  u128 end = 0;
  for (const Load& l : r.loads) end = std::max(end, round_up(u128{l.vaddr} + l.memsz));
  if (end + room_above >= kTwo64) return r;
  for (const Load& l : r.loads) {
    if ((l.flags & kX) != 0 && l.vaddr <= r.entry && r.entry < u128{l.vaddr} + l.memsz) r.valid = true;
  }
  return r;
}

void check_accepted(const loader::KernelImage& image, const Reference& ref,
                    const std::vector<std::uint8_t>& f, u64 min_vaddr, u64 room_above) {
  const std::size_t n = image.segment_count;
  if (n == 0 || n > loader::kMaxSegments) fail("segment count out of range", n);
  if (n != ref.loads.size())
    fail("segment count differs from the file's non-empty PT_LOADs", n, ref.loads.size());
  if (image.entry != ref.entry) fail("entry differs from e_entry", image.entry, ref.entry);

  u128 lowest = ~u128{0}, highest = 0;
  bool entry_ok = false;
  for (std::size_t i = 0; i < n; ++i) {
    const loader::Segment& s = image.segments[i];
    const Load& l = ref.loads[i];
    if (s.vaddr != l.vaddr || s.mem_size != l.memsz || s.file_offset != l.offset || s.file_size != l.filesz)
      fail("segment differs from its program header", i, s.vaddr);
    if (s.flags != (l.flags & (kR | kW | kX))) fail("segment flags differ from p_flags", s.flags, l.flags);
    if (s.mem_size == 0) fail("empty segment", i);
    if (u128{s.file_offset} + s.file_size > f.size())
      fail("segment data outside the file", s.file_offset, s.file_size);
    if (s.file_size > s.mem_size) fail("file size exceeds memory size", s.file_size, s.mem_size);
    if (s.vaddr % kPage != 0) fail("segment not page aligned", s.vaddr);
    if (s.vaddr < min_vaddr) fail("segment below the kernel's range", s.vaddr, min_vaddr);
    const u128 end = u128{s.vaddr} + s.mem_size;
    if (round_up(end) >= kTwo64) fail("segment end wraps at 2^64", s.vaddr, s.mem_size);
    if (s.end() != static_cast<u64>(end)) fail("Segment::end() differs", s.end());
    if (s.writable() && s.executable()) fail("segment is writable and executable", s.vaddr, s.flags);
    if (s.writable() != ((l.flags & kW) != 0) || s.executable() != ((l.flags & kX) != 0))
      fail("writable()/executable() differ from p_flags", s.flags, l.flags);
    for (std::size_t j = 0; j < i; ++j) {
      const loader::Segment& o = image.segments[j];
      if (round_down(s.vaddr) < round_up(u128{o.vaddr} + o.mem_size) && round_down(o.vaddr) < round_up(end))
        fail("segments share a page", s.vaddr, o.vaddr);
    }
    if (s.executable() && s.vaddr <= image.entry && image.entry < end) entry_ok = true;
    if (round_down(s.vaddr) < lowest) lowest = round_down(s.vaddr);
    if (round_up(end) > highest) highest = round_up(end);
  }
  if (!entry_ok) fail("entry not inside an executable segment", image.entry);
  if (image.lowest_vaddr != lowest || image.highest_vaddr != highest)
    fail("image bounds are not the page-rounded segment bounds", image.lowest_vaddr, image.highest_vaddr);
  if (image.lowest_vaddr < min_vaddr || image.highest_vaddr <= image.lowest_vaddr)
    fail("image bounds outside the kernel's range", image.lowest_vaddr, image.highest_vaddr);
  // main.cc: the guard page and the stack go right above highest_vaddr and must not wrap.
  if (u128{image.highest_vaddr} + room_above >= kTwo64)
    fail("no room for the guard page and stack above the image", image.highest_vaddr, room_above);
  const u128 image_size = u128{image.highest_vaddr} - image.lowest_vaddr;
  for (std::size_t i = 0; i < n; ++i) {
    const loader::Segment& s = image.segments[i];
    // main.cc: copy_bytes(kernel_phys + (s.vaddr - lowest_vaddr), file_size) into image_size bytes,
    // and maps [vaddr, align_up(end)) at the same offset.
    if (u128{s.vaddr} - image.lowest_vaddr + s.file_size > image_size ||
        round_up(u128{s.vaddr} + s.mem_size) - image.lowest_vaddr > image_size)
      fail("segment copy outside the image allocation", s.vaddr, s.mem_size);
  }
}

// `bytes` is the same file as `f`, at an odd address and ending where its heap block ends.
void check(const std::vector<std::uint8_t>& f, ktl::Span<const ktl::u8> bytes, loader::Machine machine) {
  const u64 min_vaddr = boot::layout::kKernelBase;
  const u64 room_above = (boot::layout::kBootStackPages + 1) * kPage;  // as main.cc asks
  const loader::Constraints constraints{machine, min_vaddr, kPage, room_above};
  auto r = loader::parse_kernel(bytes, constraints);
  const Reference ref = reference(f, static_cast<std::uint16_t>(machine), min_vaddr, room_above);
  if (r.is_err()) {
    if (ktl::to_underlying(r.error()) > ktl::to_underlying(loader::ElfError::NoRoomAbove))
      fail("unknown error value", ktl::to_underlying(r.error()));
    if (ref.valid) {
      std::fprintf(stderr, "elf_fuzz: rejected a valid kernel: %s\n", loader::to_string(r.error()));
      std::abort();
    }
    return;
  }
  if (!ref.valid) fail("accepted a file that breaks a documented rule", r.value().segment_count);
  check_accepted(r.value(), ref, f, min_vaddr, room_above);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> file(data, data + size);
  // The parser's copy starts at an odd address and ends with its heap block: UBSan reports
  // misaligned loads (the module promises to copy structures out) and ASan any read past the end.
  std::vector<std::uint8_t> odd(size + 1);
  std::copy(file.begin(), file.end(), odd.begin() + 1);
  const auto bytes = ktl::Span<const ktl::u8>(odd).subspan(1);
  check(file, bytes, loader::Machine::X86_64);
  check(file, bytes, loader::Machine::AArch64);
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "uefi_loader/fuzz/elf_corpus", LLVMFuzzerTestOneInput,
                                     "elf_fuzz");
}
#endif
