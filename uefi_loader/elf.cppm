// loader.elf: validation of the kernel ELF file. Pure code over a byte span, so the same module
// runs in the loader and in host tests that feed it broken files.
//
// The file is untrusted: every offset and size is range-checked with overflow-checked arithmetic
// before it is used, and structures are copied out of the buffer (no alignment assumptions).
module;

#include <ktl/macros.h>

export module loader.elf;

import ktl;

export namespace loader {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

enum class Machine : u16 { X86_64 = 62, AArch64 = 183 };

enum class ElfError : u32 {
  TooSmall,
  BadMagic,
  NotElf64,
  NotLittleEndian,
  BadVersion,
  NotExecutable,
  WrongMachine,
  BadHeaderSize,
  ProgramHeadersOutOfBounds,
  NoLoadableSegments,
  TooManySegments,
  SegmentOutOfFile,
  FileSizeExceedsMemSize,
  SegmentMisaligned,
  SegmentOverlap,
  SegmentOutsideKernelSpace,
  WritableAndExecutable,
  EntryNotExecutable,
  NoRoomAbove,
};

[[nodiscard]] constexpr const char* to_string(ElfError e) {
  switch (e) {
    case ElfError::TooSmall: return "file is too small to be an ELF image (truncated?)";
    case ElfError::BadMagic: return "not an ELF file (bad magic)";
    case ElfError::NotElf64: return "not a 64-bit ELF file";
    case ElfError::NotLittleEndian: return "not a little-endian ELF file";
    case ElfError::BadVersion: return "unknown ELF version";
    case ElfError::NotExecutable: return "ELF file is not an executable (ET_EXEC)";
    case ElfError::WrongMachine: return "ELF file is for another machine";
    case ElfError::BadHeaderSize: return "unexpected ELF header or program header size";
    case ElfError::ProgramHeadersOutOfBounds: return "program headers lie outside the file (truncated?)";
    case ElfError::NoLoadableSegments: return "no PT_LOAD segments";
    case ElfError::TooManySegments: return "too many PT_LOAD segments";
    case ElfError::SegmentOutOfFile: return "a segment's file data lies outside the file (truncated?)";
    case ElfError::FileSizeExceedsMemSize: return "a segment's file size exceeds its memory size";
    case ElfError::SegmentMisaligned: return "a segment is not page aligned";
    case ElfError::SegmentOverlap: return "two PT_LOAD segments overlap";
    case ElfError::SegmentOutsideKernelSpace: return "a segment lies outside the kernel's address range";
    case ElfError::WritableAndExecutable: return "a segment is both writable and executable";
    case ElfError::EntryNotExecutable: return "the entry point is not inside an executable segment";
    case ElfError::NoRoomAbove:
      return "the image ends too close to the top of the address space (no room for the boot stack)";
  }
  return "unknown ELF error";
}

inline constexpr u32 kPfX = 1;
inline constexpr u32 kPfW = 2;
inline constexpr u32 kPfR = 4;

struct Segment {
  u64 vaddr;
  u64 mem_size;
  u64 file_offset;
  u64 file_size;
  u32 flags;  // kPfR | kPfW | kPfX
  [[nodiscard]] constexpr bool writable() const { return (flags & kPfW) != 0; }
  [[nodiscard]] constexpr bool executable() const { return (flags & kPfX) != 0; }
  [[nodiscard]] constexpr u64 end() const { return vaddr + mem_size; }
};

inline constexpr usize kMaxSegments = 16;

struct KernelImage {
  ktl::Array<Segment, kMaxSegments> segments;
  usize segment_count;
  u64 entry;
  u64 lowest_vaddr;   // page aligned
  u64 highest_vaddr;  // end of the last segment, page aligned up
};

struct Constraints {
  Machine machine;
  u64 min_vaddr;  // the kernel must live in [min_vaddr, ~0]
  u64 page_size = 4096;
  // Bytes the loader places above the image's page-rounded end (guard page and stack): the image
  // must end at least this far below 2^64, so that nothing above it wraps.
  u64 room_above = 0;
};

// Validates `file` as a kernel image: class, machine, PT_LOAD bounds and overlap, alignment,
// W^X, an entry point inside an executable segment, and room_above bytes free above the image.
[[nodiscard]] ktl::Result<KernelImage, ElfError> parse_kernel(ktl::Span<const u8> file,
                                                              const Constraints& constraints);

}  // namespace loader
