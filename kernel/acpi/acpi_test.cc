// kernel.acpi on the host: synthetic firmware images (a QEMU q35 + OVMF-like layout and variations
// of it) served by a fake PhysReader, parsed and compared field by field; and every error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

import ktl;
import kernel.acpi;

namespace {

namespace acpi = kernel::acpi;
using acpi::AcpiError;
using acpi::Polarity;
using acpi::Trigger;
using Bytes = std::vector<std::uint8_t>;
using u64 = ktl::u64;
using u32 = ktl::u32;
using u16 = ktl::u16;
using u8 = ktl::u8;

// --- a physical memory image -----------------------------------------------------------------------

class Image final : public acpi::PhysReader {
 public:
  void put(u64 base, Bytes bytes) { regions_[base] = std::move(bytes); }
  Bytes& at(u64 base) { return regions_.at(base); }
  // Reads touching [from, from + size) fail from now on.
  void refuse(u64 from, u64 size) { refused_ = {from, size}; }

  ktl::Result<void, AcpiError> read(u64 phys, ktl::Span<u8> out) const override {
    ++reads_;
    largest_read_ = std::max<size_t>(largest_read_, out.size());
    if (refused_ && phys < refused_->first + refused_->second && refused_->first < phys + out.size()) {
      return ktl::Err(AcpiError::Unreadable);
    }
    auto it = regions_.upper_bound(phys);
    if (it == regions_.begin()) return ktl::Err(AcpiError::Unreadable);
    --it;
    const Bytes& r = it->second;
    const u64 offset = phys - it->first;
    if (offset > r.size() || out.size() > r.size() - offset) return ktl::Err(AcpiError::Unreadable);
    std::memcpy(out.data(), r.data() + offset, out.size());
    return ktl::ok();
  }

  size_t reads() const { return reads_; }
  size_t largest_read() const { return largest_read_; }

 private:
  std::map<u64, Bytes> regions_;
  std::optional<std::pair<u64, u64>> refused_;
  mutable size_t reads_ = 0;
  mutable size_t largest_read_ = 0;
};

// --- table builders ----------------------------------------------------------------------------------

void put_le(Bytes& b, size_t at, u64 value, int n) {
  if (b.size() < at + n) b.resize(at + n);
  for (int i = 0; i < n; ++i) b[at + i] = static_cast<u8>(value >> (8 * i));
}
void append_le(Bytes& b, u64 value, int n) { put_le(b, b.size(), value, n); }
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
void append(Bytes& b, const char* text) { b.insert(b.end(), text, text + std::strlen(text)); }

// Sets b[at] so that the first `count` bytes sum to 0 mod 256.
void fix_checksum(Bytes& b, size_t at, size_t count) {
  b[at] = 0;
  unsigned sum = 0;
  for (size_t i = 0; i < count; ++i) sum += b[i];
  b[at] = static_cast<u8>(256 - sum % 256);
}
void fix_table(Bytes& t) { fix_checksum(t, 9, t.size()); }

Bytes sdt(const char* signature, u8 revision, const Bytes& body) {
  Bytes t;
  append(t, signature);
  append_le(t, 36 + body.size(), 4);
  t.push_back(revision);
  t.push_back(0);               // checksum
  append(t, "BOCHS BXPC    ");  // OEM ID (6) + OEM table ID (8)
  append_le(t, 1, 4);           // OEM revision
  append(t, "BXPC");            // creator ID
  append_le(t, 1, 4);           // creator revision
  append(t, body);
  fix_table(t);
  return t;
}

Bytes rsdp(u8 revision, u32 rsdt, u64 xsdt) {
  Bytes r;
  append(r, "RSD PTR ");
  r.push_back(0);
  append(r, "BOCHS ");
  r.push_back(revision);
  append_le(r, rsdt, 4);
  fix_checksum(r, 8, 20);
  if (revision >= 2) {
    append_le(r, 36, 4);
    append_le(r, xsdt, 8);
    r.push_back(0);  // extended checksum
    append(r, Bytes(3, 0));
    fix_checksum(r, 32, 36);
  }
  return r;
}

// MADT entries.
Bytes lapic(u8 uid, u8 id, u32 flags) {
  Bytes e{0, 8, uid, id};
  append_le(e, flags, 4);
  return e;
}
Bytes ioapic(u8 id, u32 address, u32 gsi_base) {
  Bytes e{1, 12, id, 0};
  append_le(e, address, 4);
  append_le(e, gsi_base, 4);
  return e;
}
Bytes iso(u8 source, u32 gsi, u16 flags, u8 bus = 0) {
  Bytes e{2, 10, bus, source};
  append_le(e, gsi, 4);
  append_le(e, flags, 2);
  return e;
}
Bytes nmi(u8 uid, u16 flags, u8 lint) {
  Bytes e{4, 6, uid};
  append_le(e, flags, 2);
  e.push_back(lint);
  return e;
}
Bytes lapic_override(u64 address) {
  Bytes e{5, 12, 0, 0};
  append_le(e, address, 8);
  return e;
}
Bytes x2apic(u32 id, u32 flags, u32 uid) {
  Bytes e{9, 16, 0, 0};
  append_le(e, id, 4);
  append_le(e, flags, 4);
  append_le(e, uid, 4);
  return e;
}
Bytes x2nmi(u16 flags, u32 uid, u8 lint) {
  Bytes e{0xa, 12};
  append_le(e, flags, 2);
  append_le(e, uid, 4);
  e.push_back(lint);
  append(e, Bytes(3, 0));
  return e;
}

// AML: NameOp [\] _S5_ followed by `package` (PackageOp ... as given).
Bytes s5_name(bool root, const Bytes& package) {
  Bytes b{0x08};
  if (root) b.push_back('\\');
  append(b, "_S5_");
  append(b, package);
  return b;
}
// Package(n) { elements } with a 1-byte PkgLength.
Bytes package(u8 count, const Bytes& elements) {
  Bytes b{0x12, static_cast<u8>(2 + elements.size()), count};
  append(b, elements);
  return b;
}

constexpr u64 kRsdp = 0x7fb7e014;
constexpr u64 kXsdt = 0x7fb7d0e8;
constexpr u64 kRsdt = 0x7fb7d000;
constexpr u64 kFacp = 0x7fb79000;
constexpr u64 kApic = 0x7fb78000;
constexpr u64 kHpet = 0x7fb76000;
constexpr u64 kMcfg = 0x7fb75000;
constexpr u64 kWaet = 0x7fb74000;
constexpr u64 kDsdt = 0x7fb70000;
constexpr u64 kExtra = 0x7fb60000;  // for tables a test adds

// What QEMU 7.2 q35 with OVMF describes (MADT, HPET, FADT and DSDT as far as parse() reads them),
// as parts a test can change before build().
struct Firmware {
  u8 rsdp_revision = 2;
  bool with_xsdt = true;
  int cpus = 4;
  u8 madt_revision = 1;
  u32 lapic_address = 0xfee00000;
  u32 madt_flags = 1;             // PCAT_COMPAT
  std::vector<Bytes> madt_extra;  // after QEMU's entries
  bool with_madt = true;
  bool with_hpet = true;
  bool with_fadt = true;
  u8 fadt_revision = 3;
  size_t fadt_length = 244;
  Bytes dsdt_body = qemu_dsdt_body();
  u64 dsdt_address = kDsdt;
  std::vector<std::pair<u64, Bytes>> extra_tables;  // listed after WAET

