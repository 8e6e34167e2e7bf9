// libFuzzer target for kernel.acpi: the input is a physical memory image holding an RSDP and the
// tables it leads to; parse() runs over it through a PhysReader that serves exactly the image.
//
// Input layout (any byte string is valid; a short one is padded with zeros):
//   byte 0      mode: bit 0 repairs the checksums the parser checks (RSDP, extended RSDP, and every
//               table reachable from it: root table, listed tables, the FADT's DSDT), so that
//               mutations reach the decoders behind them
//   byte 1      which reads the refusing runs refuse, when there are many (see below)
//   bytes 2..3  the RSDP's offset in the image (little-endian)
//   the rest    the image, at physical address kBase
//
// Checks (an oracle independent of the module's internals):
//   - every read is at most 256 bytes and never wraps (PhysReader's promise);
//   - an error is a named AcpiError; a success respects the table's rules: distinct GSI bases and
//     override IRQs below 16, sleep types below 8, an HPET/FADT only when one is listed;
//     route_isa_irq and ioapic_for_gsi agree with brute-force answers over the parsed MADT;
//   - whenever the DSDT was decoded, \_S5_ (or the S5 error) is what an independent decoder of the
//     AML grammar (reference_s5 below) finds in the image's DSDT bytes;
//   - reader errors are never swallowed: a parse whose reader refuses its k-th read, and only that
//     one, fails with Unreadable (the reads before it were the same, so was the path): for every k
//     of the first run's reads when there are at most 24, else for eight k spread from byte 1;
//     a parse that refuses none makes the same reads and returns what the first one did.
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() replays the files given as arguments
// or, with none, the checked-in corpus (kernel/acpi/acpi_corpus, written by make_corpus.py).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>
#include <vector>

#include "testing/fuzz/corpus_replay.h"

import ktl;
import kernel.acpi;

// The harness is a judge, not a target: no coverage feedback from its own branches.
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace {

namespace acpi = kernel::acpi;
using acpi::AcpiError;
using u64 = ktl::u64;
using u32 = ktl::u32;
using u8 = ktl::u8;
using Bytes = std::vector<u8>;

constexpr u64 kBase = 0xe0000;
constexpr size_t kHeader = 4;

[[noreturn]] void fail(const char* what, u64 a = 0, u64 b = 0) {
  std::fprintf(stderr, "acpi_fuzz: %s (%#llx, %#llx)\n", what, static_cast<unsigned long long>(a),
               static_cast<unsigned long long>(b));
  std::abort();
}

class ImageReader final : public acpi::PhysReader {
 public:
  // The `refuse_at`-th read (0-based) fails, and only that one; SIZE_MAX: none.
  ImageReader(const Bytes& image, size_t refuse_at) : image_(image), refuse_at_(refuse_at) {}

  ktl::Result<void, AcpiError> read(u64 phys, ktl::Span<u8> out) const override {
    if (out.size() == 0 || out.size() > 256) fail("read size outside 1..256", out.size());
    if (phys + out.size() - 1 < phys) fail("read wraps past 2^64", phys, out.size());
    if (reads_++ == refuse_at_) return ktl::Err(AcpiError::Unreadable);
    if (phys < kBase || phys - kBase > image_.size() || out.size() > image_.size() - (phys - kBase)) {
      return ktl::Err(AcpiError::Unreadable);
    }
    std::memcpy(out.data(), image_.data() + (phys - kBase), out.size());
    return ktl::ok();
  }
  size_t reads() const { return reads_; }

 private:
  const Bytes& image_;
  size_t refuse_at_;
  mutable size_t reads_ = 0;
};

// --- checksum repair ---------------------------------------------------------------------------------

u64 le(const Bytes& b, size_t at, int n) {
  u64 v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<size_t>(i)];
  return v;
}

// The image offset of [phys, phys + n) if it lies inside the image.
bool inside(const Bytes& b, u64 phys, u64 n, size_t& offset) {
  if (phys < kBase || phys - kBase > b.size() || n > b.size() - (phys - kBase)) return false;
  offset = static_cast<size_t>(phys - kBase);
  return true;
}

