// kernel.acpi: the ACPI tables the kernel needs for interrupts, time and power-off.
//
// Pure code: every byte comes through a PhysReader (the kernel backs it with its direct map, tests
// and the fuzzer with byte images), in bounded copies into small local buffers, so a table of any
// length is read piecewise with at most a 256-byte window on the stack. Nothing is allocated.
//
//   RSDP -> XSDT (8-byte entries, revision >= 2 with a non-zero XSDT address) or RSDT (4-byte)
//        -> every listed table's header (signature, length: 36 <= length <= kMaxTableLength)
//        -> "APIC" (MADT, required), "HPET", "FACP" (FADT) and the FADT's DSDT (\_S5_) are read
//           whole: checksum first, then decoded. The first table of each signature wins.
//
// Error policy: firmware with a corrupt table is reported, not half-trusted: a bad checksum, a
// malformed entry or a reserved encoding in any table parse() decodes (root table, MADT, HPET,
// FADT, DSDT) fails the whole parse with its own AcpiError; so does anything the reader refuses.
// Tables parse() does not decode are listed (TableInfo) but not checksummed: their users verify
// them. What is merely absent is not an error: no HPET, no FADT, no DSDT, no \_S5_ give empty
// Optionals. See README.md for the rules and their sources.
module;

#include <ktl/macros.h>

export module kernel.acpi;

import ktl;