  static Bytes qemu_dsdt_body() {
    Bytes b{0x5b, 0x80, 'P', 'R', 'S', '_', 0x01, 0x0b, 0x00, 0xaf, 0x0a, 0x0c};  // OperationRegion
    // Scope (\) { Name (_S5, Package (4) { Zero, Zero, Zero, Zero }) }
    Bytes name = s5_name(false, package(4, {0x00, 0x00, 0x00, 0x00}));
    b.push_back(0x10);
    b.push_back(static_cast<u8>(2 + name.size()));
    b.push_back('\\');
    append(b, name);
    append(b, Bytes{0x14, 0x08, '_', 'P', 'T', 'S', 0x01, 0xa4, 0x00});  // Method (_PTS, 1) { Return (0) }
    return b;
  }

  Bytes madt() const {
    Bytes body;
    append_le(body, lapic_address, 4);
    append_le(body, madt_flags, 4);
    for (int i = 0; i < cpus; ++i) append(body, lapic(static_cast<u8>(i), static_cast<u8>(i), 1));
    append(body, ioapic(0, 0xfec00000, 0));
    append(body, iso(0, 2, 0));
    for (u8 irq : {5, 9, 10, 11}) append(body, iso(irq, irq, 0x000d));
    append(body, nmi(0xff, 0, 1));
    for (const Bytes& e : madt_extra) append(body, e);
    return sdt("APIC", madt_revision, body);
  }

  static Bytes hpet(u64 base = 0xfed00000, u8 space = 0) {
    Bytes body;
    append_le(body, 0x8086a201, 4);
    body.insert(body.end(), {space, 0, 0, 0});
    append_le(body, base, 8);
    body.push_back(0);         // HPET number
    append_le(body, 0x80, 2);  // minimum tick
    body.push_back(0);         // page protection
    return sdt("HPET", 1, body);
  }

  Bytes fadt() const {
    Bytes f(fadt_length, 0);
    auto put = [&](size_t at, u64 v, int n) {
      if (at + n <= f.size()) put_le(f, at, v, n);
    };
    auto gas = [&](size_t at, u8 space, u8 width, u64 address) {
      put(at, space, 1);
      put(at + 1, width, 1);
      put(at + 4, address, 8);
    };
    put(40, dsdt_address, 4);
    put(46, 9, 2);  // SCI
    put(48, 0xb2, 4);
    put(52, 0xf1, 1);
    put(53, 0xf0, 1);
    put(56, 0x600, 4);  // PM1a_EVT_BLK
    put(64, 0x604, 4);  // PM1a_CNT_BLK
    put(76, 0x608, 4);  // PM_TMR_BLK
    put(80, 0x620, 4);  // GPE0_BLK
    put(88, 4, 1);
    put(89, 2, 1);
    put(91, 4, 1);  // PM_TMR_LEN
    put(92, 0x10, 1);
    put(96, 0xfff, 2);
    put(98, 0xfff, 2);
    put(108, 0x32, 1);          // CENTURY
    put(109, 0x0002, 2);        // IAPC_BOOT_ARCH: 8042
    put(112, 0x000084a5, 4);    // WBINVD, PROC_C1, SLP_BUTTON, RTC_S4, RESET_REG_SUP, USE_PLATFORM_CLOCK
    gas(116, 1, 8, 0xcf9);      // RESET_REG
    put(128, 0x0f, 1);          // RESET_VALUE
    put(140, dsdt_address, 8);  // X_DSDT
    gas(148, 1, 32, 0x600);
    gas(172, 1, 16, 0x604);
    gas(208, 1, 32, 0x608);
    gas(220, 1, 128, 0x620);
    Bytes t = sdt("FACP", fadt_revision, Bytes(f.begin() + 36, f.end()));
    return t;
  }