// Makes the `count` bytes at `from` sum to 0 by setting b[from + at].
void repair(Bytes& b, size_t from, size_t at, size_t count) {
  b[from + at] = 0;
  unsigned sum = 0;
  for (size_t i = 0; i < count; ++i) sum += b[from + i];
  b[from + at] = static_cast<u8>(256 - sum % 256);
}

// A table at `phys`: fixes its checksum if it lies whole inside the image; returns its offset.
bool repair_table(Bytes& b, u64 phys, size_t& offset) {
  if (!inside(b, phys, 36, offset)) return false;
  const u64 length = le(b, offset + 4, 4);
  if (length < 36 || !inside(b, phys, length, offset)) return false;
  repair(b, offset, 9, static_cast<size_t>(length));
  return true;
}

void repair_all(Bytes& b, u64 rsdp) {
  size_t r;
  if (!inside(b, rsdp, 20, r)) return;
  repair(b, r, 8, 20);
  u64 root = le(b, r + 16, 4);
  size_t entry = 4;
  if (b[r + 15] >= 2 && inside(b, rsdp, 36, r)) {
    const u64 length = le(b, r + 20, 4);
    if (length >= 36 && length <= 256 && inside(b, rsdp, length, r))
      repair(b, r, 32, static_cast<size_t>(length));
    if (le(b, r + 24, 8) != 0) {
      root = le(b, r + 24, 8);
      entry = 8;
    }
  }
  size_t t;
  if (!inside(b, root, 36, t)) return;
  const u64 root_length = le(b, t + 4, 4);
  if (root_length < 36 || !inside(b, root, root_length, t)) return;
  // The listed tables first (a listed table may overlap the root table), then the root itself.
  for (size_t at = 36; at + entry <= root_length; at += entry) {
    const u64 phys = le(b, t + at, static_cast<int>(entry));
    size_t o;
    if (!repair_table(b, phys, o)) continue;
    if (std::memcmp(&b[o], "FACP", 4) == 0 && le(b, o + 4, 4) >= 44) {
      u64 dsdt = le(b, o + 40, 4);
      if (le(b, o + 4, 4) >= 148 && le(b, o + 140, 8) != 0) dsdt = le(b, o + 140, 8);
      size_t d;
      (void)repair_table(b, dsdt, d);
      (void)repair_table(b, phys, o);  // the DSDT may overlap the FADT
    }
  }
  (void)repair_table(b, root, t);
}

// --- oracles -----------------------------------------------------------------------------------------

bool listed(const acpi::Tables& t, const char* sig) {
  for (const acpi::TableInfo& i : t.tables) {
    if (std::memcmp(i.signature.data(), sig, 4) == 0) return true;
  }
  return false;
}

