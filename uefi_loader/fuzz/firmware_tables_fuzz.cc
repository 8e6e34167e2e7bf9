// libFuzzer target for loader.firmware_tables: the input is a firmware structure (an ACPI RSDP or
// an SMBIOS 2.x/3.x entry point) behind a mode byte that can stamp the signature and repair the
// checksums, so that mutations reach the checks after them. Each validator runs on the bytes and
// is compared with the specification's rules, applied on their own below (byte sums and
// little-endian fields decoded here; nothing of the module is shared):
//
//   - verdict: accepted exactly when the signature, the length rules (RSDP revision >= 2: 36 <=
//     length <= 256; SMBIOS 2.x: 0x1e <= length <= 64 in a structure of at least 0x1f bytes;
//     SMBIOS 3.x: 0x18 <= length <= 64), the bytes present and every checksum (RSDP: first 20 bytes,
//     then `length` bytes; SMBIOS 2.x: `length` bytes and the 15-byte _DMI_ block; 3.x: `length`
//     bytes) hold.
//   - when accepted, every field is the one in the bytes (revision 0 and no XSDT for ACPI 1.0).
//   - the two-phase read of uefi_loader/main.cc: the length the *_length function asks for, from
//     the prefix the loader reads first (24 bytes for the RSDP, kSmbiosPrefixLength for SMBIOS), is
//     enough: validating exactly that many bytes gives the same outcome as validating all of them,
//     and a length of 0 (implausible) means the structure is rejected.
//   - byte_sum is the byte sum modulo 256.
//
// Input layout: byte 0 = mode: bits 0-1 which structure (0 RSDP, 1 SMBIOS 2.x, 2 SMBIOS 3.x, 3 none:
// the bytes as they are); bit 2: stamp the signature; bit 3: repair the (first) checksum; bit 4:
// repair the second one (RSDP extended, SMBIOS 2.x intermediate). The rest is the structure, fed
// to all three validators.
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() replays the files given as arguments
// or, with none, the checked-in corpus (uefi_loader/fuzz/firmware_tables_corpus, see make_corpora.py).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "testing/fuzz/corpus_replay.h"

import ktl;
import loader.firmware_tables;

