// loader.firmware_tables: validation of the firmware's ACPI RSDP and SMBIOS entry points.
//
// Pure code over byte spans (copied out of firmware memory by the caller), tested on the host with
// good and corrupted structures. Reading is two-phase because the length is inside the structure:
// the caller reads the fixed prefix (kRsdpV1Length / kSmbiosPrefixLength bytes), asks for the full
// length, reads that and validates.
//
//   RSDP (ACPI 6.5 §5.2.5): "RSD PTR ", checksum over the first 20 bytes; revision >= 2 adds a
//     length (>= 36) and an extended checksum over `length` bytes.
//   SMBIOS 2.x (DSP0134 §5.2.1): "_SM_", checksum over the entry length, "_DMI_" at 0x10 with an
//     intermediate checksum over 15 bytes (so at least 0x1f bytes are read, also for the entry
//     length 0x1e that some firmware reports after a 2.1 erratum).
//   SMBIOS 3.x (DSP0134 §5.2.2): "_SM3_", checksum over the entry length (>= 0x18), 64-bit table.
module;

#include <ktl/macros.h>

export module loader.firmware_tables;

import ktl;

export namespace loader {

using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

enum class TableError : u32 {
  TooShort,
  BadSignature,
  BadChecksum,
  BadLength,
  BadExtendedChecksum,
  BadIntermediateChecksum,
};

[[nodiscard]] constexpr const char* to_string(TableError e) {
  switch (e) {
    case TableError::TooShort: return "structure shorter than its fixed part";
    case TableError::BadSignature: return "bad signature";
    case TableError::BadChecksum: return "checksum mismatch";
    case TableError::BadLength: return "implausible length field";
    case TableError::BadExtendedChecksum: return "extended checksum mismatch";
    case TableError::BadIntermediateChecksum: return "intermediate (_DMI_) checksum mismatch";
  }
  return "unknown table error";
}

inline constexpr usize kRsdpV1Length = 20;
inline constexpr usize kRsdpV2MinLength = 36;
inline constexpr usize kMaxRsdpLength = 256;
inline constexpr usize kSmbiosPrefixLength = 7;  // enough to find the entry-point length
inline constexpr usize kMaxSmbiosEntryLength = 64;

struct Rsdp {
  u32 revision;  // 0 = ACPI 1.0 (RSDT only), >= 2 = ACPI 2.0+ (XSDT)
  u32 length;    // bytes validated
  u64 rsdt;
  u64 xsdt;  // 0 for revision 0
};

struct SmbiosEntryPoint {
  u32 major;
  u32 minor;
  u32 entry_length;
  u64 table_address;
  u64 table_length;  // 2.x: exact; 3.x: maximum size
};

// Bytes validate_rsdp needs, given at least the first kRsdpV1Length bytes (0 if it cannot be an RSDP).
[[nodiscard]] usize rsdp_length(ktl::Span<const u8> prefix);
[[nodiscard]] ktl::Result<Rsdp, TableError> validate_rsdp(ktl::Span<const u8> bytes);

// Bytes validate_smbios{2,3} needs, given at least kSmbiosPrefixLength bytes (0 if implausible).
[[nodiscard]] usize smbios2_length(ktl::Span<const u8> prefix);
[[nodiscard]] usize smbios3_length(ktl::Span<const u8> prefix);
[[nodiscard]] ktl::Result<SmbiosEntryPoint, TableError> validate_smbios2(ktl::Span<const u8> bytes);
[[nodiscard]] ktl::Result<SmbiosEntryPoint, TableError> validate_smbios3(ktl::Span<const u8> bytes);

// The byte sum of `bytes` modulo 256 (0 for a valid ACPI/SMBIOS checksum).
[[nodiscard]] constexpr u8 byte_sum(ktl::Span<const u8> bytes) {
  u8 sum = 0;
  for (u8 b : bytes) sum = static_cast<u8>(sum + b);
  return sum;
}

}  // namespace loader