void check_success(const acpi::Tables& t) {
  const acpi::Madt& m = t.madt;
  if (t.tables.size() > acpi::kMaxListedTables || t.table_count < t.tables.size())
    fail("table list", t.table_count);
  if (t.tables.size() < acpi::kMaxListedTables) {
    if (!listed(t, "APIC")) fail("parsed without a listed MADT");
    if (t.hpet.has_value() && !listed(t, "HPET")) fail("HPET without a listed HPET table");
    if (!t.ecam.empty() && !listed(t, "MCFG")) fail("ECAM windows without a listed MCFG table");
    for (const acpi::EcamWindow& w : t.ecam) {
      if (w.end_bus < w.start_bus) fail("an ECAM window ends below its start bus");
    }
    if (t.fadt.has_value() && !listed(t, "FACP")) fail("FADT without a listed FACP table");
    if (t.s5.has_value() && !listed(t, "DSDT")) fail("\\_S5_ without a DSDT");
  }
  if (t.s5.has_value() && (t.s5->slp_typ_a > 7 || t.s5->slp_typ_b > 7)) fail("sleep type above 7");
  if (t.s5.has_value() && !t.fadt.has_value()) fail("\\_S5_ without a FADT");
  for (size_t i = 0; i < m.io_apics.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (m.io_apics[i].gsi_base == m.io_apics[j].gsi_base) fail("repeated GSI base", m.io_apics[i].gsi_base);
    }
  }
  for (size_t i = 0; i < m.isa_overrides.size(); ++i) {
    if (m.isa_overrides[i].source_irq > 15) fail("override of a non-ISA IRQ", m.isa_overrides[i].source_irq);
    for (size_t j = 0; j < i; ++j) {
      if (m.isa_overrides[i].source_irq == m.isa_overrides[j].source_irq) fail("repeated override");
    }
  }
  for (const acpi::LapicNmi& n : m.lapic_nmis) {
    if (n.lint > 1) fail("LINT above 1", n.lint);
  }
  for (u32 irq = 0; irq < 256; ++irq) {
    acpi::IrqRoute want{irq, acpi::Polarity::ActiveHigh, acpi::Trigger::Edge};
    for (const acpi::IsaOverride& o : m.isa_overrides) {
      if (o.source_irq == irq) want = {o.gsi, o.polarity, o.trigger};
    }
    if (!(acpi::route_isa_irq(m, static_cast<u8>(irq)) == want)) fail("route_isa_irq", irq);
  }
  // GSIs at and around every chip's base.
  for (const acpi::IoApic& io : m.io_apics) {
    for (u64 delta : {0ull, 1ull, 23ull, ~0ull}) {
      const u32 gsi = static_cast<u32>(io.gsi_base + delta);
      ktl::Optional<acpi::IoApicPin> want;
      for (size_t i = 0; i < m.io_apics.size(); ++i) {
        if (m.io_apics[i].gsi_base <= gsi &&
            (!want.has_value() || m.io_apics[i].gsi_base > m.io_apics[want->ioapic_index].gsi_base)) {
          want = acpi::IoApicPin{i, gsi - m.io_apics[i].gsi_base};
        }
      }
      if (!(acpi::ioapic_for_gsi(m, gsi) == want)) fail("ioapic_for_gsi", gsi);
    }
  }
}

// \_S5_ by ACPI 6.5 §20.2 (AML grammar), decoded here on its own from the image's DSDT bytes: the
// first NameOp ['\'] "_S5_", then PackageOp PkgLength NumElements and integer constants.
struct S5Reference {
  bool error = false;
  AcpiError why{};
  std::optional<acpi::SleepType> s5;
};

S5Reference reference_s5(const u8* d, size_t length) {
  S5Reference out;
  auto err = [&](AcpiError e) {
    out.error = true;
    out.why = e;
    return out;
  };
  size_t name = 0;
  for (size_t at = 37; at + 4 <= length; ++at) {
    if (std::memcmp(d + at, "_S5_", 4) != 0) continue;
    if (d[at - 1] == 0x08 || (d[at - 1] == '\\' && at >= 38 && d[at - 2] == 0x08)) {
      name = at;
      break;
    }
  }
  if (name == 0) return out;
  size_t p = name + 4;
  if (p >= length || d[p] != 0x12) return err(AcpiError::S5NotPackage);
  const size_t start = p + 1;
  if (start >= length) return err(AcpiError::S5BadPkgLength);
  const size_t follow = d[start] >> 6;
  if (start + follow >= length) return err(AcpiError::S5BadPkgLength);
  u64 pkg_length;
  if (follow == 0) {
    pkg_length = d[start] & 0x3f;
  } else {
    if ((d[start] & 0x30) != 0) return err(AcpiError::S5BadPkgLength);
    pkg_length = d[start] & 0x0f;
    for (size_t i = 0; i < follow; ++i) pkg_length += u64{d[start + 1 + i]} << (4 + 8 * i);
  }
  if (pkg_length < follow + 2 || start + pkg_length > length) return err(AcpiError::S5BadPkgLength);
  const size_t end = start + pkg_length;
  const unsigned count = d[start + follow + 1];
  if (count == 0) return err(AcpiError::S5NoElements);
  size_t q = start + follow + 2;
  u64 v[2] = {0, 0};
  for (unsigned i = 0; i < (count == 1 ? 1u : 2u); ++i) {
    if (q == end) return err(AcpiError::S5MissingElement);
    size_t n;
    switch (d[q]) {
      case 0x00:
        n = 0;
        v[i] = 0;
        break;
      case 0x01:
        n = 0;
        v[i] = 1;
        break;
      case 0xff:
        n = 0;
        v[i] = ~u64{0};
        break;
      case 0x0a: n = 1; break;
      case 0x0b: n = 2; break;
      case 0x0c: n = 4; break;
      case 0x0e: n = 8; break;
      default: return err(AcpiError::S5BadElement);
    }
    if (q + 1 + n > end) return err(AcpiError::S5ElementOverruns);
    if (n != 0) {
      v[i] = 0;
      for (size_t b = 0; b < n; ++b) v[i] |= u64{d[q + 1 + b]} << (8 * b);
    }
    q += 1 + n;
  }
  if (count == 1) {
    if (v[0] >= 0x10000) return err(AcpiError::S5ValueTooLarge);
    v[1] = v[0] >> 8;
    v[0] &= 0xff;
  }
  if (v[0] >= 8 || v[1] >= 8) return err(AcpiError::S5ValueTooLarge);
  out.s5 = acpi::SleepType{static_cast<u8>(v[0]), static_cast<u8>(v[1])};
  return out;
}