  Image build() const {
    Image image;
    std::vector<u64> listed;
    if (with_fadt) {
      image.put(kFacp, fadt());
      image.put(dsdt_address, sdt("DSDT", 1, dsdt_body));
      listed.push_back(kFacp);
    }
    if (with_madt) {
      image.put(kApic, madt());
      listed.push_back(kApic);
    }
    if (with_hpet) {
      image.put(kHpet, hpet());
      listed.push_back(kHpet);
    }
    Bytes mcfg_body(8, 0);
    append_le(mcfg_body, 0xb0000000, 8);
    append_le(mcfg_body, 0, 2);
    mcfg_body.push_back(0);
    mcfg_body.push_back(0xff);
    append_le(mcfg_body, 0, 4);
    image.put(kMcfg, sdt("MCFG", 1, mcfg_body));
    listed.push_back(kMcfg);
    image.put(kWaet, sdt("WAET", 1, Bytes{2, 0, 0, 0}));
    listed.push_back(kWaet);
    for (const auto& [address, table] : extra_tables) {
      image.put(address, table);
      listed.push_back(address);
    }
    Bytes xsdt_body, rsdt_body;
    for (u64 a : listed) {
      append_le(xsdt_body, a, 8);
      append_le(rsdt_body, a, 4);
    }
    if (with_xsdt) image.put(kXsdt, sdt("XSDT", 1, xsdt_body));
    image.put(kRsdt, sdt("RSDT", 1, rsdt_body));
    image.put(kRsdp, rsdp(rsdp_revision, static_cast<u32>(kRsdt), with_xsdt ? kXsdt : 0));
    return image;
  }
};

std::string names(const acpi::Tables& t) {
  std::string s;
  for (const acpi::TableInfo& i : t.tables) {
    if (!s.empty()) s += ' ';
    s.append(i.signature.data(), 4);
  }
  return s;
}

AcpiError error_of(const Image& image, u64 rsdp_phys = kRsdp) {
  auto r = acpi::parse(image, rsdp_phys);
  EXPECT_TRUE(r.is_err());
  return r.is_err() ? r.error() : AcpiError{0xffff};
}
AcpiError error_of(const Firmware& fw) { return error_of(fw.build()); }

acpi::Tables parsed(const Image& image) {
  auto r = acpi::parse(image, kRsdp);
  EXPECT_TRUE(r.is_ok()) << acpi::to_string(r.error());
  return r.is_ok() ? r.release_value() : acpi::Tables{};
}
acpi::Tables parsed(const Firmware& fw) { return parsed(fw.build()); }

// Rewrites a table's bytes in place and fixes its checksum.
void patch(Image& image, u64 table, size_t at, u64 value, int n) {
  Bytes& t = image.at(table);
  put_le(t, at, value, n);
  fix_table(t);
}

// --- the QEMU layout ---------------------------------------------------------------------------------

TEST(AcpiParse, QemuQ35LayoutParsesExactly) {
  Image image = Firmware{}.build();
  acpi::Tables t = parsed(image);
  EXPECT_EQ(t.revision, 2);
  EXPECT_EQ(std::string(t.oem_id.data(), 6), "BOCHS ");
  EXPECT_TRUE(t.xsdt);
  EXPECT_EQ(t.root_table, kXsdt);
  EXPECT_EQ(names(t), "XSDT FACP DSDT APIC HPET MCFG WAET");
  EXPECT_EQ(t.table_count, 7u);
  EXPECT_EQ(t.tables[3].address, kApic);
  EXPECT_EQ(t.tables[3].name(), ktl::StringView("APIC"));
  EXPECT_EQ(t.null_entries, 0u);
  ASSERT_EQ(t.ecam.size(), 1u);
  EXPECT_EQ(t.ecam[0].base, 0xb0000000u);
  EXPECT_EQ(t.ecam[0].segment, 0u);
  EXPECT_EQ(t.ecam[0].start_bus, 0u);
  EXPECT_EQ(t.ecam[0].end_bus, 0xffu);

  const acpi::Madt& m = t.madt;
  EXPECT_EQ(m.local_apic_address, 0xfee00000u);
  EXPECT_TRUE(m.pcat_compat);
  ASSERT_EQ(m.local_apics.size(), 4u);
  for (u32 i = 0; i < 4; ++i) {
    EXPECT_EQ(m.local_apics[i].processor_uid, i);
    EXPECT_EQ(m.local_apics[i].apic_id, i);
    EXPECT_EQ(m.local_apics[i].state, acpi::LocalApic::State::Enabled);
    EXPECT_FALSE(m.local_apics[i].x2apic);
  }
  ASSERT_EQ(m.io_apics.size(), 1u);
  EXPECT_EQ(m.io_apics[0].id, 0u);
  EXPECT_EQ(m.io_apics[0].address, 0xfec00000u);
  EXPECT_EQ(m.io_apics[0].gsi_base, 0u);
  ASSERT_EQ(m.isa_overrides.size(), 5u);
  EXPECT_EQ(m.isa_overrides[0].source_irq, 0);
  EXPECT_EQ(m.isa_overrides[0].gsi, 2u);
  EXPECT_EQ(m.isa_overrides[0].polarity, Polarity::ActiveHigh);
  EXPECT_EQ(m.isa_overrides[0].trigger, Trigger::Edge);
  const u8 level_irqs[] = {5, 9, 10, 11};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(m.isa_overrides[i + 1].source_irq, level_irqs[i]);
    EXPECT_EQ(m.isa_overrides[i + 1].gsi, level_irqs[i]);
    EXPECT_EQ(m.isa_overrides[i + 1].polarity, Polarity::ActiveHigh);
    EXPECT_EQ(m.isa_overrides[i + 1].trigger, Trigger::Level);
  }
  ASSERT_EQ(m.lapic_nmis.size(), 1u);
  EXPECT_EQ(m.lapic_nmis[0].processor_uid, acpi::kAllProcessors);
  EXPECT_EQ(m.lapic_nmis[0].lint, 1);
  EXPECT_EQ(m.lapic_nmis[0].polarity, Polarity::ActiveHigh);
  EXPECT_EQ(m.lapic_nmis[0].trigger, Trigger::Edge);
  EXPECT_EQ(m.disabled_cpus, 0u);
  EXPECT_EQ(m.skipped_entries, 0u);

  ASSERT_TRUE(t.hpet.has_value());
  EXPECT_EQ(t.hpet->base, 0xfed00000u);
  EXPECT_EQ(t.hpet->event_timer_block_id, 0x8086a201u);
  EXPECT_EQ(t.hpet->number, 0);
  EXPECT_EQ(t.hpet->min_tick, 0x80);

  ASSERT_TRUE(t.fadt.has_value());
  const acpi::Fadt& f = *t.fadt;
  EXPECT_EQ(f.revision, 3);
  EXPECT_EQ(f.pm_timer_port, 0x608);
  EXPECT_FALSE(f.pm_timer_32bit);
  EXPECT_EQ(f.pm1a_control, 0x604);
  EXPECT_EQ(f.pm1b_control, 0);
  EXPECT_EQ(f.sci_irq, 9);
  EXPECT_EQ(f.dsdt, kDsdt);
  EXPECT_EQ(f.rtc_century, 0x32);
  EXPECT_EQ(f.iapc_boot_arch, 0x0002);
  EXPECT_EQ(f.flags, 0x000084a5u);
  EXPECT_FALSE(f.hw_reduced);
  ASSERT_TRUE(f.reset.has_value());
  EXPECT_EQ(f.reset->space, acpi::AddressSpace::SystemIo);
  EXPECT_EQ(f.reset->bit_width, 8);
  EXPECT_EQ(f.reset->bit_offset, 0);
  EXPECT_EQ(f.reset->address, 0xcf9u);
  EXPECT_EQ(f.reset->value, 0x0f);

  ASSERT_TRUE(t.s5.has_value());
  EXPECT_EQ(*t.s5, (acpi::SleepType{0, 0}));
}

TEST(AcpiParse, ParseIntoMatchesParseAndReadsInSmallPieces) {
  Image image = Firmware{}.build();
  static acpi::Tables out;  // parse_into's point: the result need not be on the stack
  ASSERT_TRUE(acpi::parse_into(image, kRsdp, out).is_ok());
  acpi::Tables t = parsed(image);
  EXPECT_EQ(names(out), names(t));
  EXPECT_EQ(out.madt.local_apics.size(), t.madt.local_apics.size());
  EXPECT_EQ(out.madt.isa_overrides.size(), 5u);
  EXPECT_EQ(out.s5, t.s5);
  EXPECT_LE(image.largest_read(), 256u);
  // A second parse starts from scratch.
  Firmware fw;
  fw.cpus = 2;
  ASSERT_TRUE(acpi::parse_into(fw.build(), kRsdp, out).is_ok());
  EXPECT_EQ(out.madt.local_apics.size(), 2u);
  EXPECT_EQ(out.madt.isa_overrides.size(), 5u);
  EXPECT_EQ(out.table_count, 7u);
}

