module;

#include <ktl/macros.h>

module loader.firmware_tables;

import ktl;

namespace loader {

namespace {

bool has_signature(ktl::Span<const u8> bytes, ktl::StringView sig) {
  if (bytes.size() < sig.size()) return false;
  for (usize i = 0; i < sig.size(); ++i) {
    if (bytes[i] != static_cast<u8>(sig[i])) return false;
  }
  return true;
}

u32 le32(ktl::Span<const u8> b, usize at) {
  return u32{b[at]} | (u32{b[at + 1]} << 8) | (u32{b[at + 2]} << 16) | (u32{b[at + 3]} << 24);
}
u64 le64(ktl::Span<const u8> b, usize at) { return u64{le32(b, at)} | (u64{le32(b, at + 4)} << 32); }
u32 le16(ktl::Span<const u8> b, usize at) { return u32{b[at]} | (u32{b[at + 1]} << 8); }

// The SMBIOS 2.x entry point ends with the _DMI_ block at 0x10..0x1e: 0x1f bytes, even when its
// length field says 0x1e.
constexpr usize kSmbios2Size = 0x1f;

}  // namespace

usize rsdp_length(ktl::Span<const u8> prefix) {
  if (prefix.size() < kRsdpV1Length || !has_signature(prefix, "RSD PTR ")) return 0;
  if (prefix[15] < 2) return kRsdpV1Length;
  // The length field follows the v1 part; without it we only know the minimum.
  if (prefix.size() < 24) return kRsdpV2MinLength;
  u32 length = le32(prefix, 20);
  if (length < kRsdpV2MinLength || length > kMaxRsdpLength) return 0;
  return length;
}

ktl::Result<Rsdp, TableError> validate_rsdp(ktl::Span<const u8> b) {
  if (b.size() < kRsdpV1Length) return ktl::Err(TableError::TooShort);
  if (!has_signature(b, "RSD PTR ")) return ktl::Err(TableError::BadSignature);
  if (byte_sum(b.first(kRsdpV1Length)) != 0) return ktl::Err(TableError::BadChecksum);
  Rsdp r{b[15], static_cast<u32>(kRsdpV1Length), le32(b, 16), 0};
  if (r.revision < 2) {
    r.revision = 0;
    return r;
  }
  if (b.size() < kRsdpV2MinLength) return ktl::Err(TableError::TooShort);
  u32 length = le32(b, 20);
  if (length < kRsdpV2MinLength || length > kMaxRsdpLength) return ktl::Err(TableError::BadLength);
  if (b.size() < length) return ktl::Err(TableError::TooShort);
  if (byte_sum(b.first(length)) != 0) return ktl::Err(TableError::BadExtendedChecksum);
  r.length = length;
  r.xsdt = le64(b, 24);
  return r;
}

usize smbios2_length(ktl::Span<const u8> prefix) {
  if (prefix.size() < kSmbiosPrefixLength || !has_signature(prefix, "_SM_")) return 0;
  usize length = prefix[5];
  // 0x1f is the defined length; 0x1e appears in the wild (a 2.1 spec erratum).
  if (length < 0x1e || length > kMaxSmbiosEntryLength) return 0;
  return length < kSmbios2Size ? kSmbios2Size : length;
}

usize smbios3_length(ktl::Span<const u8> prefix) {
  if (prefix.size() < kSmbiosPrefixLength || !has_signature(prefix, "_SM3_")) return 0;
  usize length = prefix[6];
  if (length < 0x18 || length > kMaxSmbiosEntryLength) return 0;
  return length;
}

ktl::Result<SmbiosEntryPoint, TableError> validate_smbios2(ktl::Span<const u8> b) {
  if (b.size() < kSmbios2Size) return ktl::Err(TableError::TooShort);
  if (!has_signature(b, "_SM_")) return ktl::Err(TableError::BadSignature);
  usize length = b[5];
  if (length < 0x1e || length > kMaxSmbiosEntryLength) return ktl::Err(TableError::BadLength);
  if (b.size() < length) return ktl::Err(TableError::TooShort);
  if (byte_sum(b.first(length)) != 0) return ktl::Err(TableError::BadChecksum);
  ktl::Span<const u8> intermediate = b.subspan(0x10, 15);
  if (!has_signature(intermediate, "_DMI_")) return ktl::Err(TableError::BadSignature);
  if (byte_sum(intermediate) != 0) return ktl::Err(TableError::BadIntermediateChecksum);
  return SmbiosEntryPoint{b[6], b[7], static_cast<u32>(length), le32(b, 0x18), le16(b, 0x16)};
}

ktl::Result<SmbiosEntryPoint, TableError> validate_smbios3(ktl::Span<const u8> b) {
  if (b.size() < 0x18) return ktl::Err(TableError::TooShort);
  if (!has_signature(b, "_SM3_")) return ktl::Err(TableError::BadSignature);
  usize length = b[6];
  if (length < 0x18 || length > kMaxSmbiosEntryLength) return ktl::Err(TableError::BadLength);
  if (b.size() < length) return ktl::Err(TableError::TooShort);
  if (byte_sum(b.first(length)) != 0) return ktl::Err(TableError::BadChecksum);
  return SmbiosEntryPoint{b[7], b[8], static_cast<u32>(length), le64(b, 0x10), le32(b, 0x0c)};
}

}  // namespace loader