export namespace kernel::acpi {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

enum class AcpiError : u32 {
  Unreadable,             // the reader refused a range
  NoRsdp,                 // the RSDP address is 0
  AddressOverflow,        // a structure's address range wraps past 2^64
  BadRsdpSignature,       // not "RSD PTR "
  RsdpChecksum,           // the first 20 bytes do not sum to 0
  RsdpBadLength,          // revision >= 2 with a length outside [36, 256]
  RsdpExtendedChecksum,   // revision >= 2: `length` bytes do not sum to 0
  NoRootTable,            // the RSDT/XSDT address to use is 0
  BadRootTableSignature,  // not "XSDT" (or "RSDT" for the 4-byte path)
  RootTableBadLength,     // the entries are not a whole number of 4/8-byte addresses
  TableTooShort,          // a table's length is below its 36-byte header
  TableTooLong,           // a table's length is above kMaxTableLength
  TableChecksum,          // a table parse() decodes does not sum to 0
  NoMadt,                 // no "APIC" table
  MadtTooShort,           // below the 44 bytes before the entries
  MadtEntryBadLength,     // an entry's length is below 2
  MadtEntryOverruns,      // an entry runs past the end of the table
  MadtEntryTooShort,      // an entry is shorter than its type's fixed part
  TooManyCpus,            // more usable local APICs than kMaxCpus
  TooManyIoApics,         // more I/O APICs than kMaxIoApics
  TooManyLapicNmis,       // more local APIC NMI entries than kMaxLapicNmis
  IoApicGsiBaseRepeated,  // two I/O APICs claim the same GSI base
  IsaOverrideBadBus,      // an interrupt source override for a bus other than ISA (0)
  IsaOverrideBadIrq,      // an override for a source IRQ above 15
  IsaOverrideRepeated,    // two overrides for one source IRQ
  ReservedPolarity,       // MPS INTI flags polarity 10 (reserved)
  ReservedTrigger,        // MPS INTI flags trigger mode 10 (reserved)
  BadLint,                // a local APIC NMI on a LINT pin other than 0 or 1
  HpetTooShort,           // below the HPET table's 56 bytes
  HpetNotMemory,          // the HPET's base address is not in system memory space
  FadtTooShort,           // below the 116 bytes of the ACPI 1.0 FADT
  FadtBadIoPort,          // a PM1 control or PM timer I/O port above 0xffff
  FadtBadPmTimerLength,   // a PM timer block whose length is not 4
  BadDsdtSignature,       // the FADT's DSDT is not "DSDT"
  S5NotPackage,           // \_S5_ is named but not followed by a PackageOp
  S5BadPkgLength,         // reserved PkgLength bits, too short for itself, or past the table
  S5NoElements,           // NumElements is 0
  S5MissingElement,       // fewer initialisers than the sleep types need
  S5ElementOverruns,      // an element is cut off by the end of the package
  S5BadElement,           // an element that is not an integer constant
  S5ValueTooLarge,        // a sleep type that does not fit the 3-bit SLP_TYP field
  McfgBadLength,          // the MCFG's entries are not whole 16-byte records
  McfgBadBusRange,        // an ECAM window whose end bus is below its start bus
  TooManyEcamWindows,     // more MCFG entries than kMaxEcamWindows
};

[[nodiscard]] constexpr const char* to_string(AcpiError e) {
  switch (e) {
    case AcpiError::Unreadable: return "ACPI memory range unreadable";
    case AcpiError::NoRsdp: return "no RSDP (address 0)";
    case AcpiError::AddressOverflow: return "ACPI structure address range wraps around";
    case AcpiError::BadRsdpSignature: return "RSDP signature is not \"RSD PTR \"";
    case AcpiError::RsdpChecksum: return "RSDP checksum mismatch";
    case AcpiError::RsdpBadLength: return "RSDP length outside 36..256";
    case AcpiError::RsdpExtendedChecksum: return "RSDP extended checksum mismatch";
    case AcpiError::NoRootTable: return "no RSDT/XSDT (address 0)";
    case AcpiError::BadRootTableSignature: return "root table signature is not XSDT/RSDT";
    case AcpiError::RootTableBadLength: return "root table length is not a whole number of entries";
    case AcpiError::TableTooShort: return "ACPI table shorter than its header";
    case AcpiError::TableTooLong: return "ACPI table longer than 1 MiB";
    case AcpiError::TableChecksum: return "ACPI table checksum mismatch";
    case AcpiError::NoMadt: return "no MADT (APIC table)";
    case AcpiError::MadtTooShort: return "MADT shorter than its fixed fields";
    case AcpiError::MadtEntryBadLength: return "MADT entry length below 2";
    case AcpiError::MadtEntryOverruns: return "MADT entry runs past the table";
    case AcpiError::MadtEntryTooShort: return "MADT entry shorter than its type's fields";
    case AcpiError::TooManyCpus: return "more local APICs than supported";
    case AcpiError::TooManyIoApics: return "more I/O APICs than supported";
    case AcpiError::TooManyLapicNmis: return "more local APIC NMI entries than supported";
    case AcpiError::IoApicGsiBaseRepeated: return "two I/O APICs with the same GSI base";
    case AcpiError::IsaOverrideBadBus: return "interrupt source override for a bus other than ISA";
    case AcpiError::IsaOverrideBadIrq: return "interrupt source override for an IRQ above 15";
    case AcpiError::IsaOverrideRepeated: return "two interrupt source overrides for one IRQ";
    case AcpiError::ReservedPolarity: return "reserved interrupt polarity (10b)";
    case AcpiError::ReservedTrigger: return "reserved interrupt trigger mode (10b)";
    case AcpiError::BadLint: return "local APIC NMI on a LINT pin other than 0/1";
    case AcpiError::HpetTooShort: return "HPET table shorter than its fields";
    case AcpiError::HpetNotMemory: return "HPET base address not in system memory space";
    case AcpiError::FadtTooShort: return "FADT shorter than its ACPI 1.0 fields";
    case AcpiError::FadtBadIoPort: return "FADT I/O port above 0xffff";
    case AcpiError::FadtBadPmTimerLength: return "FADT PM timer block length is not 4";
    case AcpiError::BadDsdtSignature: return "DSDT signature is not \"DSDT\"";
    case AcpiError::S5NotPackage: return "\\_S5_ is not a package";
    case AcpiError::S5BadPkgLength: return "\\_S5_ package has a bad PkgLength";
    case AcpiError::S5NoElements: return "\\_S5_ package has no elements";
    case AcpiError::S5MissingElement: return "\\_S5_ package lacks a sleep type";
    case AcpiError::S5ElementOverruns: return "\\_S5_ element runs past its package";
    case AcpiError::S5BadElement: return "\\_S5_ element is not an integer constant";
    case AcpiError::S5ValueTooLarge: return "\\_S5_ sleep type above 7";
    case AcpiError::McfgBadLength: return "MCFG length not a whole number of entries";
    case AcpiError::McfgBadBusRange: return "MCFG entry's end bus below its start bus";
    case AcpiError::TooManyEcamWindows: return "more MCFG entries than supported";
  }
  return "unknown ACPI error";
}

inline constexpr u32 kSdtHeaderLength = 36;
inline constexpr u32 kMaxTableLength = 1024 * 1024;
// Usable (enabled or online-capable) processors; disabled entries are counted, not stored.
inline constexpr usize kMaxCpus = 256;
inline constexpr usize kMaxIoApics = 16;
// Firmware often lists one LAPIC NMI entry per processor.
inline constexpr usize kMaxLapicNmis = kMaxCpus;
// One per ISA IRQ: parse() refuses repeated and non-ISA sources, so this never overflows.
inline constexpr usize kMaxIsaOverrides = 16;
inline constexpr usize kMaxListedTables = 32;
inline constexpr u32 kAllProcessors = 0xffff'ffff;  // LapicNmi::processor_uid for "every processor"

// Where the tables are read from. read() fills all of `out` from physical address `phys` or fails
// (parse() passes the error through; Unreadable is the one to use). parse() never asks for a range
// that wraps past 2^64, and asks for at most 256 bytes at a time.
class PhysReader {
 public:
  [[nodiscard]] virtual ktl::Result<void, AcpiError> read(u64 phys, ktl::Span<u8> out) const = 0;