TEST(AcpiParse, Acpi1RsdtPath) {
  Firmware fw;
  fw.rsdp_revision = 0;
  fw.with_xsdt = false;
  fw.fadt_revision = 1;
  fw.fadt_length = 116;  // ends at the flags: no RESET_REG, no X_ fields
  fw.with_hpet = false;
  acpi::Tables t = parsed(fw);
  EXPECT_EQ(t.revision, 0);
  EXPECT_FALSE(t.xsdt);
  EXPECT_EQ(t.root_table, kRsdt);
  EXPECT_EQ(names(t), "RSDT FACP DSDT APIC MCFG WAET");
  EXPECT_FALSE(t.hpet.has_value());
  ASSERT_TRUE(t.fadt.has_value());
  EXPECT_EQ(t.fadt->pm_timer_port, 0x608);
  EXPECT_EQ(t.fadt->pm1a_control, 0x604);
  EXPECT_EQ(t.fadt->dsdt, kDsdt);
  EXPECT_FALSE(t.fadt->reset.has_value());  // RESET_REG_SUP is set, but the table ends before it
  EXPECT_EQ(t.madt.local_apics.size(), 4u);
  EXPECT_EQ(*t.s5, (acpi::SleepType{0, 0}));
}

TEST(AcpiParse, Revision2WithoutXsdtUsesTheRsdt) {
  Firmware fw;
  fw.with_xsdt = false;  // XSDT address 0 in a revision-2 RSDP
  acpi::Tables t = parsed(fw);
  EXPECT_EQ(t.revision, 2);
  EXPECT_FALSE(t.xsdt);
  EXPECT_EQ(names(t), "RSDT FACP DSDT APIC HPET MCFG WAET");
}

TEST(AcpiParse, FadtPrefersXFieldsInIoSpace) {
  Firmware fw;
  Image image = fw.build();
  patch(image, kFacp, 172 + 4, 0x804, 8);   // X_PM1a_CNT_BLK differs from PM1a_CNT_BLK (0x604)
  patch(image, kFacp, 208 + 4, 0xb008, 8);  // X_PM_TMR_BLK
  patch(image, kFacp, 112, 0x000084a5 | acpi::kFadtTimerValExt, 4);
  acpi::Tables t = parsed(image);
  EXPECT_EQ(t.fadt->pm1a_control, 0x804);
  EXPECT_EQ(t.fadt->pm_timer_port, 0xb008);
  EXPECT_TRUE(t.fadt->pm_timer_32bit);
  // In memory space the X_ field is not a port: the 32-bit field is used.
  patch(image, kFacp, 172, 0, 1);
  EXPECT_EQ(parsed(image).fadt->pm1a_control, 0x604);
  // X_DSDT is preferred over DSDT.
  Bytes moved = image.at(kDsdt);
  image.put(kExtra, moved);
  patch(image, kFacp, 140, kExtra, 8);
  EXPECT_EQ(parsed(image).fadt->dsdt, kExtra);
  // No DSDT at all: no \_S5_, not an error.
  patch(image, kFacp, 140, 0, 8);
  patch(image, kFacp, 40, 0, 4);
  acpi::Tables none = parsed(image);
  EXPECT_EQ(none.fadt->dsdt, 0u);
  EXPECT_FALSE(none.s5.has_value());
  EXPECT_EQ(names(none), "XSDT FACP APIC HPET MCFG WAET");
}

TEST(AcpiParse, FadtResetRegisterAndHardwareReduced) {
  Image image = Firmware{}.build();
  patch(image, kFacp, 112, acpi::kFadtHwReduced, 4);  // no RESET_REG_SUP
  acpi::Tables t = parsed(image);
  EXPECT_TRUE(t.fadt->hw_reduced);
  EXPECT_FALSE(t.fadt->reset.has_value());
  patch(image, kFacp, 112, acpi::kFadtResetRegSup, 4);
  patch(image, kFacp, 116, 0x7f, 1);  // functional fixed hardware: not supported here
  EXPECT_FALSE(parsed(image).fadt->reset.has_value());
  patch(image, kFacp, 116, 0, 1);  // memory
  ASSERT_TRUE(parsed(image).fadt->reset.has_value());
  EXPECT_EQ(parsed(image).fadt->reset->space, acpi::AddressSpace::SystemMemory);
}

// --- the MADT ------------------------------------------------------------------------------------------

TEST(AcpiMadt, X2apicEntries) {
  Firmware fw;
  fw.madt_extra = {x2apic(0x100, 1, 300), x2apic(0x101, 0, 301), x2nmi(0, 0xffffffff, 1), x2nmi(0xf, 300, 0)};
  acpi::Tables t = parsed(fw);
  const acpi::Madt& m = t.madt;
  ASSERT_EQ(m.local_apics.size(), 5u);
  EXPECT_EQ(m.local_apics[4].apic_id, 0x100u);
  EXPECT_EQ(m.local_apics[4].processor_uid, 300u);
  EXPECT_TRUE(m.local_apics[4].x2apic);
  EXPECT_EQ(m.disabled_cpus, 1u);
  ASSERT_EQ(m.lapic_nmis.size(), 3u);
  EXPECT_EQ(m.lapic_nmis[1].processor_uid, acpi::kAllProcessors);
  EXPECT_EQ(m.lapic_nmis[1].lint, 1);
  EXPECT_EQ(m.lapic_nmis[2].processor_uid, 300u);
  EXPECT_EQ(m.lapic_nmis[2].lint, 0);
  EXPECT_EQ(m.lapic_nmis[2].polarity, Polarity::ActiveLow);
  EXPECT_EQ(m.lapic_nmis[2].trigger, Trigger::Level);
}

TEST(AcpiMadt, LocalApicAddressOverride) {
  Firmware fw;
  fw.madt_extra = {lapic_override(0x1'fee0'0000ull), lapic_override(0x2'0000'0000ull)};
  EXPECT_EQ(parsed(fw).madt.local_apic_address, 0x1'fee0'0000ull);  // the first one wins
  fw.madt_flags = 0;
  EXPECT_FALSE(parsed(fw).madt.pcat_compat);
}

