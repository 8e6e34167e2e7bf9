// Host tests of the ACPI RSDP and SMBIOS entry-point validation with good and corrupted structures.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

import ktl;
import loader.firmware_tables;

namespace {

using loader::TableError;
using Bytes = std::vector<ktl::u8>;

ktl::Span<const ktl::u8> span(const Bytes& b) { return ktl::Span<const ktl::u8>(b); }

void put(Bytes& b, size_t at, const void* v, size_t n) { std::memcpy(b.data() + at, v, n); }
template <class T>
void put_le(Bytes& b, size_t at, T v) {
  put(b, at, &v, sizeof v);
}
// Sets b[at] so that b[from, from+len) sums to zero.
void fix_sum(Bytes& b, size_t at, size_t from, size_t len) {
  b[at] = 0;
  ktl::u8 sum = 0;
  for (size_t i = from; i < from + len; ++i) sum = static_cast<ktl::u8>(sum + b[i]);
  b[at] = static_cast<ktl::u8>(-sum);
}

Bytes rsdp_v1() {
  Bytes b(20, 0);
  put(b, 0, "RSD PTR ", 8);
  put(b, 9, "FERRIT", 6);
  b[15] = 0;
  put_le<ktl::u32>(b, 16, 0x7fe1'4000);
  fix_sum(b, 8, 0, 20);
  return b;
}

Bytes rsdp_v2() {
  Bytes b(36, 0);
  put(b, 0, "RSD PTR ", 8);
  put(b, 9, "FERRIT", 6);
  b[15] = 2;
  put_le<ktl::u32>(b, 16, 0x7fe1'4000);
  put_le<ktl::u32>(b, 20, 36);
  put_le<ktl::u64>(b, 24, 0x1'7fe1'5000ull);
  fix_sum(b, 8, 0, 20);
  fix_sum(b, 32, 0, 36);
  return b;
}

TEST(Rsdp, AcceptsAcpi1) {
  Bytes b = rsdp_v1();
  EXPECT_EQ(loader::rsdp_length(span(b)), 20u);
  auto r = loader::validate_rsdp(span(b));
  ASSERT_TRUE(r.is_ok()) << loader::to_string(r.error());
  EXPECT_EQ(r.value().revision, 0u);
  EXPECT_EQ(r.value().rsdt, 0x7fe1'4000u);
  EXPECT_EQ(r.value().xsdt, 0u);
}

TEST(Rsdp, AcceptsAcpi2WithBothChecksums) {
  Bytes b = rsdp_v2();
  EXPECT_EQ(loader::rsdp_length(span(b)), 36u);
  auto r = loader::validate_rsdp(span(b));
  ASSERT_TRUE(r.is_ok()) << loader::to_string(r.error());
  EXPECT_EQ(r.value().revision, 2u);
  EXPECT_EQ(r.value().xsdt, 0x1'7fe1'5000ull);
}

TEST(Rsdp, RejectsBadSignatureAndChecksums) {
  Bytes b = rsdp_v2();
  b[0] = 'X';
  EXPECT_EQ(loader::validate_rsdp(span(b)).error(), TableError::BadSignature);
  EXPECT_EQ(loader::rsdp_length(span(b)), 0u);

  b = rsdp_v2();
  b[16] ^= 1;  // inside the v1 part: both sums break, the v1 one is checked first
  EXPECT_EQ(loader::validate_rsdp(span(b)).error(), TableError::BadChecksum);

  b = rsdp_v2();
  b[24] ^= 1;  // the XSDT address: only the extended checksum covers it
  EXPECT_EQ(loader::validate_rsdp(span(b)).error(), TableError::BadExtendedChecksum);
}

TEST(Rsdp, RejectsImplausibleLengthsAndShortInput) {
  Bytes b = rsdp_v2();
  put_le<ktl::u32>(b, 20, 20);  // below the v2 minimum
  fix_sum(b, 8, 0, 20);
  EXPECT_EQ(loader::validate_rsdp(span(b)).error(), TableError::BadLength);
  EXPECT_EQ(loader::rsdp_length(span(b)), 0u);

  b = rsdp_v2();
  b.resize(30);
  EXPECT_EQ(loader::validate_rsdp(span(b)).error(), TableError::TooShort);
  EXPECT_EQ(loader::validate_rsdp(span(Bytes(10, 0))).error(), TableError::TooShort);
}

Bytes smbios2() {
  Bytes b(0x1f, 0);
  put(b, 0, "_SM_", 4);
  b[5] = 0x1f;
  b[6] = 2;
  b[7] = 8;
  put(b, 0x10, "_DMI_", 5);
  put_le<ktl::u16>(b, 0x16, 0x1234);
  put_le<ktl::u32>(b, 0x18, 0x000f'0000);
  fix_sum(b, 0x15, 0x10, 15);
  fix_sum(b, 4, 0, 0x1f);
  return b;
}

Bytes smbios3() {
  Bytes b(0x18, 0);
  put(b, 0, "_SM3_", 5);
  b[6] = 0x18;
  b[7] = 3;
  b[8] = 4;
  put_le<ktl::u32>(b, 0x0c, 0x2000);
  put_le<ktl::u64>(b, 0x10, 0x1'2345'6000ull);
  fix_sum(b, 5, 0, 0x18);
  return b;
}

TEST(Smbios, AcceptsVersion2) {
  Bytes b = smbios2();
  EXPECT_EQ(loader::smbios2_length(span(b)), 0x1fu);
  auto r = loader::validate_smbios2(span(b));
  ASSERT_TRUE(r.is_ok()) << loader::to_string(r.error());
  EXPECT_EQ(r.value().major, 2u);
  EXPECT_EQ(r.value().minor, 8u);
  EXPECT_EQ(r.value().table_address, 0xf'0000u);
  EXPECT_EQ(r.value().table_length, 0x1234u);
}

TEST(Smbios, RejectsBrokenVersion2) {
  Bytes b = smbios2();
  b[0x18] ^= 1;  // covered by both checksums
  EXPECT_EQ(loader::validate_smbios2(span(b)).error(), TableError::BadChecksum);
  b = smbios2();
  b[0x18] ^= 1;
  fix_sum(b, 4, 0, 0x1f);  // outer sum repaired, intermediate still broken
  EXPECT_EQ(loader::validate_smbios2(span(b)).error(), TableError::BadIntermediateChecksum);
  b = smbios2();
  b[0x10] = 'X';
  fix_sum(b, 4, 0, 0x1f);
  EXPECT_EQ(loader::validate_smbios2(span(b)).error(), TableError::BadSignature);
  b = smbios2();
  b[5] = 0x60;
  EXPECT_EQ(loader::smbios2_length(span(b)), 0u);
  EXPECT_EQ(loader::validate_smbios2(span(b)).error(), TableError::BadLength);
}

// Length field 0x1e (a 2.1 erratum): the structure is still 0x1f bytes (the _DMI_ block ends at
// 0x1e), so the length asked for is 0x1f and 0x1e bytes are too short, not a panic (found by
// uefi_loader/fuzz:firmware_tables_fuzz).
TEST(Smbios, Version2WithTheErratumLength) {
  Bytes b = smbios2();
  b[5] = 0x1e;
  fix_sum(b, 4, 0, 0x1e);
  EXPECT_EQ(loader::smbios2_length(span(b)), 0x1fu);
  auto r = loader::validate_smbios2(span(b));
  ASSERT_TRUE(r.is_ok()) << loader::to_string(r.error());
  EXPECT_EQ(r.value().entry_length, 0x1eu);
  b.resize(0x1e);
  EXPECT_EQ(loader::validate_smbios2(span(b)).error(), TableError::TooShort);
}

TEST(Smbios, AcceptsVersion3) {
  Bytes b = smbios3();
  EXPECT_EQ(loader::smbios3_length(span(b)), 0x18u);
  auto r = loader::validate_smbios3(span(b));
  ASSERT_TRUE(r.is_ok()) << loader::to_string(r.error());
  EXPECT_EQ(r.value().major, 3u);
  EXPECT_EQ(r.value().minor, 4u);
  EXPECT_EQ(r.value().table_address, 0x1'2345'6000ull);
  EXPECT_EQ(r.value().table_length, 0x2000u);
}

TEST(Smbios, RejectsBrokenVersion3) {
  Bytes b = smbios3();
  b[0x10] ^= 0x80;
  EXPECT_EQ(loader::validate_smbios3(span(b)).error(), TableError::BadChecksum);
  b = smbios3();
  b[3] = '2';
  EXPECT_EQ(loader::validate_smbios3(span(b)).error(), TableError::BadSignature);
  EXPECT_EQ(loader::smbios3_length(span(b)), 0u);
  // A 2.x entry point is not a 3.x one and vice versa.
  EXPECT_EQ(loader::validate_smbios3(span(smbios2())).error(), TableError::BadSignature);
  Bytes padded = smbios3();
  padded.resize(0x1f, 0);
  EXPECT_EQ(loader::validate_smbios2(span(padded)).error(), TableError::BadSignature);
}

}  // namespace
