// kernel.virtio.pci: where a modern virtio-pci device (virtio 1.2 §4.1.4) keeps its registers, read
// from its configuration space: the vendor-specific capabilities (common configuration, notify
// with its notify_off_multiplier, ISR, device configuration; the PCI-configuration access one is
// skipped) and the MSI-X capability (table and PBA: BAR and offset). Each structure is located
// as (BAR, offset, length) against the function's sized BARs.
//
// The capability list is outside data: a loop, a pointer into the header or past the space, a
// capability shorter than its type needs, a BAR index past 5 or naming an I/O or absent BAR, a
// structure that does not fit its BAR, two structures that overlap, an odd notify multiplier
// (§4.1.4.4: even) or an MSI-X table outside its BAR is a VirtioPciError; the first capability
// of each type is used (§4.1.4.1), later ones are ignored.
module;

#include <ktl/macros.h>

export module kernel.virtio.pci;

import ktl;
import kernel.pci;

export namespace kernel::virtio {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

inline constexpr u16 kVirtioVendor = 0x1af4;
inline constexpr u16 kBlockModernDevice = 0x1042;        // 0x1040 + device type 2
inline constexpr u16 kBlockTransitionalDevice = 0x1001;  // driven through its modern capabilities

inline constexpr u8 kCapVendor = 0x09;
inline constexpr u8 kCapMsix = 0x11;

enum class CapType : u8 { Common = 1, Notify = 2, Isr = 3, Device = 4, PciCfg = 5 };

// Minimum lengths: the common configuration's fields end at 0x38 (§4.1.4.3).
inline constexpr u32 kCommonCfgBytes = 0x38;

enum class VirtioPciError : u32 {
  NoCapabilities,        // status bit 4 clear: no capability list
  CapabilityLoop,        // the list visits an offset twice
  BadCapabilityPointer,  // a pointer below 0x40, unaligned or past the space
  ShortCapability,       // cap_len smaller than the structure of its type
  BadBarIndex,           // a structure's BAR index above 5
  BarNotMemory,          // a structure in an I/O or unimplemented BAR
  OutsideBar,            // offset + length past the BAR's size
  TooShort,              // a structure shorter than its type needs (common 0x38, ISR 1, notify 2)
  Overlap,               // two structures share bytes of one BAR
  OddNotifyMultiplier,   // notify_off_multiplier not even
  MissingCommon,         // no common configuration capability
  MissingNotify,         // no notify capability
  MissingIsr,            // no ISR capability
  MissingDevice,         // no device configuration capability
  BadMsix,               // an MSI-X table or PBA outside its BAR, or in an I/O BAR
};
[[nodiscard]] constexpr const char* to_string(VirtioPciError e) {
  switch (e) {
    case VirtioPciError::NoCapabilities: return "no capability list";
    case VirtioPciError::CapabilityLoop: return "capability list loops";
    case VirtioPciError::BadCapabilityPointer: return "capability pointer outside the space";
    case VirtioPciError::ShortCapability: return "capability shorter than its type";
    case VirtioPciError::BadBarIndex: return "virtio structure in BAR index > 5";
    case VirtioPciError::BarNotMemory: return "virtio structure in an I/O or absent BAR";
    case VirtioPciError::OutsideBar: return "virtio structure past the end of its BAR";
    case VirtioPciError::TooShort: return "virtio structure too short for its type";
    case VirtioPciError::Overlap: return "virtio structures overlap";
    case VirtioPciError::OddNotifyMultiplier: return "notify_off_multiplier is odd";
    case VirtioPciError::MissingCommon: return "no common configuration capability";
    case VirtioPciError::MissingNotify: return "no notify capability";
    case VirtioPciError::MissingIsr: return "no ISR capability";
    case VirtioPciError::MissingDevice: return "no device configuration capability";
    case VirtioPciError::BadMsix: return "MSI-X table or PBA outside its BAR";
  }
  return "unknown virtio-pci error";
}

// [offset, offset + length) of BAR `bar` (always inside it: checked against the sized BAR).
struct Region {
  u8 bar = 0;
  u32 offset = 0;
  u32 length = 0;
};

struct Msix {
  u8 cap_offset = 0;   // of the capability in configuration space (message control at +2)
  u16 table_size = 0;  // entries (message control bits 10:0, plus one)
  Region table;        // 16 bytes per entry
  Region pba;
};

struct Layout {
  Region common;
  Region notify;
  u32 notify_off_multiplier = 0;
  Region isr;
  Region device;
  ktl::Optional<Msix> msix;
};

// The layout of function `f` (its BARs as kernel.pci sized them), read through `config`.
[[nodiscard]] ktl::Result<Layout, VirtioPciError> parse_layout(const pci::ConfigSpace& config,
                                                               const pci::Function& f);

}  // namespace kernel::virtio
