// kernel.boot_check: the kernel's bad-input policy for the boot information.
//
// The loader promises a normalised memory map (boot.info): page aligned, sorted by base, not
// overlapping, no empty entries, known kinds. The kernel checks all of it before using any of it;
// a violation is a broken loader (or a corrupted hand-off), and the kernel halts with a message
// naming the entry and the rule (in test mode it exits QEMU with the failure status instead).
//
// Pure functions over values (no hardware): host tests in boot_check_test.cc.
module;

#include <ktl/macros.h>

export module kernel.boot_check;

import ktl;
import boot.info;
import mm.addr;
import mm.paging.x86;

export namespace kernel {

using ktl::u32;
using ktl::u64;
using ktl::usize;

// Sizes beyond these are absurd for a machine this kernel can drive.
inline constexpr u64 kMaxMapEntries = 65536;
inline constexpr u64 kMaxCommandLine = 4096;

enum class HeaderProblem : u32 {
  Missing,
  BadMagic,
  VersionMismatch,
  SizeMismatch,
  CommandLineTooLong,
  DirectMapMismatch,
  PatMismatch
};
[[nodiscard]] constexpr const char* to_string(HeaderProblem p) {
  switch (p) {
    case HeaderProblem::Missing: return "no boot information";
    case HeaderProblem::BadMagic: return "bad magic";
    case HeaderProblem::VersionMismatch: return "boot protocol version mismatch";
    case HeaderProblem::SizeMismatch: return "boot information size mismatch";
    case HeaderProblem::CommandLineTooLong: return "command line too long";
    case HeaderProblem::DirectMapMismatch: return "direct map base mismatch";
    case HeaderProblem::PatMismatch: return "PAT mismatch";
  }
  return "unknown boot information problem";
}

struct HeaderError {
  HeaderProblem problem;
  u64 found;     // the value in the boot info
  u64 expected;  // what this kernel understands
};
void format_value(ktl::FormatSink& sink, const HeaderError& e, const ktl::FormatSpec& spec);

// Checks magic, version and size, then the command-line length, the direct-map base (a layout
// constant of the boot protocol) and the PAT the loader programmed (the memory types of the
// kernel's paging formats index mm::paging::x86::kPat), in that order.
[[nodiscard]] ktl::Result<void, HeaderError> check_header(const boot::BootInfo* info);

enum class MapProblem : u32 {
  Missing,      // no map at all
  TooLarge,     // more than kMaxMapEntries entries
  ZeroSize,     // an entry of size 0
  Unaligned,    // base or size not a multiple of 4 KiB
  Overflows,    // base + size wraps around or passes the 52-bit physical limit ("absurd size")
  UnknownKind,  // a kind the boot protocol does not define
  Unsorted,     // base below the previous entry's base
  Overlap,      // starts before the previous entry ends
  NoUsableMemory,
};
[[nodiscard]] constexpr const char* to_string(MapProblem p) {
  switch (p) {
    case MapProblem::Missing: return "memory map missing";
    case MapProblem::TooLarge: return "memory map too large";
    case MapProblem::ZeroSize: return "memory map entry of size 0";
    case MapProblem::Unaligned: return "memory map entry not page aligned";
    case MapProblem::Overflows: return "memory map entry of absurd size";
    case MapProblem::UnknownKind: return "memory map entry of unknown kind";
    case MapProblem::Unsorted: return "memory map out of order";
    case MapProblem::Overlap: return "memory map entries overlap";
    case MapProblem::NoUsableMemory: return "memory map without usable memory";
  }
  return "unknown memory map problem";
}

struct MapError {
  MapProblem problem;
  usize index;  // the offending entry
  boot::MemoryMapEntry entry;
  boot::MemoryMapEntry previous;  // for Unsorted / Overlap
  u64 count;                      // for TooLarge
};
void format_value(ktl::FormatSink& sink, const MapError& e, const ktl::FormatSpec& spec);

inline constexpr usize kMemoryKinds = 15;  // MemoryKind values are 1..14; index 0 unused

struct MapSummary {
  usize regions = 0;
  u64 usable_bytes = 0;
  u64 highest_address = 0;  // end of the highest entry
  ktl::Array<u64, kMemoryKinds> bytes_by_kind{};
};

[[nodiscard]] bool is_known_kind(boot::MemoryKind k);
// Validates every entry and the order between neighbours; returns the totals.
[[nodiscard]] ktl::Result<MapSummary, MapError> check_memory_map(ktl::Span<const boot::MemoryMapEntry> map);

}  // namespace kernel