TEST(AcpiMadt, OnlineCapableFromRevision5AndDisabledCounted) {
  Firmware fw;
  fw.madt_extra = {lapic(10, 10, 2), lapic(11, 11, 0), Bytes{3, 8, 0, 0, 9, 0, 0, 0}, Bytes{0x7f, 3, 0}};
  acpi::Tables old = parsed(fw);  // revision 1: bit 1 is reserved
  EXPECT_EQ(old.madt.local_apics.size(), 4u);
  EXPECT_EQ(old.madt.disabled_cpus, 2u);
  EXPECT_EQ(old.madt.skipped_entries, 2u);  // the NMI source (type 3) and an unknown type
  fw.madt_revision = 5;
  acpi::Tables t = parsed(fw);
  ASSERT_EQ(t.madt.local_apics.size(), 5u);
  EXPECT_EQ(t.madt.local_apics[4].apic_id, 10u);
  EXPECT_EQ(t.madt.local_apics[4].state, acpi::LocalApic::State::OnlineCapable);
  EXPECT_EQ(t.madt.disabled_cpus, 1u);
}

TEST(AcpiMadt, LongerEntriesThanTheirTypeAreAccepted) {
  Firmware fw;
  Bytes longer = ioapic(1, 0xfec10000, 24);
  longer[1] = 14;
  longer.insert(longer.end(), {0xaa, 0xbb});
  fw.madt_extra = {longer};
  acpi::Tables t = parsed(fw);
  ASSERT_EQ(t.madt.io_apics.size(), 2u);
  EXPECT_EQ(t.madt.io_apics[1].gsi_base, 24u);
  EXPECT_EQ(t.madt.lapic_nmis.size(), 1u);
}

TEST(AcpiMadt, CapacityLimitsAreExact) {
  Firmware fw;
  fw.cpus = 256;
  EXPECT_EQ(parsed(fw).madt.local_apics.size(), 256u);
  fw.cpus = 257;
  EXPECT_EQ(error_of(fw), AcpiError::TooManyCpus);

  Firmware io;
  for (u32 i = 1; i < acpi::kMaxIoApics; ++i)
    io.madt_extra.push_back(ioapic(static_cast<u8>(i), 0xfec00000 + i * 0x1000, 24 * i));
  EXPECT_EQ(parsed(io).madt.io_apics.size(), acpi::kMaxIoApics);
  io.madt_extra.push_back(ioapic(99, 0xfed00000, 24 * 99));
  EXPECT_EQ(error_of(io), AcpiError::TooManyIoApics);

  Firmware n;
  for (u32 i = 1; i < acpi::kMaxLapicNmis; ++i) n.madt_extra.push_back(nmi(static_cast<u8>(i), 0, 1));
  EXPECT_EQ(parsed(n).madt.lapic_nmis.size(), acpi::kMaxLapicNmis);
  n.madt_extra.push_back(nmi(0, 0, 1));
  EXPECT_EQ(error_of(n), AcpiError::TooManyLapicNmis);
}

TEST(AcpiRoute, IsaIrqWithAndWithoutOverride) {
  Firmware fw;
  fw.madt_extra = {iso(4, 20, 0x0003)};  // active-low, trigger "conforms": ISA's edge
  acpi::Tables t = parsed(fw);
  EXPECT_EQ(acpi::route_isa_irq(t.madt, 0), (acpi::IrqRoute{2, Polarity::ActiveHigh, Trigger::Edge}));
  EXPECT_EQ(acpi::route_isa_irq(t.madt, 9), (acpi::IrqRoute{9, Polarity::ActiveHigh, Trigger::Level}));
  EXPECT_EQ(acpi::route_isa_irq(t.madt, 4), (acpi::IrqRoute{20, Polarity::ActiveLow, Trigger::Edge}));
  EXPECT_EQ(acpi::route_isa_irq(t.madt, 1), (acpi::IrqRoute{1, Polarity::ActiveHigh, Trigger::Edge}));
  EXPECT_EQ(acpi::route_isa_irq(t.madt, 14), (acpi::IrqRoute{14, Polarity::ActiveHigh, Trigger::Edge}));
  EXPECT_EQ(acpi::route_isa_irq(acpi::Madt{}, 0), (acpi::IrqRoute{0, Polarity::ActiveHigh, Trigger::Edge}));
}

TEST(AcpiRoute, IoApicForGsiWithTwoChips) {
  Firmware fw;
  fw.madt_extra = {ioapic(2, 0xfec20000, 56), ioapic(1, 0xfec10000, 24)};
  acpi::Tables t = parsed(fw);
  ASSERT_EQ(t.madt.io_apics.size(), 3u);
  EXPECT_EQ(acpi::ioapic_for_gsi(t.madt, 0), (acpi::IoApicPin{0, 0}));
  EXPECT_EQ(acpi::ioapic_for_gsi(t.madt, 23), (acpi::IoApicPin{0, 23}));
  EXPECT_EQ(acpi::ioapic_for_gsi(t.madt, 24), (acpi::IoApicPin{2, 0}));
  EXPECT_EQ(acpi::ioapic_for_gsi(t.madt, 55), (acpi::IoApicPin{2, 31}));
  EXPECT_EQ(acpi::ioapic_for_gsi(t.madt, 56), (acpi::IoApicPin{1, 0}));
  EXPECT_EQ(acpi::ioapic_for_gsi(t.madt, 1000), (acpi::IoApicPin{1, 944}));

  Firmware high;  // no chip at GSI 0
  Image image = high.build();
  patch(image, kApic, 44 + 4 * 8 + 8, 8, 4);  // the QEMU I/O APIC's GSI base: 8
  acpi::Tables h = parsed(image);
  EXPECT_FALSE(acpi::ioapic_for_gsi(h.madt, 7).has_value());
  EXPECT_EQ(acpi::ioapic_for_gsi(h.madt, 8), (acpi::IoApicPin{0, 0}));
  EXPECT_FALSE(acpi::ioapic_for_gsi(acpi::Madt{}, 0).has_value());
}

TEST(AcpiParse, DuplicateTablesFirstWins) {
  Firmware fw;
  Firmware other;
  other.lapic_address = 0xfee10000;
  other.cpus = 1;
  fw.extra_tables = {{kExtra, other.madt()}, {kExtra + 0x1000, Firmware::hpet(0xfed10000)}};
  acpi::Tables t = parsed(fw);
  EXPECT_EQ(names(t), "XSDT FACP DSDT APIC HPET MCFG WAET APIC HPET");
  EXPECT_EQ(t.madt.local_apic_address, 0xfee00000u);
  EXPECT_EQ(t.madt.local_apics.size(), 4u);
  EXPECT_EQ(t.hpet->base, 0xfed00000u);
}

