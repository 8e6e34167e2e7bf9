module;

#include <ktl/macros.h>

module kernel.acpi;

import ktl;

namespace kernel::acpi {

namespace {

using ktl::Err;
using ktl::Result;
using ktl::Span;

constexpr usize kWindow = 256;
constexpr u32 kRsdpV1Length = 20;
constexpr u32 kRsdpV2MinLength = 36;
constexpr u32 kMaxRsdpLength = 256;
constexpr u32 kMadtFixedLength = 44;
constexpr u32 kHpetLength = 56;
constexpr u32 kFadtV1Length = 116;
constexpr u32 kFadtMaxLength = 276;  // ACPI 6.5: through the hypervisor vendor identity

// [phys, phys + length) does not wrap past 2^64.
[[nodiscard]] bool range_ok(u64 phys, u64 length) {
  return length == 0 || !ktl::checked_add<u64>(phys, length - 1).overflow;
}

[[nodiscard]] Result<void, AcpiError> read_range(const PhysReader& memory, u64 phys, Span<u8> out) {
  if (out.empty()) return ktl::ok();
  if (!range_ok(phys, out.size())) return Err(AcpiError::AddressOverflow);
  return memory.read(phys, out);
}

[[nodiscard]] u16 le16(Span<const u8> b, usize at) { return static_cast<u16>(b[at] | (b[at + 1] << 8)); }
[[nodiscard]] u32 le32(Span<const u8> b, usize at) {
  return u32{b[at]} | (u32{b[at + 1]} << 8) | (u32{b[at + 2]} << 16) | (u32{b[at + 3]} << 24);
}
[[nodiscard]] u64 le64(Span<const u8> b, usize at) { return u64{le32(b, at)} | (u64{le32(b, at + 4)} << 32); }

[[nodiscard]] u8 byte_sum(Span<const u8> bytes) {
  u8 sum = 0;
  for (u8 b : bytes) sum = static_cast<u8>(sum + b);
  return sum;
}

[[nodiscard]] bool is(Span<const u8> bytes, ktl::StringView text) {
  if (bytes.size() < text.size()) return false;
  for (usize i = 0; i < text.size(); ++i) {
    if (bytes[i] != static_cast<u8>(text[i])) return false;
  }
  return true;
}
[[nodiscard]] bool is(const ktl::Array<char, 4>& sig, ktl::StringView text) {
  return ktl::StringView(sig.span()) == text;
}

// A table of known length, read through a 256-byte window. The caller has checked that
// [phys, phys + length) does not wrap; offsets past `length` are a broken invariant (the decoders
// check their bounds first, each with its own error).
class TableBytes {
 public:
  TableBytes(const PhysReader& memory, u64 phys, u32 length)
      : memory_(memory), phys_(phys), length_(length) {}
  [[nodiscard]] u32 length() const { return length_; }

  [[nodiscard]] Result<u8, AcpiError> byte(u32 offset) {
    ktl::check(offset < length_, "acpi: table read past its length");
    if (offset < start_ || offset - start_ >= size_) TRY(load(offset));
    return window_[offset - start_];
  }
  // out.size() bytes from `offset` (offset + out.size() <= length).
  [[nodiscard]] Result<void, AcpiError> copy(u32 offset, Span<u8> out) {
    ktl::check(out.size() <= length_ && offset <= length_ - out.size(), "acpi: table copy past its length");
    for (usize i = 0; i < out.size(); ++i) out[i] = TRY(byte(static_cast<u32>(offset + i)));
    return ktl::ok();
  }
  // Whether all `length` bytes sum to 0 modulo 256.
  [[nodiscard]] Result<bool, AcpiError> checksum_ok() {
    u8 sum = 0;
    for (u32 at = 0; at < length_; at += kWindow) {
      TRY(load(at));
      sum = static_cast<u8>(sum + byte_sum(window_.span().first(size_)));
    }
    return sum == 0;
  }

 private:
  [[nodiscard]] Result<void, AcpiError> load(u32 offset) {
    u32 n = ktl::min<u32>(static_cast<u32>(kWindow), length_ - offset);
    size_ = 0;
    TRY(memory_.read(phys_ + offset, window_.span().first(n)));
    start_ = offset;
    size_ = n;
    return ktl::ok();
  }