bool is_s5_error(AcpiError e) {
  return ktl::to_underlying(e) >= ktl::to_underlying(AcpiError::S5NotPackage) &&
         ktl::to_underlying(e) <= ktl::to_underlying(AcpiError::S5ValueTooLarge);
}

// After a parse that decoded the DSDT: \_S5_ or the S5 error must be the reference's.
void check_s5(const Bytes& image, const acpi::Tables& t, const ktl::Result<void, AcpiError>& r) {
  const acpi::TableInfo* dsdt = nullptr;
  const bool s5_error = r.is_err() && is_s5_error(r.error());
  if (r.is_ok()) {
    if (!t.fadt.has_value() || t.fadt->dsdt == 0) {
      if (t.s5.has_value()) fail("\\_S5_ without a DSDT");
      return;
    }
    // The FADT's DSDT (the root table may list other tables named "DSDT": those are not decoded).
    for (const acpi::TableInfo& i : t.tables) {
      if (i.address == t.fadt->dsdt && std::memcmp(i.signature.data(), "DSDT", 4) == 0) {
        dsdt = &i;
        break;
      }
    }
  } else if (s5_error && t.tables.size() < acpi::kMaxListedTables) {
    dsdt = &t.tables[t.tables.size() - 1];  // the table the error is about, read last
    if (std::memcmp(dsdt->signature.data(), "DSDT", 4) != 0)
      fail("an \\_S5_ error after a table other than the DSDT");
  }
  if (dsdt == nullptr) return;  // not decoded, or not listed (the list was full)
  size_t o;
  if (!inside(image, dsdt->address, dsdt->length, o)) return;
  const S5Reference want = reference_s5(image.data() + o, dsdt->length);
  if (want.error != s5_error)
    fail(
        want.error ? "\\_S5_ accepted, the reference refuses it" : "\\_S5_ refused, the reference accepts it",
        ktl::to_underlying(want.why), r.is_err() ? ktl::to_underlying(r.error()) : 0);
  if (want.error && want.why != r.error())
    fail("\\_S5_ error differs", ktl::to_underlying(want.why), ktl::to_underlying(r.error()));
  if (!want.error && r.is_ok() &&
      !(want.s5 == (t.s5.has_value() ? std::optional<acpi::SleepType>(*t.s5) : std::nullopt))) {
    fail("\\_S5_ differs", want.s5.has_value(), t.s5.has_value());
  }
}

