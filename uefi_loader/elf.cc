module;

#include <ktl/macros.h>

module loader.elf;

import ktl;

namespace loader {

namespace {

struct Elf64Header {
  u8 ident[16];
  u16 type;
  u16 machine;
  u32 version;
  u64 entry;
  u64 phoff;
  u64 shoff;
  u32 flags;
  u16 ehsize;
  u16 phentsize;
  u16 phnum;
  u16 shentsize;
  u16 shnum;
  u16 shstrndx;
};
static_assert(sizeof(Elf64Header) == 64);

struct Elf64Phdr {
  u32 type;
  u32 flags;
  u64 offset;
  u64 vaddr;
  u64 paddr;
  u64 filesz;
  u64 memsz;
  u64 align;
};
static_assert(sizeof(Elf64Phdr) == 56);

constexpr u16 kEtExec = 2;
constexpr u32 kPtLoad = 1;

// Copies a T out of `bytes` at `offset` if it fits entirely.
template <class T>
ktl::Optional<T> read_at(ktl::Span<const u8> bytes, u64 offset) {
  auto end = ktl::checked_add<u64>(offset, sizeof(T));
  if (end.overflow || end.value > bytes.size()) return ktl::nullopt;
  T out;
  ktl::copy_bytes(ktl::writable_bytes_of(out), bytes.subspan(static_cast<usize>(offset), sizeof(T)));
  return out;
}

}  // namespace

ktl::Result<KernelImage, ElfError> parse_kernel(ktl::Span<const u8> file, const Constraints& c) {
  auto header_opt = read_at<Elf64Header>(file, 0);
  if (!header_opt) return ktl::Err(ElfError::TooSmall);
  const Elf64Header& h = *header_opt;
  ktl::Span<const u8> ident(h.ident);
  if (ident[0] != 0x7f || ident[1] != 'E' || ident[2] != 'L' || ident[3] != 'F') {
    return ktl::Err(ElfError::BadMagic);
  }
  if (ident[4] != 2) return ktl::Err(ElfError::NotElf64);
  if (ident[5] != 1) return ktl::Err(ElfError::NotLittleEndian);
  if (ident[6] != 1 || h.version != 1) return ktl::Err(ElfError::BadVersion);
  if (h.type != kEtExec) return ktl::Err(ElfError::NotExecutable);
  if (h.machine != ktl::to_underlying(c.machine)) return ktl::Err(ElfError::WrongMachine);
  if (h.ehsize != sizeof(Elf64Header) || h.phentsize != sizeof(Elf64Phdr)) {
    return ktl::Err(ElfError::BadHeaderSize);
  }
  auto ph_bytes = ktl::checked_mul<u64>(h.phnum, sizeof(Elf64Phdr));
  auto ph_end = ktl::checked_add<u64>(h.phoff, ph_bytes.value);
  if (ph_end.overflow || ph_end.value > file.size()) return ktl::Err(ElfError::ProgramHeadersOutOfBounds);

  KernelImage image{};
  image.entry = h.entry;
  for (u16 i = 0; i < h.phnum; ++i) {
    Elf64Phdr p = *read_at<Elf64Phdr>(file, h.phoff + u64{i} * sizeof(Elf64Phdr));
    if (p.type != kPtLoad) continue;
    if (p.memsz == 0) continue;  // nothing to map
    if (image.segment_count == kMaxSegments) return ktl::Err(ElfError::TooManySegments);
    if (p.filesz > p.memsz) return ktl::Err(ElfError::FileSizeExceedsMemSize);
    auto file_end = ktl::checked_add(p.offset, p.filesz);
    if (file_end.overflow || file_end.value > file.size()) return ktl::Err(ElfError::SegmentOutOfFile);
    // The segment must start on a page boundary in memory, and its file offset must be congruent
    // (the loader copies, so only the memory side really matters; lld guarantees both).
    if (!ktl::is_aligned(p.vaddr, c.page_size)) return ktl::Err(ElfError::SegmentMisaligned);
    auto mem_end = ktl::checked_add(p.vaddr, p.memsz);
    if (mem_end.overflow || p.vaddr < c.min_vaddr) return ktl::Err(ElfError::SegmentOutsideKernelSpace);
    if ((p.flags & kPfW) != 0 && (p.flags & kPfX) != 0) return ktl::Err(ElfError::WritableAndExecutable);

    Segment s{p.vaddr, p.memsz, p.offset, p.filesz, p.flags & (kPfR | kPfW | kPfX)};
    // Overlap with any earlier segment, compared at page granularity (two segments may not share
    // a page: they would need different permissions).
    u64 s_lo = ktl::align_down(s.vaddr, c.page_size);
    auto s_hi = ktl::checked_align_up(mem_end.value, c.page_size);
    if (s_hi.overflow) return ktl::Err(ElfError::SegmentOutsideKernelSpace);
    for (usize j = 0; j < image.segment_count; ++j) {
      const Segment& o = image.segments[j];
      u64 o_lo = ktl::align_down(o.vaddr, c.page_size);
      u64 o_hi = ktl::align_up(o.end(), c.page_size);
      if (s_lo < o_hi && o_lo < s_hi.value) return ktl::Err(ElfError::SegmentOverlap);
    }
    image.segments[image.segment_count++] = s;
    if (image.segment_count == 1 || s_lo < image.lowest_vaddr) image.lowest_vaddr = s_lo;
    if (s_hi.value > image.highest_vaddr) image.highest_vaddr = s_hi.value;
  }
  if (image.segment_count == 0) return ktl::Err(ElfError::NoLoadableSegments);
  if (ktl::checked_add(image.highest_vaddr, c.room_above).overflow) return ktl::Err(ElfError::NoRoomAbove);

  bool entry_ok = false;
  for (usize j = 0; j < image.segment_count; ++j) {
    const Segment& s = image.segments[j];
    if (s.executable() && s.vaddr <= image.entry && image.entry < s.end()) entry_ok = true;
  }
  if (!entry_ok) return ktl::Err(ElfError::EntryNotExecutable);
  return image;
}

}  // namespace loader