  const PhysReader& memory_;
  u64 phys_;
  u32 length_;
  u32 start_ = 0;
  u32 size_ = 0;
  ktl::Array<u8, kWindow> window_{};
};

// Reads and checks a table's header; records it in `out.tables`.
[[nodiscard]] Result<TableInfo, AcpiError> read_header(const PhysReader& memory, u64 phys, Tables& out) {
  ktl::Array<u8, kSdtHeaderLength> h{};
  out.error_table = {};
  TRY(read_range(memory, phys, h.span()));
  TableInfo info{
      {static_cast<char>(h[0]), static_cast<char>(h[1]), static_cast<char>(h[2]), static_cast<char>(h[3])},
      phys,
      le32(h.span(), 4),
      h[8]};
  out.error_table = info.signature;
  ++out.table_count;
  (void)out.tables.push(info);
  if (info.length < kSdtHeaderLength) return Err(AcpiError::TableTooShort);
  if (info.length > kMaxTableLength) return Err(AcpiError::TableTooLong);
  if (!range_ok(phys, info.length)) return Err(AcpiError::AddressOverflow);
  return info;
}

[[nodiscard]] Result<void, AcpiError> verify_checksum(TableBytes& t) {
  if (!TRY(t.checksum_ok())) return Err(AcpiError::TableChecksum);
  return ktl::ok();
}

// MPS INTI flags (MADT types 2, 3, 4, 0xA): polarity bits 1:0, trigger bits 3:2; 00 = the bus's
// default (ISA and the LINT pins: active-high, edge), 10 reserved.
[[nodiscard]] Result<Polarity, AcpiError> polarity_of(u16 flags) {
  switch (flags & 3) {
    case 0:
    case 1: return Polarity::ActiveHigh;
    case 3: return Polarity::ActiveLow;
    default: return Err(AcpiError::ReservedPolarity);
  }
}
[[nodiscard]] Result<Trigger, AcpiError> trigger_of(u16 flags) {
  switch ((flags >> 2) & 3) {
    case 0:
    case 1: return Trigger::Edge;
    case 3: return Trigger::Level;
    default: return Err(AcpiError::ReservedTrigger);
  }
}

[[nodiscard]] u32 fixed_entry_length(u8 type) {
  switch (type) {
    case 0: return 8;     // Processor Local APIC
    case 1: return 12;    // I/O APIC
    case 2: return 10;    // Interrupt Source Override
    case 4: return 6;     // Local APIC NMI
    case 5: return 12;    // Local APIC Address Override
    case 9: return 16;    // Processor Local x2APIC
    case 0xa: return 12;  // Local x2APIC NMI
    default: return 2;    // not decoded
  }
}

[[nodiscard]] Result<void, AcpiError> add_cpu(Madt& madt, u8 madt_revision, u32 uid, u32 apic_id, u32 flags,
                                              bool x2apic) {
  LocalApic::State state;
  if ((flags & 1) != 0) {
    state = LocalApic::State::Enabled;
  } else if ((flags & 2) != 0 && madt_revision >= 5) {
    state = LocalApic::State::OnlineCapable;
  } else {
    ++madt.disabled_cpus;
    return ktl::ok();
  }
  if (!madt.local_apics.push(LocalApic{uid, apic_id, state, x2apic})) return Err(AcpiError::TooManyCpus);
  return ktl::ok();
}

[[nodiscard]] Result<void, AcpiError> add_nmi(Madt& madt, u32 uid, u16 flags, u8 lint) {
  if (lint > 1) return Err(AcpiError::BadLint);
  LapicNmi nmi{uid, lint, TRY(polarity_of(flags)), TRY(trigger_of(flags))};
  if (!madt.lapic_nmis.push(nmi)) return Err(AcpiError::TooManyLapicNmis);
  return ktl::ok();
}

[[nodiscard]] Result<void, AcpiError> decode_entry(Madt& madt, u8 madt_revision, bool& lapic_overridden,
                                                   Span<const u8> e) {
  switch (e[0]) {
    case 0: return add_cpu(madt, madt_revision, e[2], e[3], le32(e, 4), false);
    case 9: return add_cpu(madt, madt_revision, le32(e, 12), le32(e, 4), le32(e, 8), true);
    case 1: {
      IoApic io{e[2], le32(e, 4), le32(e, 8)};
      for (const IoApic& other : madt.io_apics) {
        if (other.gsi_base == io.gsi_base) return Err(AcpiError::IoApicGsiBaseRepeated);
      }
      if (!madt.io_apics.push(io)) return Err(AcpiError::TooManyIoApics);
      return ktl::ok();
    }
    case 2: {
      if (e[2] != 0) return Err(AcpiError::IsaOverrideBadBus);
      u8 irq = e[3];
      if (irq > 15) return Err(AcpiError::IsaOverrideBadIrq);
      for (const IsaOverride& other : madt.isa_overrides) {
        if (other.source_irq == irq) return Err(AcpiError::IsaOverrideRepeated);
      }
      u16 flags = le16(e, 8);
      IsaOverride o{irq, le32(e, 4), TRY(polarity_of(flags)), TRY(trigger_of(flags))};
      ktl::check(madt.isa_overrides.push(o), "acpi: more ISA overrides than ISA IRQs");
      return ktl::ok();
    }
    case 4: return add_nmi(madt, e[2] == 0xff ? kAllProcessors : e[2], le16(e, 3), e[5]);
    case 0xa: return add_nmi(madt, le32(e, 4), le16(e, 2), e[8]);
    case 5:
      // At most one (ACPI 6.5, Local APIC Address Override Structure); the first one wins.
      if (!lapic_overridden) madt.local_apic_address = le64(e, 4);
      lapic_overridden = true;
      return ktl::ok();
    default: ++madt.skipped_entries; return ktl::ok();
  }
}

[[nodiscard]] Result<void, AcpiError> parse_madt(const PhysReader& memory, const TableInfo& info,
                                                 Madt& madt) {
  if (info.length < kMadtFixedLength) return Err(AcpiError::MadtTooShort);
  TableBytes t(memory, info.address, info.length);
  TRY(verify_checksum(t));
  ktl::Array<u8, 8> fixed{};
  TRY(t.copy(kSdtHeaderLength, fixed.span()));
  madt.local_apic_address = le32(fixed.span(), 0);
  madt.pcat_compat = (le32(fixed.span(), 4) & 1) != 0;
  bool lapic_overridden = false;
  u32 at = kMadtFixedLength;
  while (at < info.length) {
    u32 left = info.length - at;
    if (left < 2) return Err(AcpiError::MadtEntryOverruns);
    u8 type = TRY(t.byte(at));
    u8 length = TRY(t.byte(at + 1));
    if (length < 2) return Err(AcpiError::MadtEntryBadLength);
    if (length > left) return Err(AcpiError::MadtEntryOverruns);
    u32 fixed_length = fixed_entry_length(type);
    if (length < fixed_length) return Err(AcpiError::MadtEntryTooShort);
    ktl::Array<u8, 16> entry{};
    TRY(t.copy(at, entry.span().first(fixed_length)));
    TRY(decode_entry(madt, info.revision, lapic_overridden, entry.span().first(fixed_length)));
    at += length;
  }
  return ktl::ok();
}

[[nodiscard]] Result<Hpet, AcpiError> parse_hpet(const PhysReader& memory, const TableInfo& info) {
  if (info.length < kHpetLength) return Err(AcpiError::HpetTooShort);
  TableBytes t(memory, info.address, info.length);
  TRY(verify_checksum(t));
  ktl::Array<u8, kHpetLength - kSdtHeaderLength> f{};
  TRY(t.copy(kSdtHeaderLength, f.span()));
  // Offsets from 36: block id (0), GAS (4: space, width, offset, access size, address at 8),
  // HPET number (16), minimum tick (17), page protection (19).
  if (f[4] != 0) return Err(AcpiError::HpetNotMemory);
  return Hpet{le64(f.span(), 8), le32(f.span(), 0), f[16], le16(f.span(), 17)};
}

// MCFG: 36-byte header, 8 reserved bytes, then 16-byte entries: base (8), segment (2), start bus
// (1), end bus (1), reserved (4).
[[nodiscard]] Result<void, AcpiError> parse_mcfg(const PhysReader& memory, const TableInfo& info,
                                                 Tables& out) {
  constexpr u32 kFirstEntry = kSdtHeaderLength + 8;
  if (info.length < kFirstEntry || (info.length - kFirstEntry) % 16 != 0)
    return Err(AcpiError::McfgBadLength);
  TableBytes t(memory, info.address, info.length);
  TRY(verify_checksum(t));
  for (u32 at = kFirstEntry; at < info.length; at += 16) {
    ktl::Array<u8, 16> e{};
    TRY(t.copy(at, e.span()));
    EcamWindow w{le64(e.span(), 0), le16(e.span(), 8), e[10], e[11]};
    if (w.end_bus < w.start_bus) return Err(AcpiError::McfgBadBusRange);
    if (!out.ecam.push(w)) return Err(AcpiError::TooManyEcamWindows);
  }
  return ktl::ok();
}

// A Generic Address Structure at `at` in the FADT's bytes: an I/O port if the table reaches it, its
// address is non-zero and it is in system I/O space.
[[nodiscard]] ktl::Optional<u64> gas_io_port(Span<const u8> f, u32 length, u32 at) {
  if (length < at + 12 || f[at] != static_cast<u8>(AddressSpace::SystemIo)) return ktl::nullopt;
  u64 address = le64(f, at + 4);
  if (address == 0) return ktl::nullopt;
  return address;
}

[[nodiscard]] Result<u16, AcpiError> io_port(Span<const u8> f, u32 length, u32 legacy_at, u32 gas_at) {
  u64 port = gas_io_port(f, length, gas_at).value_or(le32(f, legacy_at));
  if (port > 0xffff) return Err(AcpiError::FadtBadIoPort);
  return static_cast<u16>(port);
}

[[nodiscard]] Result<Fadt, AcpiError> parse_fadt(const PhysReader& memory, const TableInfo& info) {
  if (info.length < kFadtV1Length) return Err(AcpiError::FadtTooShort);
  TableBytes t(memory, info.address, info.length);
  TRY(verify_checksum(t));
  // Fields past the table's length read as zero (older FADT revisions end earlier).
  ktl::Array<u8, kFadtMaxLength> raw{};
  u32 n = ktl::min(info.length, kFadtMaxLength);
  TRY(t.copy(0, raw.span().first(n)));
  Span<const u8> f = raw.span();
  Fadt fadt{};
  fadt.revision = info.revision;
  fadt.flags = le32(f, 112);
  fadt.sci_irq = le16(f, 46);
  fadt.pm1a_control = TRY(io_port(f, info.length, 64, 172));
  fadt.pm1b_control = TRY(io_port(f, info.length, 68, 184));
  fadt.pm_timer_port = TRY(io_port(f, info.length, 76, 208));
  if (fadt.pm_timer_port != 0 && f[91] != 4) return Err(AcpiError::FadtBadPmTimerLength);
  fadt.pm_timer_32bit = (fadt.flags & kFadtTimerValExt) != 0;
  fadt.dsdt = le32(f, 40);
  if (info.length >= 148 && le64(f, 140) != 0) fadt.dsdt = le64(f, 140);
  fadt.rtc_century = f[108];
  fadt.iapc_boot_arch = le16(f, 109);
  fadt.hw_reduced = (fadt.flags & kFadtHwReduced) != 0;
  if ((fadt.flags & kFadtResetRegSup) != 0 && info.length >= 129 && f[116] <= 2) {
    fadt.reset = ResetRegister{static_cast<AddressSpace>(f[116]), f[117], f[118], le64(f, 120), f[128]};
  }
  return fadt;
}

// --- \_S5_ in the DSDT (ACPI 6.5 §20: AML) ------------------------------------------------------------

constexpr u8 kNameOp = 0x08;
constexpr u8 kRootChar = '\\';
constexpr u8 kPackageOp = 0x12;

// An integer constant (ZeroOp, OneOp, OnesOp, Byte/Word/DWord/QWordPrefix) at `at`, inside the
// package ending at `end`; advances `at` past it.
[[nodiscard]] Result<u64, AcpiError> read_integer(TableBytes& t, u32& at, u32 end) {
  u8 op = TRY(t.byte(at));
  u32 size;
  switch (op) {
    case 0x00:  // ZeroOp
    case 0x01:  // OneOp
    case 0xff:  // OnesOp
      at += 1;
      return op == 0xff ? ~u64{0} : u64{op};
    case 0x0a: size = 1; break;  // BytePrefix
    case 0x0b: size = 2; break;  // WordPrefix
    case 0x0c: size = 4; break;  // DWordPrefix
    case 0x0e: size = 8; break;  // QWordPrefix
    default: return Err(AcpiError::S5BadElement);
  }
  if (end - at < 1 + size) return Err(AcpiError::S5ElementOverruns);
  u64 value = 0;
  for (u32 i = size; i > 0; --i) value = (value << 8) | TRY(t.byte(at + i));
  at += 1 + size;
  return value;
}

// The package after the name at `at`: PackageOp PkgLength NumElements PackageElementList.
[[nodiscard]] Result<SleepType, AcpiError> decode_s5(TableBytes& t, u32 at) {
  const u32 length = t.length();
  if (at >= length || TRY(t.byte(at)) != kPackageOp) return Err(AcpiError::S5NotPackage);
  const u32 pkg = at + 1;  // PkgLength counts itself and everything after it in the package
  if (pkg >= length) return Err(AcpiError::S5BadPkgLength);
  const u8 lead = TRY(t.byte(pkg));
  const u32 extra = lead >> 6;
  u32 pkg_length = lead & 0x3f;
  if (extra != 0) {
    if ((lead & 0x30) != 0 || length - pkg <= extra) return Err(AcpiError::S5BadPkgLength);
    pkg_length = lead & 0x0f;
    for (u32 i = 1; i <= extra; ++i) pkg_length |= u32{TRY(t.byte(pkg + i))} << (4 + 8 * (i - 1));
  }
  if (pkg_length < extra + 2 || pkg_length > length - pkg) return Err(AcpiError::S5BadPkgLength);
  const u32 end = pkg + pkg_length;
  const u8 count = TRY(t.byte(pkg + extra + 1));
  if (count == 0) return Err(AcpiError::S5NoElements);
  u32 cursor = pkg + extra + 2;
  ktl::Array<u64, 2> values{};
  const u32 needed = count == 1 ? 1 : 2;
  for (u32 i = 0; i < needed; ++i) {
    if (cursor >= end) return Err(AcpiError::S5MissingElement);
    values[i] = TRY(read_integer(t, cursor, end));
  }
  if (count == 1) {
    // One integer holding both: SLP_TYPa in bits 7:0, SLP_TYPb in bits 15:8 (as ACPICA reads it).
    if (values[0] > 0xffff) return Err(AcpiError::S5ValueTooLarge);
    values[1] = values[0] >> 8;
    values[0] &= 0xff;
  }
  if (values[0] > 7 || values[1] > 7) return Err(AcpiError::S5ValueTooLarge);
  return SleepType{static_cast<u8>(values[0]), static_cast<u8>(values[1])};
}

// The first `NameOp ['\'] "_S5_"` in the DSDT's body, decoded.
[[nodiscard]] Result<ktl::Optional<SleepType>, AcpiError> find_s5(TableBytes& t) {
  const u32 length = t.length();
  for (u32 at = kSdtHeaderLength + 1; at < length && length - at >= 4; ++at) {
    if (TRY(t.byte(at)) != '_' || TRY(t.byte(at + 1)) != 'S' || TRY(t.byte(at + 2)) != '5' ||
        TRY(t.byte(at + 3)) != '_') {
      continue;
    }
    u8 before = TRY(t.byte(at - 1));
    bool named = before == kNameOp ||
                 (before == kRootChar && at >= kSdtHeaderLength + 2 && TRY(t.byte(at - 2)) == kNameOp);
    if (named) return ktl::Optional<SleepType>(TRY(decode_s5(t, at + 4)));
  }
  return ktl::Optional<SleepType>();
}

[[nodiscard]] Result<void, AcpiError> parse_dsdt(const PhysReader& memory, u64 phys, Tables& out) {
  TableInfo info = TRY(read_header(memory, phys, out));
  if (!is(info.signature, "DSDT")) return Err(AcpiError::BadDsdtSignature);
  TableBytes t(memory, info.address, info.length);
  TRY(verify_checksum(t));
  ktl::Optional<SleepType> s5 = TRY(find_s5(t));
  if (s5.has_value()) out.s5 = *s5;
  return ktl::ok();
}

void reset(Tables& out) {
  out.revision = 0;
  out.oem_id = {};
  out.xsdt = false;
  out.root_table = 0;
  out.madt.local_apic_address = 0;
  out.madt.pcat_compat = false;
  out.madt.local_apics.clear();
  out.madt.io_apics.clear();
  out.madt.isa_overrides.clear();
  out.madt.lapic_nmis.clear();
  out.madt.disabled_cpus = 0;
  out.madt.skipped_entries = 0;
  out.hpet.reset();
  out.ecam.clear();
  out.fadt.reset();
  out.s5.reset();
  out.tables.clear();
  out.table_count = 0;
  out.null_entries = 0;
  out.error_table = {};
}

// The RSDP: the root table's address (and revision, OEM ID) into `out`.
[[nodiscard]] Result<void, AcpiError> parse_rsdp(const PhysReader& memory, u64 phys, Tables& out) {
  if (phys == 0) return Err(AcpiError::NoRsdp);
  if (!range_ok(phys, kRsdpV2MinLength)) return Err(AcpiError::AddressOverflow);
  ktl::Array<u8, kRsdpV2MinLength> r{};
  TRY(read_range(memory, phys, r.span().first(kRsdpV1Length)));
  if (!is(r.span(), "RSD PTR ")) return Err(AcpiError::BadRsdpSignature);
  if (byte_sum(r.span().first(kRsdpV1Length)) != 0) return Err(AcpiError::RsdpChecksum);
  out.revision = r[15];
  for (usize i = 0; i < 6; ++i) out.oem_id[i] = static_cast<char>(r[9 + i]);
  u64 rsdt = le32(r.span(), 16);
  u64 xsdt = 0;
  if (out.revision >= 2) {
    TRY(read_range(memory, phys + kRsdpV1Length, r.span().subspan(kRsdpV1Length)));
    u32 length = le32(r.span(), 20);
    if (length < kRsdpV2MinLength || length > kMaxRsdpLength) return Err(AcpiError::RsdpBadLength);
    TableBytes all(memory, phys, length);
    if (!TRY(all.checksum_ok())) return Err(AcpiError::RsdpExtendedChecksum);
    xsdt = le64(r.span(), 24);
  }
  out.xsdt = xsdt != 0;
  out.root_table = out.xsdt ? xsdt : rsdt;
  if (out.root_table == 0) return Err(AcpiError::NoRootTable);
  return ktl::ok();
}

}  // namespace

Result<void, AcpiError> parse_into(const PhysReader& memory, u64 rsdp_phys, Tables& out) {
  reset(out);
  TRY(parse_rsdp(memory, rsdp_phys, out));

  TableInfo root = TRY(read_header(memory, out.root_table, out));
  if (!is(root.signature, out.xsdt ? "XSDT" : "RSDT")) return Err(AcpiError::BadRootTableSignature);
  const u32 entry_size = out.xsdt ? 8 : 4;
  if ((root.length - kSdtHeaderLength) % entry_size != 0) return Err(AcpiError::RootTableBadLength);
  TableBytes entries(memory, root.address, root.length);
  TRY(verify_checksum(entries));

  bool have_madt = false;
  for (u32 at = kSdtHeaderLength; at < root.length; at += entry_size) {
    ktl::Array<u8, 8> raw{};
    TRY(entries.copy(at, raw.span().first(entry_size)));
    u64 phys = le64(raw.span(), 0);
    if (phys == 0) {
      ++out.null_entries;
      continue;
    }
    TableInfo info = TRY(read_header(memory, phys, out));
    // The first table of each signature wins; the others are only listed.
    if (is(info.signature, "APIC") && !have_madt) {
      TRY(parse_madt(memory, info, out.madt));
      have_madt = true;
    } else if (is(info.signature, "MCFG") && out.ecam.empty()) {
      TRY(parse_mcfg(memory, info, out));
    } else if (is(info.signature, "HPET") && !out.hpet.has_value()) {
      out.hpet = TRY(parse_hpet(memory, info));
    } else if (is(info.signature, "FACP") && !out.fadt.has_value()) {
      Fadt fadt = TRY(parse_fadt(memory, info));
      if (fadt.dsdt != 0) TRY(parse_dsdt(memory, fadt.dsdt, out));
      out.fadt = fadt;
    }
  }
  out.error_table = {};
  if (!have_madt) return Err(AcpiError::NoMadt);
  return ktl::ok();
}

// parse() keeps one on its stack (and its caller another): keep it small.
static_assert(sizeof(Tables) <= 7 * 1024);

Result<Tables, AcpiError> parse(const PhysReader& memory, u64 rsdp_phys) {
  Tables tables;
  TRY(parse_into(memory, rsdp_phys, tables));
  return tables;
}

IrqRoute route_isa_irq(const Madt& madt, u8 irq) {
  for (const IsaOverride& o : madt.isa_overrides) {
    if (o.source_irq == irq) return IrqRoute{o.gsi, o.polarity, o.trigger};
  }
  return IrqRoute{irq, Polarity::ActiveHigh, Trigger::Edge};
}

ktl::Optional<IoApicPin> ioapic_for_gsi(const Madt& madt, u32 gsi) {
  ktl::Optional<IoApicPin> best;
  u32 best_base = 0;
  for (usize i = 0; i < madt.io_apics.size(); ++i) {
    const IoApic& io = madt.io_apics[i];
    if (io.gsi_base <= gsi && (!best.has_value() || io.gsi_base > best_base)) {
      best = IoApicPin{i, gsi - io.gsi_base};
      best_base = io.gsi_base;
    }
  }
  return best;
}

}  // namespace kernel::acpi
