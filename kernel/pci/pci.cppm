// kernel.pci: PCI enumeration over an abstract configuration space (the kernel's ECAM window from
// the MCFG or the 0xcf8/0xcfc ports; a model in the host tests and the fuzzer). What a function's
// configuration space says is outside data: every pointer is bounds-checked and a capability list
// that loops or leaves the header is an error for that function (recorded, the scan goes on).
//
//   functions: vendor/device, class, header type, subsystem, interrupt line/pin, the six (type 0)
//   or two (type 1, bridges: also the bus numbers) BARs decoded and sized (memory and I/O decoding
//   switched off while a BAR is probed with all ones, then restored), the capability IDs.
module;

#include <ktl/macros.h>

export module kernel.pci;

import ktl;

export namespace kernel::pci {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

struct Address {
  u16 segment = 0;
  u8 bus = 0;
  u8 device = 0;    // 0..31
  u8 function = 0;  // 0..7
  friend constexpr bool operator==(const Address&, const Address&) = default;
};
// "00:1f.2" (segment 0) or "0001:00:1f.2".
void format_value(ktl::FormatSink& out, const Address& a, const ktl::FormatSpec& spec);

// Reads and writes aligned dwords of a function's 4 KiB (ECAM) or 256-byte (ports) space.
class ConfigSpace {
 public:
  [[nodiscard]] virtual u32 read32(Address a, u16 offset) const = 0;
  virtual void write32(Address a, u16 offset, u32 value) = 0;
  // The bytes each function has (256 through the ports, 4096 through ECAM).
  [[nodiscard]] virtual u16 size() const = 0;

 protected:
  ~ConfigSpace() = default;
};

// Byte, word and dword access at any naturally aligned offset, through the dword interface. A
// narrow write reads the dword and writes it back with its part replaced; at the command/status
// dword (0x04) the status half is written as zero (its bits are write-one-to-clear). An unaligned
// offset reads all ones and writes nothing.
[[nodiscard]] u8 read8(const ConfigSpace& c, Address a, u16 offset);
[[nodiscard]] u16 read16(const ConfigSpace& c, Address a, u16 offset);
[[nodiscard]] u32 read32(const ConfigSpace& c, Address a, u16 offset);
void write8(ConfigSpace& c, Address a, u16 offset, u8 value);
void write16(ConfigSpace& c, Address a, u16 offset, u16 value);
void write32(ConfigSpace& c, Address a, u16 offset, u32 value);

enum class BarKind : u8 { None, Memory32, Memory64, Io };
[[nodiscard]] constexpr const char* to_string(BarKind k) {
  switch (k) {
    case BarKind::None: return "none";
    case BarKind::Memory32: return "mem32";
    case BarKind::Memory64: return "mem64";
    case BarKind::Io: return "io";
  }
  return "unknown BAR kind";
}

struct Bar {
  BarKind kind = BarKind::None;
  bool prefetchable = false;
  u64 base = 0;
  u64 size = 0;  // 0: not implemented
};

enum class FunctionProblem : u8 {
  None,
  CapabilityLoop,        // the capability list visits an offset twice
  BadCapabilityPointer,  // a pointer below 0x40, unaligned, or past the space
  BadBar,                // a 64-bit BAR in the last slot, or a size that is not a power of two
};
[[nodiscard]] constexpr const char* to_string(FunctionProblem p) {
  switch (p) {
    case FunctionProblem::None: return "none";
    case FunctionProblem::CapabilityLoop: return "capability list loops";
    case FunctionProblem::BadCapabilityPointer: return "capability pointer outside the header";
    case FunctionProblem::BadBar: return "malformed BAR";
  }
  return "unknown function problem";
}

inline constexpr usize kMaxCapabilities = 16;

struct Function {
  Address address;
  u16 vendor = 0;
  u16 device = 0;
  u8 revision = 0;
  u8 class_code = 0;
  u8 subclass = 0;
  u8 prog_if = 0;
  u8 header_type = 0;  // bits 6:0 (0 device, 1 PCI-PCI bridge, 2 CardBus)
  bool multifunction = false;
  u16 subsystem_vendor = 0;
  u16 subsystem = 0;
  u8 interrupt_line = 0;
  u8 interrupt_pin = 0;  // 0 none, 1..4 INTA..INTD
  u8 secondary_bus = 0;  // bridges
  u8 subordinate_bus = 0;
  ktl::Array<Bar, 6> bars{};
  u8 bar_count = 0;  // 6 for devices, 2 for bridges
  ktl::Array<u8, kMaxCapabilities> capabilities{};
  u8 capability_count = 0;
  FunctionProblem problem = FunctionProblem::None;
};

// "mass storage (SATA)", "bridge (host)", ...: a short name of the class and subclass.
[[nodiscard]] const char* class_name(u8 class_code, u8 subclass);

enum class SizeBars : u8 { No, Yes };

struct Scan {
  usize found = 0;     // functions seen (those beyond the output span included)
  usize stored = 0;    // in the output span
  usize problems = 0;  // functions with a FunctionProblem
};

// Every function on buses [first_bus, last_bus] of `segment`, in bus/device/function order.
Scan enumerate(ConfigSpace& config, u16 segment, u8 first_bus, u8 last_bus, ktl::Span<Function> out,
               SizeBars size_bars = SizeBars::Yes);
// Bus `root_bus` and every bus behind its bridges (secondary..subordinate, each bus scanned once),
// in the order found: what firmware configured, without touching the buses nobody routes to.
Scan enumerate_tree(ConfigSpace& config, u16 segment, u8 root_bus, ktl::Span<Function> out,
                    SizeBars size_bars = SizeBars::Yes);
// One function (vendor 0xffff: none there).
[[nodiscard]] ktl::Optional<Function> probe(ConfigSpace& config, Address a, SizeBars size_bars);

}  // namespace kernel::pci