TEST(AcpiParse, NullRootEntriesAreSkipped) {
  Firmware fw;
  fw.extra_tables = {};
  Image image = fw.build();
  Bytes& x = image.at(kXsdt);
  append_le(x, 0, 8);
  put_le(x, 4, x.size(), 4);
  fix_table(x);
  acpi::Tables t = parsed(image);
  EXPECT_EQ(t.null_entries, 1u);
  EXPECT_EQ(t.table_count, 7u);
}

// --- \_S5_ ----------------------------------------------------------------------------------------------

ktl::Result<acpi::Tables, AcpiError> parse_with_dsdt(const Bytes& body) {
  Firmware fw;
  fw.dsdt_body = body;
  Image image = fw.build();
  return acpi::parse(image, kRsdp);
}

std::optional<acpi::SleepType> s5_of(const Bytes& body) {
  auto r = parse_with_dsdt(body);
  EXPECT_TRUE(r.is_ok()) << acpi::to_string(r.error());
  if (r.is_err() || !r.value().s5.has_value()) return std::nullopt;
  return *r.value().s5;
}

Bytes filler(size_t n) {
  Bytes b;
  for (size_t i = 0; i < n; ++i) b.push_back(static_cast<u8>(0x20 + i % 50));  // no NameOp, no '_'
  return b;
}

TEST(AcpiS5, EncodingsDecode) {
  EXPECT_EQ(s5_of(Firmware::qemu_dsdt_body()), (acpi::SleepType{0, 0}));
  // \_S5_ Package (4) { 0x05, 0x05, Zero, Zero } (the root prefix, BytePrefix).
  EXPECT_EQ(s5_of(s5_name(true, package(4, {0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00}))), (acpi::SleepType{5, 5}));
  // OneOp and WordPrefix; elements after the second are not read.
  EXPECT_EQ(s5_of(s5_name(false, package(3, {0x01, 0x0b, 0x07, 0x00, 0x5b}))), (acpi::SleepType{1, 7}));
  // DWord and QWord.
  EXPECT_EQ(s5_of(s5_name(false, package(2, {0x0c, 6, 0, 0, 0, 0x0e, 3, 0, 0, 0, 0, 0, 0, 0}))),
            (acpi::SleepType{6, 3}));
  // One integer holding both (SLP_TYPa in bits 7:0, SLP_TYPb in 15:8).
  EXPECT_EQ(s5_of(s5_name(false, package(1, {0x0b, 0x05, 0x07}))), (acpi::SleepType{5, 7}));
  // Two-byte PkgLengths (lead 0x40 | bits 3:0, then bits 11:4): 7, and 0x15 = 21.
  EXPECT_EQ(s5_of(s5_name(false, Bytes{0x12, 0x47, 0x00, 0x02, 0x0a, 0x02, 0x0a, 0x03})),
            (acpi::SleepType{2, 3}));
  EXPECT_EQ(s5_of(s5_name(false, Bytes{0x12, 0x45, 0x01, 0x02, 0x0e, 2, 0, 0, 0, 0, 0,
                                       0,    0,    0x0e, 4,    0,    0, 0, 0, 0, 0, 0})),
            (acpi::SleepType{2, 4}));
  // Package (2) { 1, 1 } in a three-byte PkgLength (lead 0x80 | 6, 0, 0).
  EXPECT_EQ(s5_of(s5_name(false, Bytes{0x12, 0x86, 0x00, 0x00, 0x02, 0x01, 0x01})), (acpi::SleepType{1, 1}));
}

TEST(AcpiS5, SearchSkipsReferencesAndCrossesReadWindows) {
  // A reference to _S5_ that is not a NameOp (Store (\_S5_, Local0)) comes first.
  Bytes body = filler(20);
  append(body, Bytes{0x70, '\\', '_', 'S', '5', '_', 0x60});
  append(body, s5_name(true, package(2, {0x0a, 0x04, 0x0a, 0x01})));
  EXPECT_EQ(s5_of(body), (acpi::SleepType{4, 1}));
  // The name straddles the 256-byte window boundary (table offset 256 = body offset 220).
  for (size_t at : {216u, 218u, 219u, 220u, 221u, 250u, 470u}) {
    Bytes b = filler(at);
    append(b, s5_name(false, package(2, {0x0a, 0x07, 0x01})));
    EXPECT_EQ(s5_of(b), (acpi::SleepType{7, 1})) << at;
  }
  // None at all.
  EXPECT_FALSE(s5_of(filler(300)).has_value());
  Bytes only_ref = filler(10);
  append(only_ref, Bytes{'_', 'S', '5', '_'});  // preceded by a filler byte: not a name
  EXPECT_FALSE(s5_of(only_ref).has_value());
}

TEST(AcpiS5, LargeDsdtIsReadInPieces) {
  Bytes body = filler(200 * 1024);
  append(body, s5_name(false, package(2, {0x0a, 0x05, 0x0a, 0x06})));
  Firmware fw;
  fw.dsdt_body = body;
  fw.dsdt_address = 0x1'0000'0000ull;  // room for it
  Image image = fw.build();
  acpi::Tables t = parsed(image);
  EXPECT_EQ(*t.s5, (acpi::SleepType{5, 6}));
  EXPECT_LE(image.largest_read(), 256u);
  EXPECT_EQ(t.tables[2].length, 36u + body.size());
}

