module;

#include <ktl/macros.h>

module kernel.pci_bus;

import ktl;
import kernel.acpi;
import kernel.log;
import kernel.memory;
import kernel.mmio;
import kernel.pci;
import mm.addr;
import arch.x86_64.cpu;

namespace kernel::pci_bus {

namespace {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

// ECAM: 1 MiB per bus, 4 KiB per function; a bus is mapped the first time it is touched.
class EcamConfig final : public pci::ConfigSpace {
 public:
  void init(const acpi::EcamWindow& w) { window_ = w; }
  u32 read32(pci::Address a, u16 offset) const override {
    const MmioRegion* r = bus(a.bus);
    if (r == nullptr || offset > 0xffc) return 0xffff'ffffu;
    return r->read32(function_offset(a) + (offset & 0xffc));
  }
  void write32(pci::Address a, u16 offset, u32 value) override {
    const MmioRegion* r = bus(a.bus);
    if (r == nullptr || offset > 0xffc) return;
    r->write32(function_offset(a) + (offset & 0xffc), value);
  }
  u16 size() const override { return 4096; }

 private:
  static u64 function_offset(pci::Address a) { return (u64{a.device} << 15) | (u64{a.function} << 12); }
  const MmioRegion* bus(u8 b) const {
    if (b < window_.start_bus || b > window_.end_bus) return nullptr;
    if (!mapped_[b]) {
      mapped_[b] = true;  // one attempt per bus
      auto r = memory::map_device(
          mm::PhysAddr::unchecked(window_.base + (static_cast<u64>(b - window_.start_bus) << 20)), 1u << 20);
      if (r.is_err()) {
        klog::warn("pci: ECAM bus {:#x} not mapped: {}", u32{b}, r.error());
        return nullptr;
      }
      regions_[b] = r.value();
    }
    return regions_[b].valid() ? &regions_[b] : nullptr;
  }
  acpi::EcamWindow window_{};
  // Mapped on first use, also from the const read path.
  mutable ktl::Array<MmioRegion, 256> regions_{};
  mutable ktl::Array<bool, 256> mapped_{};
};

// The legacy mechanism #1: address to 0xcf8, data at 0xcfc (256 bytes per function).
class PortConfig final : public pci::ConfigSpace {
 public:
  u32 read32(pci::Address a, u16 offset) const override {
    if (offset > 0xfc) return 0xffff'ffffu;
    arch::x86_64::outl(0xcf8, address(a, offset));
    return arch::x86_64::inl(0xcfc);
  }
  void write32(pci::Address a, u16 offset, u32 value) override {
    if (offset > 0xfc) return;
    arch::x86_64::outl(0xcf8, address(a, offset));
    arch::x86_64::outl(0xcfc, value);
  }
  u16 size() const override { return 256; }

 private:
  static u32 address(pci::Address a, u16 offset) {
    return 0x8000'0000u | (u32{a.bus} << 16) | (u32{a.device} << 11) | (u32{a.function} << 8) |
           (offset & 0xfc);
  }
};

EcamConfig g_ecam;
PortConfig g_ports;
ktl::Array<pci::Function, kMaxFunctions> g_functions{};
usize g_count = 0;
Access g_access = Access::Ports;
pci::ConfigSpace* g_config = &g_ports;

}  // namespace

void start(const acpi::Tables& tables) {
  pci::ConfigSpace* config = &g_ports;
  u8 root = 0;
  u16 segment = 0;
  if (!tables.ecam.empty()) {
    const acpi::EcamWindow& w = tables.ecam[0];
    g_ecam.init(w);
    config = &g_ecam;
    g_config = &g_ecam;
    g_access = Access::Ecam;
    root = w.start_bus;
    segment = w.segment;
    klog::info("pci: ECAM at {} for buses {:#x}-{:#x} (segment {})", mm::PhysAddr::unchecked(w.base),
               u32{w.start_bus}, u32{w.end_bus}, u32{w.segment});
  }
  pci::Scan s = pci::enumerate_tree(*config, segment, root, g_functions.span());
  g_count = s.stored;
  klog::info("pci: {} functions through {}{}{}", s.found, to_string(g_access),
             s.found > s.stored ? " (some beyond the table)" : "",
             s.problems != 0 ? "; some malformed (see lspci)" : "");
  for (usize i = 0; i < g_count; ++i) {
    const pci::Function& f = g_functions[i];
    klog::debug("pci: {} {:04x}:{:04x} {}", f.address, u32{f.vendor}, u32{f.device},
                pci::class_name(f.class_code, f.subclass));
  }
}

ktl::Span<const pci::Function> functions() { return g_functions.span().first(g_count); }
Access access() { return g_access; }
pci::ConfigSpace& config() { return *g_config; }

void write_list(ktl::FormatSink& out) {
  for (const pci::Function& f : functions()) {
    ktl::format_to(out, "{} {:04x}:{:04x} rev {:02x} {}", f.address, u32{f.vendor}, u32{f.device},
                   u32{f.revision}, pci::class_name(f.class_code, f.subclass));
    if (f.interrupt_pin != 0)
      ktl::format_to(out, ", INT{} line {}", static_cast<char>('A' + f.interrupt_pin - 1),
                     u32{f.interrupt_line});
    out.write("\n");
    for (u8 i = 0; i < f.bar_count; ++i) {
      const pci::Bar& b = f.bars[i];
      if (b.kind == pci::BarKind::None) continue;
      ktl::format_to(out, "    BAR{} {} {:#x} size {:#x}{}\n", u32{i}, pci::to_string(b.kind), b.base, b.size,
                     b.prefetchable ? " prefetchable" : "");
    }
    if (f.capability_count != 0) {
      out.write("    capabilities:");
      for (u8 i = 0; i < f.capability_count; ++i) ktl::format_to(out, " {:#04x}", u32{f.capabilities[i]});
      out.write("\n");
    }
    if (f.problem != pci::FunctionProblem::None)
      ktl::format_to(out, "    malformed: {}\n", pci::to_string(f.problem));
  }
}

}  // namespace kernel::pci_bus
