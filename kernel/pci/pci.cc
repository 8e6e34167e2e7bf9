module;

#include <ktl/macros.h>

module kernel.pci;

import ktl;

namespace kernel::pci {

namespace {

constexpr u16 kVendorDevice = 0x00;
constexpr u16 kCommandStatus = 0x04;
constexpr u16 kClassRevision = 0x08;
constexpr u16 kHeader = 0x0c;
constexpr u16 kBar0 = 0x10;
constexpr u16 kBusNumbers = 0x18;  // type 1
constexpr u16 kSubsystem = 0x2c;   // type 0
constexpr u16 kCapabilityPointer = 0x34;
constexpr u16 kInterrupt = 0x3c;
constexpr u32 kStatusCapabilities = 1u << 20;  // status bit 4, in the dword with the command
constexpr u32 kCommandDecode = 0x3;            // I/O and memory space

u8 byte_of(u32 dword, u16 offset) { return static_cast<u8>(dword >> ((offset & 3) * 8)); }
void size_bars(ConfigSpace& c, Address a, Function& f) {
  u32 command = c.read32(a, kCommandStatus);
  c.write32(a, kCommandStatus, command & ~kCommandDecode & 0xffff);  // decoding off while probing
  for (u8 i = 0; i < f.bar_count; ++i) {
    u16 reg = static_cast<u16>(kBar0 + 4 * i);
    u32 original = c.read32(a, reg);
    Bar& b = f.bars[i];
    if ((original & 1) != 0) {
      b.kind = BarKind::Io;
      b.base = original & ~u32{3};
      c.write32(a, reg, 0xffff'ffffu);
      u32 mask = c.read32(a, reg) & ~u32{3} & 0xffff;  // I/O BARs decode 16 bits on x86
      c.write32(a, reg, original);
      b.size = mask == 0 ? 0 : ((~mask + 1) & 0xffff);
      continue;
    }
    u32 type = (original >> 1) & 3;
    b.prefetchable = (original & 8) != 0;
    if (type == 2) {
      if (i + 1 >= f.bar_count) {
        f.problem = FunctionProblem::BadBar;
        b.kind = BarKind::None;
        break;
      }
      u32 high = c.read32(a, static_cast<u16>(reg + 4));
      c.write32(a, reg, 0xffff'ffffu);
      c.write32(a, static_cast<u16>(reg + 4), 0xffff'ffffu);
      u64 mask = (u64{c.read32(a, static_cast<u16>(reg + 4))} << 32) | (c.read32(a, reg) & ~u32{0xf});
      c.write32(a, reg, original);
      c.write32(a, static_cast<u16>(reg + 4), high);
      b.kind = BarKind::Memory64;
      b.base = (u64{high} << 32) | (original & ~u32{0xf});
      b.size = mask == 0 ? 0 : ~mask + 1;
      f.bars[i + 1] = Bar{};  // the upper half
      ++i;
    } else {
      c.write32(a, reg, 0xffff'ffffu);
      u32 mask = c.read32(a, reg) & ~u32{0xf};
      c.write32(a, reg, original);
      b.kind = BarKind::Memory32;
      b.base = original & ~u32{0xf};
      b.size = mask == 0 ? 0 : u64{~mask + 1};
    }
    if (b.size == 0) {
      b.kind = BarKind::None;
    } else if ((b.size & (b.size - 1)) != 0) {
      f.problem = FunctionProblem::BadBar;
    }
  }
  c.write32(a, kCommandStatus, command & 0xffff);
}

void read_capabilities(const ConfigSpace& c, Address a, Function& f) {
  if ((c.read32(a, kCommandStatus) & kStatusCapabilities) == 0) return;
  ktl::Array<bool, 64> seen{};  // dword offsets 0x40..0xff
  u16 at = read8(c, a, kCapabilityPointer) & 0xfc;
  while (at != 0) {  // ends: every step visits a new dword (seen) or stops
    if (at < 0x40 || at > 0xfc || at + 2 > c.size()) {
      f.problem = FunctionProblem::BadCapabilityPointer;
      return;
    }
    usize slot = at / 4;
    if (seen[slot]) {
      f.problem = FunctionProblem::CapabilityLoop;
      return;
    }
    seen[slot] = true;
    u32 header = c.read32(a, at);
    if (f.capability_count < kMaxCapabilities) f.capabilities[f.capability_count++] = static_cast<u8>(header);
    at = static_cast<u16>((header >> 8) & 0xfc);
  }
}

}  // namespace

void format_value(ktl::FormatSink& out, const Address& a, const ktl::FormatSpec&) {
  if (a.segment != 0) ktl::format_to(out, "{:04x}:", a.segment);
  ktl::format_to(out, "{:02x}:{:02x}.{}", u32{a.bus}, u32{a.device}, u32{a.function});
}

const char* class_name(u8 class_code, u8 subclass) {
  switch (class_code) {
    case 0x00: return "unclassified";
    case 0x01:
      switch (subclass) {
        case 0x01: return "storage (IDE)";
        case 0x06: return "storage (SATA)";
        case 0x08: return "storage (NVMe)";
        default: return "storage";
      }
    case 0x02: return "network";
    case 0x03: return "display";
    case 0x04: return "multimedia";
    case 0x05: return "memory";
    case 0x06:
      switch (subclass) {
        case 0x00: return "bridge (host)";
        case 0x01: return "bridge (ISA)";
        case 0x04: return "bridge (PCI-PCI)";
        case 0x80: return "bridge (other)";
        default: return "bridge";
      }
    case 0x07: return "communication";
    case 0x08: return "system peripheral";
    case 0x0c:
      switch (subclass) {
        case 0x03: return "serial bus (USB)";
        case 0x05: return "serial bus (SMBus)";
        default: return "serial bus";
      }
    case 0xff: return "vendor specific";
    default: return "other";
  }
}

u8 read8(const ConfigSpace& c, Address a, u16 offset) {
  return byte_of(c.read32(a, offset & ~u16{3}), offset);
}
u16 read16(const ConfigSpace& c, Address a, u16 offset) {
  if ((offset & 1u) != 0) return 0xffff;
  return static_cast<u16>(c.read32(a, offset & ~u16{3}) >> ((offset & 2u) * 8));
}
u32 read32(const ConfigSpace& c, Address a, u16 offset) {
  if ((offset & 3u) != 0) return 0xffff'ffffu;
  return c.read32(a, offset);
}

namespace {
void write_part(ConfigSpace& c, Address a, u16 offset, u32 value, u32 width_mask) {
  const u16 dword = offset & ~u16{3};
  const u32 shift = (offset & 3u) * 8;
  u32 old = c.read32(a, dword);
  if (dword == kCommandStatus) old &= 0xffffu;  // status: write-one-to-clear, write zeros
  c.write32(a, dword, (old & ~(width_mask << shift)) | ((value & width_mask) << shift));
}
}  // namespace

void write8(ConfigSpace& c, Address a, u16 offset, u8 value) { write_part(c, a, offset, value, 0xffu); }
void write16(ConfigSpace& c, Address a, u16 offset, u16 value) {
  if ((offset & 1u) != 0) return;
  write_part(c, a, offset, value, 0xffffu);
}
void write32(ConfigSpace& c, Address a, u16 offset, u32 value) {
  if ((offset & 3u) != 0) return;
  c.write32(a, offset, value);
}

ktl::Optional<Function> probe(ConfigSpace& c, Address a, SizeBars bars) {
  u32 id = c.read32(a, kVendorDevice);
  if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) return ktl::nullopt;
  Function f;
  f.address = a;
  f.vendor = static_cast<u16>(id);
  f.device = static_cast<u16>(id >> 16);
  u32 cls = c.read32(a, kClassRevision);
  f.revision = static_cast<u8>(cls);
  f.prog_if = static_cast<u8>(cls >> 8);
  f.subclass = static_cast<u8>(cls >> 16);
  f.class_code = static_cast<u8>(cls >> 24);
  u8 header = byte_of(c.read32(a, kHeader), kHeader + 2);
  f.header_type = header & 0x7f;
  f.multifunction = (header & 0x80) != 0;
  u32 irq = c.read32(a, kInterrupt);
  f.interrupt_line = static_cast<u8>(irq);
  f.interrupt_pin = static_cast<u8>(irq >> 8);
  if (f.header_type == 0) {
    f.bar_count = 6;
    u32 sub = c.read32(a, kSubsystem);
    f.subsystem_vendor = static_cast<u16>(sub);
    f.subsystem = static_cast<u16>(sub >> 16);
  } else if (f.header_type == 1) {
    f.bar_count = 2;
    u32 buses = c.read32(a, kBusNumbers);
    f.secondary_bus = static_cast<u8>(buses >> 8);
    f.subordinate_bus = static_cast<u8>(buses >> 16);
  }
  if (bars == SizeBars::Yes && f.bar_count != 0) size_bars(c, a, f);
  read_capabilities(c, a, f);
  return f;
}

Scan enumerate(ConfigSpace& c, u16 segment, u8 first_bus, u8 last_bus, ktl::Span<Function> out,
               SizeBars bars) {
  Scan s;
  for (u32 bus = first_bus; bus <= last_bus; ++bus) {
    for (u8 dev = 0; dev < 32; ++dev) {
      for (u8 fn = 0; fn < 8; ++fn) {
        Address a{segment, static_cast<u8>(bus), dev, fn};
        ktl::Optional<Function> f = probe(c, a, bars);
        if (!f.has_value()) {
          if (fn == 0) break;  // no function 0: no device
          continue;
        }
        ++s.found;
        if (f->problem != FunctionProblem::None) ++s.problems;
        if (s.stored < out.size()) out[s.stored++] = *f;
        if (fn == 0 && !f->multifunction) break;
      }
    }
  }
  return s;
}

Scan enumerate_tree(ConfigSpace& c, u16 segment, u8 root_bus, ktl::Span<Function> out, SizeBars bars) {
  Scan total;
  ktl::Array<bool, 256> scanned{};
  ktl::Array<u8, 256> pending{};
  usize queued = 0;
  pending[queued++] = root_bus;
  scanned[root_bus] = true;
  for (usize next = 0; next < queued; ++next) {
    u8 bus = pending[next];
    usize first = total.stored;
    Scan s = enumerate(c, segment, bus, bus, out.subspan(total.stored, out.size() - total.stored), bars);
    total.found += s.found;
    total.stored += s.stored;
    total.problems += s.problems;
    for (usize i = first; i < total.stored; ++i) {
      const Function& f = out[i];
      if (f.header_type != 1 || f.secondary_bus == 0 || f.subordinate_bus < f.secondary_bus) continue;
      for (u32 b = f.secondary_bus; b <= f.subordinate_bus; ++b) {
        if (scanned[b]) continue;
        scanned[b] = true;
        pending[queued++] = static_cast<u8>(b);
      }
    }
  }
  return total;
}

}  // namespace kernel::pci