TEST(AcpiS5, MalformedPackagesAreErrors) {
  struct Case {
    Bytes aml;
    AcpiError error;
  };
  const Case cases[] = {
      {s5_name(false, Bytes{0x0a, 0x05}), AcpiError::S5NotPackage},              // Name (_S5, 5)
      {s5_name(false, Bytes{0x13, 0x04, 0x02, 0x00}), AcpiError::S5NotPackage},  // VarPackageOp
      {s5_name(false, Bytes{}), AcpiError::S5NotPackage},        // the table ends after the name
      {s5_name(false, Bytes{0x12}), AcpiError::S5BadPkgLength},  // ... after PackageOp
      {s5_name(false, Bytes{0x12, 0x54, 0x00, 0x02, 0x00, 0x00}),
       AcpiError::S5BadPkgLength},                                                       // reserved bits
      {s5_name(false, Bytes{0x12, 0x3f, 0x02, 0x00, 0x00}), AcpiError::S5BadPkgLength},  // past the table
      {s5_name(false, Bytes{0x12, 0x01, 0x02}), AcpiError::S5BadPkgLength},  // shorter than itself
      {s5_name(false, Bytes{0x12, 0xc0}), AcpiError::S5BadPkgLength},        // length bytes missing
      {s5_name(false, package(0, {})), AcpiError::S5NoElements},
      {s5_name(false, package(2, {0x0a, 0x05})), AcpiError::S5MissingElement},
      {s5_name(false, package(1, {})), AcpiError::S5MissingElement},
      {s5_name(false, package(2, {0x0a, 0x05, 0x0a})), AcpiError::S5ElementOverruns},
      {s5_name(false, package(2, {0x0c, 0x05, 0x00})), AcpiError::S5ElementOverruns},
      {s5_name(false, package(2, {'A', 'B', 'C', 'D', 0x00})), AcpiError::S5BadElement},  // a name
      {s5_name(false, package(2, {0x0d, 'x', 0x00, 0x00})), AcpiError::S5BadElement},     // a string
      {s5_name(false, package(2, {0x0a, 0x08, 0x00})), AcpiError::S5ValueTooLarge},
      {s5_name(false, package(2, {0x00, 0xff})), AcpiError::S5ValueTooLarge},  // OnesOp
      {s5_name(false, package(1, {0x0c, 0x05, 0x05, 0x01, 0x00})), AcpiError::S5ValueTooLarge},
  };
  for (const Case& c : cases) {
    auto r = parse_with_dsdt(c.aml);
    ASSERT_TRUE(r.is_err()) << ::testing::PrintToString(c.aml);
    EXPECT_EQ(r.error(), c.error) << acpi::to_string(r.error()) << " for " << ::testing::PrintToString(c.aml);
  }
}

// --- errors ---------------------------------------------------------------------------------------------