// Field by field (the structs have padding).
auto key(const acpi::LocalApic& x) { return std::tuple(x.processor_uid, x.apic_id, x.state, x.x2apic); }
auto key(const acpi::IoApic& x) { return std::tuple(x.id, x.address, x.gsi_base); }
auto key(const acpi::IsaOverride& x) { return std::tuple(x.source_irq, x.gsi, x.polarity, x.trigger); }
auto key(const acpi::LapicNmi& x) { return std::tuple(x.processor_uid, x.lint, x.polarity, x.trigger); }
auto key(const acpi::TableInfo& x) { return std::tuple(x.address, x.length, x.revision); }

template <class List>
bool same_list(const List& x, const List& y) {
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (key(x[i]) != key(y[i])) return false;
  }
  return true;
}

bool same(const acpi::Tables& a, const acpi::Tables& b) {
  for (size_t i = 0; i < a.tables.size() && i < b.tables.size(); ++i) {
    if (std::memcmp(a.tables[i].signature.data(), b.tables[i].signature.data(), 4) != 0) return false;
  }
  return a.revision == b.revision && a.root_table == b.root_table && a.table_count == b.table_count &&
         a.null_entries == b.null_entries && a.madt.local_apic_address == b.madt.local_apic_address &&
         a.madt.pcat_compat == b.madt.pcat_compat && a.madt.disabled_cpus == b.madt.disabled_cpus &&
         a.madt.skipped_entries == b.madt.skipped_entries &&
         same_list(a.madt.local_apics, b.madt.local_apics) && same_list(a.madt.io_apics, b.madt.io_apics) &&
         same_list(a.madt.isa_overrides, b.madt.isa_overrides) &&
         same_list(a.madt.lapic_nmis, b.madt.lapic_nmis) && a.hpet.has_value() == b.hpet.has_value() &&
         a.fadt.has_value() == b.fadt.has_value() && a.s5 == b.s5 && same_list(a.tables, b.tables);
}

// Both Tables are large: made once (the inputs never depend on each other: parse_into resets).
acpi::Tables& first_tables() {
  static acpi::Tables t;
  return t;
}
acpi::Tables& second_tables() {
  static acpi::Tables t;
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes input(data, data + size);
  if (input.size() < kHeader) input.resize(kHeader);
  const u8 mode = input[0];
  const u8 refuse = input[1];
  const u64 rsdp = kBase + le(input, 2, 2);
  Bytes image(input.begin() + kHeader, input.end());
  if ((mode & 1) != 0) repair_all(image, rsdp);

  ImageReader reader(image, SIZE_MAX);
  acpi::Tables& first = first_tables();
  auto r = acpi::parse_into(reader, rsdp, first);
  if (r.is_err() && ktl::to_underlying(r.error()) > ktl::to_underlying(AcpiError::TooManyEcamWindows)) {
    fail("unnamed error", ktl::to_underlying(r.error()));
  }
  if (r.is_ok()) check_success(first);
  check_s5(image, first, r);

  // Refusing each read in turn (every one of a short run, eight spread by byte 1 otherwise), then
  // none.
  const size_t reads = reader.reads();
  const size_t tries = reads <= 24 ? reads : 8;
  acpi::Tables& second = second_tables();
  for (size_t j = 0; j < tries; ++j) {
    const size_t k = reads <= 24 ? j : (refuse * 131u + j * (reads / 8)) % reads;
    ImageReader refusing(image, k);
    auto again = acpi::parse_into(refusing, rsdp, second);
    if (!again.is_err() || again.error() != AcpiError::Unreadable)
      fail("a refused read was not reported", k, reads);
  }
  ImageReader same_reads(image, SIZE_MAX);
  auto again = acpi::parse_into(same_reads, rsdp, second);
  if (same_reads.reads() != reads || again.is_ok() != r.is_ok() ||
      (r.is_err() && again.error() != r.error()) || (r.is_ok() && !same(first, second))) {
    fail("the same reads gave a different outcome", reads);
  }
  return 0;
}

#pragma clang attribute pop

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "kernel/acpi/acpi_corpus", LLVMFuzzerTestOneInput,
                                     "acpi_fuzz");
}
#endif