namespace {

using u64 = ktl::u64;
using u32 = ktl::u32;
using Bytes = std::vector<std::uint8_t>;

[[noreturn]] void fail(const char* what, u64 a = 0, u64 b = 0) {
  std::fprintf(stderr, "firmware_tables_fuzz: %s (%#llx, %#llx)\n", what, static_cast<unsigned long long>(a),
               static_cast<unsigned long long>(b));
  std::abort();
}

u64 le(const Bytes& b, std::size_t at, int n) {
  u64 v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b.at(at + static_cast<std::size_t>(i));
  return v;
}

unsigned sum(const Bytes& b, std::size_t from, std::size_t count) {
  unsigned s = 0;
  for (std::size_t i = from; i < from + count; ++i) s += b.at(i);
  return s % 256;
}

bool has(const Bytes& b, std::size_t at, const char* sig) {
  const std::size_t n = std::strlen(sig);
  return b.size() >= at + n && std::memcmp(b.data() + at, sig, n) == 0;
}

// Sets b[at] so that the `count` bytes from `from` sum to 0 (if they are all there).
void repair(Bytes& b, std::size_t at, std::size_t from, std::size_t count) {
  if (b.size() < from + count || at >= b.size()) return;
  b[at] = 0;
  b[at] = static_cast<std::uint8_t>(256 - sum(b, from, count));
}

void stamp(Bytes& b, std::size_t at, const char* sig) {
  for (std::size_t i = 0; sig[i] != 0 && at + i < b.size(); ++i)
    b[at + i] = static_cast<std::uint8_t>(sig[i]);
}

ktl::Span<const ktl::u8> span(const Bytes& b) { return ktl::Span<const ktl::u8>(b); }

// --- the specification's rules ---------------------------------------------------------------------

struct RsdpRef {
  bool valid = false;
  loader::Rsdp r{};
};
RsdpRef rsdp_reference(const Bytes& b) {
  RsdpRef out;
  if (b.size() < 20 || !has(b, 0, "RSD PTR ") || sum(b, 0, 20) != 0) return out;
  out.r = {b[15], 20, static_cast<u32>(le(b, 16, 4)), 0};
  if (b[15] >= 2) {
    if (b.size() < 36) return out;
    const u64 length = le(b, 20, 4);
    if (length < 36 || length > 256 || length > b.size() || sum(b, 0, length) != 0) return out;
    out.r.length = static_cast<u32>(length);
    out.r.xsdt = le(b, 24, 8);
  } else {
    out.r.revision = 0;
  }
  out.valid = true;
  return out;
}

struct SmbiosRef {
  bool valid = false;
  loader::SmbiosEntryPoint e{};
};
SmbiosRef smbios2_reference(const Bytes& b) {
  SmbiosRef out;
  // The entry point is 0x1f bytes; 0x1e is a length field some firmware reports (2.1 erratum).
  if (b.size() < 0x1f || !has(b, 0, "_SM_")) return out;
  const std::size_t length = b[5];
  if (length < 0x1e || length > 64 || length > b.size() || sum(b, 0, length) != 0) return out;
  if (!has(b, 0x10, "_DMI_") || sum(b, 0x10, 15) != 0) return out;
  out.e = {b[6], b[7], static_cast<u32>(length), le(b, 0x18, 4), le(b, 0x16, 2)};
  out.valid = true;
  return out;
}
SmbiosRef smbios3_reference(const Bytes& b) {
  SmbiosRef out;
  if (b.size() < 0x18 || !has(b, 0, "_SM3_")) return out;
  const std::size_t length = b[6];
  if (length < 0x18 || length > 64 || length > b.size() || sum(b, 0, length) != 0) return out;
  out.e = {b[7], b[8], static_cast<u32>(length), le(b, 0x10, 8), le(b, 0x0c, 4)};
  out.valid = true;
  return out;
}

// --- comparisons -----------------------------------------------------------------------------------

bool same(const loader::Rsdp& a, const loader::Rsdp& b) {
  return a.revision == b.revision && a.length == b.length && a.rsdt == b.rsdt && a.xsdt == b.xsdt;
}
bool same(const loader::SmbiosEntryPoint& a, const loader::SmbiosEntryPoint& b) {
  return a.major == b.major && a.minor == b.minor && a.entry_length == b.entry_length &&
         a.table_address == b.table_address && a.table_length == b.table_length;
}
template <class T>
bool same(const ktl::Result<T, loader::TableError>& a, const ktl::Result<T, loader::TableError>& b) {
  if (a.is_ok() != b.is_ok()) return false;
  return a.is_ok() ? same(a.value(), b.value()) : a.error() == b.error();
}

template <class T>
void check_error(const ktl::Result<T, loader::TableError>& r, const char* what) {
  if (r.is_err() &&
      ktl::to_underlying(r.error()) > ktl::to_underlying(loader::TableError::BadIntermediateChecksum))
    fail(what, ktl::to_underlying(r.error()));
}

// The loader's two-phase read: `prefix` bytes, then what length_of asks for, then validate.
template <class LengthFn, class ValidateFn>
void check_two_phase(const Bytes& b, std::size_t prefix, LengthFn length_of, ValidateFn validate,
                     const char* name) {
  if (b.size() < prefix) return;
  const Bytes head(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(prefix));
  const std::size_t n = length_of(span(head));
  const auto all = validate(span(b));
  if (n == 0) {
    if (all.is_ok()) {
      std::fprintf(stderr, "firmware_tables_fuzz: %s: length 0 (implausible) but the structure validates\n",
                   name);
      std::abort();
    }
    return;
  }
  if (n > b.size()) return;  // the loader would read more than the input holds
  const Bytes exact(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
  if (!same(validate(span(exact)), all)) {
    std::fprintf(stderr,
                 "firmware_tables_fuzz: %s: validating the %zu bytes the length asks for differs from %zu\n",
                 name, n, b.size());
    std::abort();
  }
}

void check(const Bytes& b) {
  {
    unsigned s = 0;
    for (std::uint8_t x : b) s += x;
    if (loader::byte_sum(span(b)) != s % 256) fail("byte_sum", loader::byte_sum(span(b)), s % 256);
  }

  const auto rsdp = loader::validate_rsdp(span(b));
  check_error(rsdp, "validate_rsdp: unknown error");
  const RsdpRef rsdp_ref = rsdp_reference(b);
  if (rsdp.is_ok() != rsdp_ref.valid) fail(rsdp_ref.valid ? "RSDP rejected" : "RSDP accepted", b.size());
  if (rsdp.is_ok() && !same(rsdp.value(), rsdp_ref.r)) fail("RSDP fields differ", rsdp.value().length);
  check_two_phase(b, 24, loader::rsdp_length, loader::validate_rsdp, "RSDP");

  const auto sm2 = loader::validate_smbios2(span(b));
  check_error(sm2, "validate_smbios2: unknown error");
  const SmbiosRef sm2_ref = smbios2_reference(b);
  if (sm2.is_ok() != sm2_ref.valid) fail(sm2_ref.valid ? "SMBIOS 2 rejected" : "SMBIOS 2 accepted", b.size());
  if (sm2.is_ok() && !same(sm2.value(), sm2_ref.e)) fail("SMBIOS 2 fields differ", sm2.value().entry_length);
  check_two_phase(b, loader::kSmbiosPrefixLength, loader::smbios2_length, loader::validate_smbios2,
                  "SMBIOS 2");

  const auto sm3 = loader::validate_smbios3(span(b));
  check_error(sm3, "validate_smbios3: unknown error");
  const SmbiosRef sm3_ref = smbios3_reference(b);
  if (sm3.is_ok() != sm3_ref.valid) fail(sm3_ref.valid ? "SMBIOS 3 rejected" : "SMBIOS 3 accepted", b.size());
  if (sm3.is_ok() && !same(sm3.value(), sm3_ref.e)) fail("SMBIOS 3 fields differ", sm3.value().entry_length);
  check_two_phase(b, loader::kSmbiosPrefixLength, loader::smbios3_length, loader::validate_smbios3,
                  "SMBIOS 3");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  // An exact-size heap copy: ASan reports any read past the end of the structure.
  Bytes b(data + 1, data + size);
  switch (mode & 3) {
    case 0:
      if ((mode & 4) != 0) stamp(b, 0, "RSD PTR ");
      if ((mode & 8) != 0) repair(b, 8, 0, 20);
      if ((mode & 16) != 0 && b.size() >= 24) repair(b, 32, 0, static_cast<std::size_t>(le(b, 20, 4)));
      break;
    case 1:
      if ((mode & 4) != 0) {
        stamp(b, 0, "_SM_");
        stamp(b, 0x10, "_DMI_");
      }
      if ((mode & 16) != 0) repair(b, 0x15, 0x10, 15);
      if ((mode & 8) != 0 && b.size() > 5) repair(b, 4, 0, b[5]);
      break;
    case 2:
      if ((mode & 4) != 0) stamp(b, 0, "_SM3_");
      if ((mode & 8) != 0 && b.size() > 6) repair(b, 5, 0, b[6]);
      break;
    default: break;
  }
  check(b);
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "uefi_loader/fuzz/firmware_tables_corpus",
                                     LLVMFuzzerTestOneInput, "firmware_tables_fuzz");
}
#endif