TEST(AcpiErrors, Rsdp) {
  Image image = Firmware{}.build();
  EXPECT_EQ(error_of(image, 0), AcpiError::NoRsdp);
  EXPECT_EQ(error_of(image, kRsdp + 0x1000), AcpiError::Unreadable);
  EXPECT_EQ(error_of(image, 0xffff'ffff'ffff'fff0ull), AcpiError::AddressOverflow);
  {
    Image bad = image;
    bad.at(kRsdp)[3] = 'X';
    fix_checksum(bad.at(kRsdp), 8, 20);
    EXPECT_EQ(error_of(bad), AcpiError::BadRsdpSignature);
  }
  {
    Image bad = image;
    bad.at(kRsdp)[8] ^= 1;
    EXPECT_EQ(error_of(bad), AcpiError::RsdpChecksum);
  }
  {
    Image bad = image;
    bad.at(kRsdp)[35] ^= 1;  // a reserved byte, covered only by the extended checksum
    EXPECT_EQ(error_of(bad), AcpiError::RsdpExtendedChecksum);
  }
  for (u32 length : {35u, 257u}) {
    Image bad = image;
    put_le(bad.at(kRsdp), 20, length, 4);
    EXPECT_EQ(error_of(bad), AcpiError::RsdpBadLength) << length;
  }
  {
    Image bad = image;
    put_le(bad.at(kRsdp), 20, 40, 4);  // longer than the 36 bytes mapped
    EXPECT_EQ(error_of(bad), AcpiError::Unreadable);
  }
  {
    Firmware fw;
    Image none = fw.build();
    none.put(kRsdp, rsdp(2, 0, 0));
    EXPECT_EQ(error_of(none), AcpiError::NoRootTable);
  }
}

TEST(AcpiErrors, RootTable) {
  Image image = Firmware{}.build();
  {
    Image bad = image;
    bad.at(kXsdt)[0] = 'R';  // "RSDT" where an XSDT is expected
    fix_table(bad.at(kXsdt));
    EXPECT_EQ(error_of(bad), AcpiError::BadRootTableSignature);
  }
  {
    Image bad = image;
    Bytes& x = bad.at(kXsdt);
    x.push_back(0);
    x.push_back(0);
    x.push_back(0);
    x.push_back(0);
    put_le(x, 4, x.size(), 4);
    fix_table(x);
    EXPECT_EQ(error_of(bad), AcpiError::RootTableBadLength);
  }
  {
    Image bad = image;
    bad.at(kXsdt)[40] ^= 0x10;
    EXPECT_EQ(error_of(bad), AcpiError::TableChecksum);
  }
  {
    Image bad = image;
    put_le(bad.at(kXsdt), 4, 35, 4);
    EXPECT_EQ(error_of(bad), AcpiError::TableTooShort);
  }
  {
    Image bad = image;
    put_le(bad.at(kXsdt), 4, acpi::kMaxTableLength + 1, 4);
    EXPECT_EQ(error_of(bad), AcpiError::TableTooLong);
  }
}

TEST(AcpiErrors, ListedTables) {
  Firmware fw;
  {
    Firmware f = fw;
    f.extra_tables = {{kExtra, Bytes(10, 0)}};  // a header that cannot be read whole
    EXPECT_EQ(error_of(f), AcpiError::Unreadable);
  }
  {
    Firmware f = fw;
    Bytes t = sdt("SSDT", 1, {});
    put_le(t, 4, 0x100, 4);  // longer than what is mapped: never read, as SSDTs are not decoded
    f.extra_tables = {{kExtra, t}};
    EXPECT_EQ(parsed(f).tables[7].length, 0x100u);
  }
  {
    Firmware f = fw;
    Bytes t = sdt("SSDT", 1, {});
    t[20] ^= 1;  // an undecoded table's checksum is not checked
    f.extra_tables = {{kExtra, t}};
    EXPECT_EQ(parsed(f).table_count, 8u);
  }
  {
    Firmware f = fw;
    Bytes t = sdt("SSDT", 1, {});
    put_le(t, 4, 0x40, 4);
    f.extra_tables = {{0xffff'ffff'ffff'ffd0ull, t}};  // the header fits below 2^64, the table does not
    EXPECT_EQ(error_of(f), AcpiError::AddressOverflow);
  }
  {
    Firmware f = fw;
    f.with_madt = false;
    EXPECT_EQ(error_of(f), AcpiError::NoMadt);
  }
  {
    Image image = fw.build();
    image.refuse(kApic + 100, 1);  // inside the MADT, after its header
    EXPECT_EQ(error_of(image), AcpiError::Unreadable);
  }
}

TEST(AcpiErrors, BadChecksumsOfDecodedTablesAreErrors) {
  const std::pair<u64, const char*> tables[] = {
      {kApic, "APIC"}, {kHpet, "HPET"}, {kFacp, "FACP"}, {kDsdt, "DSDT"}};
  for (auto [table, signature] : tables) {
    Image image = Firmware{}.build();
    image.at(table).back() ^= 0x40;
    static acpi::Tables out;
    auto r = acpi::parse_into(image, kRsdp, out);
    ASSERT_TRUE(r.is_err()) << table;
    EXPECT_EQ(r.error(), AcpiError::TableChecksum);
    const Bytes& bytes = image.at(table);
    EXPECT_EQ(std::string(out.error_table.data(), 4), signature);
    EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), signature);
  }
}

TEST(AcpiErrors, MadtEntries) {
  struct Case {
    std::vector<Bytes> extra;
    AcpiError error;
  };
  const Case cases[] = {
      {{Bytes{0x7f, 1}}, AcpiError::MadtEntryBadLength},
      {{Bytes{0x7f, 0}}, AcpiError::MadtEntryBadLength},
      {{Bytes{0x7f, 9, 0, 0}}, AcpiError::MadtEntryOverruns},  // runs past the table
      {{Bytes{0x7f}}, AcpiError::MadtEntryOverruns},           // a lone type byte at the end
      {{Bytes{0, 7, 1, 1, 1, 0, 0}}, AcpiError::MadtEntryTooShort},
      {{Bytes{9, 12, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}}, AcpiError::MadtEntryTooShort},
      {{Bytes{2, 9, 0, 1, 1, 0, 0, 0, 0}}, AcpiError::MadtEntryTooShort},
      {{Bytes{0xa, 11, 0, 0, 0, 0, 0, 0, 1, 0, 0}}, AcpiError::MadtEntryTooShort},
      {{ioapic(1, 0xfec10000, 0)}, AcpiError::IoApicGsiBaseRepeated},
      {{iso(3, 3, 0, 1)}, AcpiError::IsaOverrideBadBus},
      {{iso(16, 16, 0)}, AcpiError::IsaOverrideBadIrq},
      {{iso(0, 5, 0)}, AcpiError::IsaOverrideRepeated},
      {{iso(3, 3, 0x2)}, AcpiError::ReservedPolarity},
      {{iso(3, 3, 0x8)}, AcpiError::ReservedTrigger},
      {{nmi(1, 0x2, 1)}, AcpiError::ReservedPolarity},
      {{x2nmi(0x8, 1, 1)}, AcpiError::ReservedTrigger},
      {{nmi(1, 0, 2)}, AcpiError::BadLint},
  };
  for (const Case& c : cases) {
    Firmware fw;
    fw.madt_extra = c.extra;
    EXPECT_EQ(error_of(fw), c.error) << ::testing::PrintToString(c.extra);
  }
  Image image = Firmware{}.build();
  Bytes& m = image.at(kApic);
  m.resize(43);
  put_le(m, 4, 43, 4);
  fix_table(m);
  EXPECT_EQ(error_of(image), AcpiError::MadtTooShort);
}

TEST(AcpiErrors, Mcfg) {
  Image image = Firmware{}.build();
  {
    Image bad = image;
    Bytes& h = bad.at(kMcfg);
    h.resize(36 + 8 + 15);  // not a whole entry
    put_le(h, 4, h.size(), 4);
    fix_table(h);
    EXPECT_EQ(error_of(bad), AcpiError::McfgBadLength);
  }
  {
    Image bad = image;
    Bytes& h = bad.at(kMcfg);
    h[36 + 8 + 10] = 5;  // start bus 5, end bus 0xff: fine
    h[36 + 8 + 11] = 4;  // end bus 4: below the start
    fix_table(h);
    EXPECT_EQ(error_of(bad), AcpiError::McfgBadBusRange);
  }
  {
    Image bad = image;
    bad.at(kMcfg)[40] ^= 1;  // a reserved byte: the checksum no longer holds
    EXPECT_EQ(error_of(bad), AcpiError::TableChecksum);
  }
}

TEST(AcpiErrors, Hpet) {
  Image image = Firmware{}.build();
  {
    Image bad = image;
    Bytes& h = bad.at(kHpet);
    h.resize(55);
    put_le(h, 4, 55, 4);
    fix_table(h);
    EXPECT_EQ(error_of(bad), AcpiError::HpetTooShort);
  }
  image.put(kHpet, Firmware::hpet(0xfed00000, 1));
  EXPECT_EQ(error_of(image), AcpiError::HpetNotMemory);
}

TEST(AcpiErrors, Fadt) {
  Firmware fw;
  fw.fadt_length = 115;
  EXPECT_EQ(error_of(fw), AcpiError::FadtTooShort);
  Image image = Firmware{}.build();
  {
    Image bad = image;
    patch(bad, kFacp, 172 + 4, 0x10000, 8);  // X_PM1a_CNT_BLK
    EXPECT_EQ(error_of(bad), AcpiError::FadtBadIoPort);
  }
  {
    Image bad = image;
    patch(bad, kFacp, 208, 0, 1);  // X_PM_TMR_BLK in memory space: the 32-bit field
    patch(bad, kFacp, 76, 0x12345, 4);
    EXPECT_EQ(error_of(bad), AcpiError::FadtBadIoPort);
  }
  {
    Image bad = image;
    patch(bad, kFacp, 91, 3, 1);
    EXPECT_EQ(error_of(bad), AcpiError::FadtBadPmTimerLength);
  }
  {
    Image bad = image;
    bad.at(kDsdt)[0] = 'S';
    fix_table(bad.at(kDsdt));
    EXPECT_EQ(error_of(bad), AcpiError::BadDsdtSignature);
  }
  {
    Image bad = image;
    patch(bad, kFacp, 140, kExtra, 8);  // X_DSDT at an unmapped address
    EXPECT_EQ(error_of(bad), AcpiError::Unreadable);
  }
}

TEST(AcpiErrors, EveryErrorHasItsOwnText) {
  ktl::EnumTextCheck c = ktl::check_enum_text<AcpiError>();
  EXPECT_TRUE(c.ok) << "value " << c.bad;
  EXPECT_EQ(c.count, ktl::to_underlying(AcpiError::TooManyEcamWindows) + 1);
  EXPECT_STREQ(acpi::to_string(AcpiError::TableChecksum), "ACPI table checksum mismatch");
  EXPECT_TRUE(ktl::check_enum_text<Polarity>().ok);
  EXPECT_TRUE(ktl::check_enum_text<Trigger>().ok);
  EXPECT_TRUE(ktl::check_enum_text<acpi::LocalApic::State>().ok);
  EXPECT_TRUE(ktl::check_enum_text<acpi::AddressSpace>().ok);
}

}  // namespace