 protected:
  ~PhysReader() = default;
};

// A list of at most N values, filled by parse(); iterate it or take span().
template <class T, usize N>
class FixedList {
 public:
  [[nodiscard]] static constexpr usize capacity() { return N; }
  [[nodiscard]] inline usize size() const { return count_; }
  [[nodiscard]] inline bool empty() const { return count_ == 0; }
  [[nodiscard]] inline ktl::Span<const T> span() const { return items_.span().first(count_); }
  [[nodiscard]] inline const T& operator[](usize i) const { return span()[i]; }
  [[nodiscard]] inline auto begin() const { return span().begin(); }
  [[nodiscard]] inline auto end() const { return span().end(); }
  // False (and nothing stored) when full.
  [[nodiscard]] inline bool push(const T& value) {
    if (count_ == N) return false;
    items_[count_++] = value;
    return true;
  }
  inline void clear() { count_ = 0; }

 private:
  ktl::Array<T, N> items_{};
  usize count_ = 0;
};

enum class Polarity : u8 { ActiveHigh, ActiveLow };
enum class Trigger : u8 { Edge, Level };

[[nodiscard]] constexpr const char* to_string(Polarity p) {
  switch (p) {
    case Polarity::ActiveHigh: return "active-high";
    case Polarity::ActiveLow: return "active-low";
  }
  return "unknown polarity";
}
[[nodiscard]] constexpr const char* to_string(Trigger t) {
  switch (t) {
    case Trigger::Edge: return "edge";
    case Trigger::Level: return "level";
  }
  return "unknown trigger";
}

// MADT types 0 (Processor Local APIC) and 9 (Processor Local x2APIC).
struct LocalApic {
  enum class State : u8 {
    Enabled,        // flags bit 0
    OnlineCapable,  // bit 0 clear, bit 1 set (MADT revision >= 5): may be brought online later
  };
  u32 processor_uid;
  u32 apic_id;
  State state;
  bool x2apic;  // from a type 9 entry
};

[[nodiscard]] constexpr const char* to_string(LocalApic::State s) {
  switch (s) {
    case LocalApic::State::Enabled: return "enabled";
    case LocalApic::State::OnlineCapable: return "online-capable";
  }
  return "unknown local APIC state";
}

// MADT type 1.
struct IoApic {
  u32 id;
  u32 address;
  u32 gsi_base;
};

// MADT type 2 (bus 0, ISA). Flags 00 ("conforms to the bus") are resolved to ISA's: active-high, edge.
struct IsaOverride {
  u8 source_irq;
  u32 gsi;
  Polarity polarity;
  Trigger trigger;
};

// MADT types 4 (Local APIC NMI, UID 0xff = all) and 0xA (Local x2APIC NMI, UID 0xffffffff = all);
// both "all" forms become kAllProcessors. Flags 00 are resolved to active-high, edge.
struct LapicNmi {
  u32 processor_uid;
  u8 lint;  // 0 or 1
  Polarity polarity;
  Trigger trigger;
};

struct Madt {
  u64 local_apic_address = 0;  // a type 5 override applied
  bool pcat_compat = false;    // flags bit 0: dual 8259s present (to be masked)
  FixedList<LocalApic, kMaxCpus> local_apics;
  FixedList<IoApic, kMaxIoApics> io_apics;
  FixedList<IsaOverride, kMaxIsaOverrides> isa_overrides;
  FixedList<LapicNmi, kMaxLapicNmis> lapic_nmis;
  u32 disabled_cpus = 0;    // local APIC entries neither enabled nor online-capable (not stored)
  u32 skipped_entries = 0;  // entries of types not decoded here (3, 6, 7, 8, 0xB and up)
};

// The "HPET" table.
struct Hpet {
  u64 base;                  // system memory
  u32 event_timer_block_id;  // comparators: bits 12:8 + 1; 64-bit counter: bit 13; vendor: 31:16
  u8 number;
  u16 min_tick;
};

enum class AddressSpace : u8 { SystemMemory = 0, SystemIo = 1, PciConfig = 2 };

[[nodiscard]] constexpr const char* to_string(AddressSpace s) {
  switch (s) {
    case AddressSpace::SystemMemory: return "memory";
    case AddressSpace::SystemIo: return "I/O";
    case AddressSpace::PciConfig: return "PCI configuration";
  }
  return "unknown address space";
}

// The FADT's RESET_REG and RESET_VALUE.
struct ResetRegister {
  AddressSpace space;
  u8 bit_width;
  u8 bit_offset;
  u64 address;
  u8 value;
};

inline constexpr u32 kFadtTimerValExt = 1u << 8;
inline constexpr u32 kFadtResetRegSup = 1u << 10;
inline constexpr u32 kFadtHwReduced = 1u << 20;

// The "FACP" table. I/O ports are 0 when absent; each X_ field is used instead of its 32-bit
// predecessor when the table reaches it, its address is non-zero and (for the ports) it is in
// system I/O space.
struct Fadt {
  u8 revision;
  u32 flags;            // raw; the bits used here have their own fields
  u16 sci_irq;          // SCI_INT (an ISA IRQ or GSI; route it through the MADT)
  u16 pm_timer_port;    // 0 = none
  bool pm_timer_32bit;  // TMR_VAL_EXT
  u16 pm1a_control;     // 0 = none
  u16 pm1b_control;     // 0 = none
  u64 dsdt;             // 0 = none
  u8 rtc_century;       // CMOS index of the century, 0 = none
  u16 iapc_boot_arch;   // raw (bit 1: 8042 present, bit 5: no CMOS RTC)
  bool hw_reduced;      // HW_REDUCED_ACPI
  // Present when RESET_REG_SUP is set, the table reaches RESET_VALUE and the register is in
  // memory, I/O or PCI configuration space.
  ktl::Optional<ResetRegister> reset;
};

// \_S5_ from the DSDT: the values for PM1a/PM1b_CNT.SLP_TYP.
struct SleepType {
  u8 slp_typ_a;
  u8 slp_typ_b;
  friend constexpr bool operator==(const SleepType&, const SleepType&) = default;
};

struct TableInfo {
  ktl::Array<char, 4> signature;
  u64 address;
  u32 length;
  u8 revision;
  [[nodiscard]] inline ktl::StringView name() const { return ktl::StringView(signature.span()); }
};

// The "MCFG" table (PCI Firmware Specification): one entry per PCI segment's ECAM window.
struct EcamWindow {
  u64 base;  // physical address of bus `start_bus`'s configuration space
  u16 segment;
  u8 start_bus;
  u8 end_bus;
};
inline constexpr usize kMaxEcamWindows = 4;

struct Tables {
  u8 revision = 0;  // the RSDP's (0 = ACPI 1.0, 2+ = ACPI 2.0+)
  ktl::Array<char, 6> oem_id{};
  bool xsdt = false;  // the root table used
  u64 root_table = 0;
  Madt madt;
  ktl::Optional<Hpet> hpet;
  ktl::Optional<Fadt> fadt;
  ktl::Optional<SleepType> s5;
  FixedList<EcamWindow, kMaxEcamWindows> ecam;  // from the MCFG (empty without one: pc)
  // The tables read, in order: the root table, then its tables (the DSDT right after the FADT),
  // the first kMaxListedTables of them.
  FixedList<TableInfo, kMaxListedTables> tables;
  u32 table_count = 0;   // every table read (listed or not): the root table, its tables, the DSDT
  u32 null_entries = 0;  // root table entries of address 0, skipped
  // After a failed parse_into: the signature of the table the error is about (all zero for the
  // RSDP, or when the table's header could not be read).
  ktl::Array<char, 4> error_table{};
};

// Parses everything from the RSDP at `rsdp_phys`. Stack use: the Tables (at most 7 KiB) in parse's
// frame and in the caller's result, plus about 1 KiB of read windows; parse_into below needs only
// the 1 KiB (its `out` can be static).
[[nodiscard]] ktl::Result<Tables, AcpiError> parse(const PhysReader& memory, u64 rsdp_phys);
// The same into `out` (reset first). On an error, `out` holds what was read so far: the tables
// list then ends with the table the error is about, if its header was read.
[[nodiscard]] ktl::Result<void, AcpiError> parse_into(const PhysReader& memory, u64 rsdp_phys, Tables& out);

// ISA IRQ routing per the MADT: the override's GSI, polarity and trigger if there is one, else
// GSI = irq, edge, active-high.
struct IrqRoute {
  u32 gsi;
  Polarity polarity;
  Trigger trigger;
  friend constexpr bool operator==(const IrqRoute&, const IrqRoute&) = default;
};
[[nodiscard]] IrqRoute route_isa_irq(const Madt& madt, u8 irq);

// The I/O APIC whose range holds `gsi`: the one with the highest gsi_base <= gsi (the caller
// checks `pin` against that chip's pin count, which only the chip knows).
struct IoApicPin {
  usize ioapic_index;  // into madt.io_apics
  u32 pin;
  friend constexpr bool operator==(const IoApicPin&, const IoApicPin&) = default;
};
[[nodiscard]] ktl::Optional<IoApicPin> ioapic_for_gsi(const Madt& madt, u32 gsi);

}  // namespace kernel::acpi
