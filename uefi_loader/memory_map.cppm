// loader.memory_map: turns the firmware's memory map plus what the loader placed into the
// kernel's normalised map (boot::MemoryMapEntry): sorted, page aligned, non-overlapping, merged.
//
// Runs after ExitBootServices, so it allocates nothing: the caller passes scratch and output
// space sized before the final GetMemoryMap. Pure code, tested on the host with hostile maps
// (zero-length entries, overlaps, unaligned entries, unknown types).
//
// Method: every entry and overlay contributes its two boundaries; between two consecutive
// boundaries the kind is that of the highest-priority range covering the interval (what the
// loader placed beats loader data and free RAM; firmware reservations beat everything else, except
// that the framebuffer beats the ACPI, runtime and MMIO kinds). Firmware RAM (usable and loader
// data) that is not page aligned shrinks inwards to whole pages, everything else grows outwards.
// Addresses nothing covers are left out. Ranges that reach past 2^64 are cut off at 2^64 - 4 KiB:
// base + size of every region fits in 64 bits, and the last page of the address space is never
// reported. uefi_loader/fuzz/memory_map_fuzz.cc checks all of this against a model.
module;

#include <ktl/macros.h>

export module loader.memory_map;

import ktl;
import boot.info;

export namespace loader {

using ktl::u32;
using ktl::u64;
using ktl::usize;

// One firmware descriptor, already decoded from the raw map (see efi::MemoryDescriptor).
struct FirmwareRange {
  u64 base;
  u64 pages;
  u32 efi_type;
  u64 attribute;
};

// Something the loader placed in memory, with the kind the kernel must see it as.
struct Placement {
  u64 base;
  u64 size;
  boot::MemoryKind kind;
};

enum class MapError : u32 { OutputTooSmall, ScratchTooSmall };

[[nodiscard]] constexpr const char* to_string(MapError e) {
  return e == MapError::OutputTooSmall ? "memory map output buffer too small"
                                       : "memory map scratch buffer too small";
}

// What kind an EFI memory type becomes (before overlays). Unknown types are reserved.
[[nodiscard]] boot::MemoryKind classify_efi_type(u32 efi_type, u64 attribute);

// Higher wins where ranges overlap.
[[nodiscard]] u32 kind_priority(boot::MemoryKind kind);

// Scratch needed for `firmware_count` descriptors and `placement_count` placements.
[[nodiscard]] constexpr usize scratch_entries_needed(usize firmware_count, usize placement_count) {
  return 2 * (firmware_count + placement_count);
}
// Output entries that always suffice.
[[nodiscard]] constexpr usize output_entries_needed(usize firmware_count, usize placement_count) {
  return 2 * (firmware_count + placement_count) + 1;
}

// Produces the normalised map in `out`; returns the number of entries written.
[[nodiscard]] ktl::Result<usize, MapError> normalise_memory_map(ktl::Span<const FirmwareRange> firmware,
                                                                ktl::Span<const Placement> placements,
                                                                ktl::Span<u64> scratch,
                                                                ktl::Span<boot::MemoryMapEntry> out);

}  // namespace loader
