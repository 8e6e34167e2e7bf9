module;

#include <ktl/macros.h>

module arch.x86_64.features;

import ktl;
import arch.x86_64.cpu;

namespace arch::x86_64 {

namespace {
constexpr bool bit(u32 value, u32 n) { return ((value >> n) & 1) != 0; }

void put_vendor_word(ktl::Array<char, 13>& vendor, ktl::usize at, u32 word) {
  for (ktl::usize i = 0; i < 4; ++i) vendor[at + i] = static_cast<char>((word >> (8 * i)) & 0xff);
}

void write_flag(ktl::FormatSink& sink, bool on, ktl::StringView name, bool& first) {
  if (!on) return;
  if (!first) sink.write(" ");
  sink.write(name);
  first = false;
}
}  // namespace

CpuFeatures detect_features() {
  CpuFeatures f;
  CpuidResult leaf0 = cpuid(0);
  u32 max_leaf = leaf0.eax;
  put_vendor_word(f.vendor, 0, leaf0.ebx);
  put_vendor_word(f.vendor, 4, leaf0.edx);
  put_vendor_word(f.vendor, 8, leaf0.ecx);
  f.vendor[12] = '\0';

  if (max_leaf >= 1) {
    CpuidResult l1 = cpuid(1);
    u32 family = (l1.eax >> 8) & 0xf;
    u32 model = (l1.eax >> 4) & 0xf;
    if (family == 0xf) family += (l1.eax >> 20) & 0xff;
    if (family == 0x6 || family >= 0xf) model |= ((l1.eax >> 16) & 0xf) << 4;
    f.family = family;
    f.model = model;
    f.stepping = l1.eax & 0xf;
    f.pge = bit(l1.edx, 13);
    f.pcid = bit(l1.ecx, 17);
    f.x2apic = bit(l1.ecx, 21);
    f.rdrand = bit(l1.ecx, 30);
    f.hypervisor = bit(l1.ecx, 31);
  }
  if (max_leaf >= 7) {
    CpuidResult l7 = cpuid(7, 0);
    f.fsgsbase = bit(l7.ebx, 0);
    f.smep = bit(l7.ebx, 7);
    f.invpcid = bit(l7.ebx, 10);
    f.smap = bit(l7.ebx, 20);
    f.umip = bit(l7.ecx, 2);
    f.la57 = bit(l7.ecx, 16);
  }
  u32 max_ext = cpuid(0x8000'0000).eax;
  if (max_ext >= 0x8000'0001) {
    CpuidResult e1 = cpuid(0x8000'0001);
    f.nx = bit(e1.edx, 20);
    f.gbpages = bit(e1.edx, 26);
  }
  if (max_ext >= 0x8000'0008) {
    CpuidResult e8 = cpuid(0x8000'0008);
    f.physical_address_bits = e8.eax & 0xff;
    f.linear_address_bits = (e8.eax >> 8) & 0xff;
  }
  return f;
}

Protections current_protections() {
  u64 cr0v = read_cr0();
  u64 cr4v = read_cr4();
  u64 efer_v = rdmsr(msr::kEfer);
  Protections p;
  p.nxe = (efer_v & efer::kNxe) != 0;
  p.wp = (cr0v & cr0::kWp) != 0;
  p.smep = (cr4v & cr4::kSmep) != 0;
  p.smap = (cr4v & cr4::kSmap) != 0;
  p.umip = (cr4v & cr4::kUmip) != 0;
  p.pge = (cr4v & cr4::kPge) != 0;
  return p;
}

Protections enable_protections(const CpuFeatures& f) {
  if (f.nx) wrmsr(msr::kEfer, rdmsr(msr::kEfer) | efer::kNxe);
  write_cr0(read_cr0() | cr0::kWp);
  u64 cr4v = read_cr4();
  if (f.smep) cr4v |= cr4::kSmep;
  if (f.smap) cr4v |= cr4::kSmap;  // no user pages exist, so no stac/clac is needed yet
  if (f.umip) cr4v |= cr4::kUmip;
  if (f.pge) cr4v |= cr4::kPge;
  write_cr4(cr4v);
  return current_protections();
}

void format_value(ktl::FormatSink& sink, const CpuFeatures& f, const ktl::FormatSpec&) {
  bool first = true;
  write_flag(sink, f.nx, "nx", first);
  write_flag(sink, f.smep, "smep", first);
  write_flag(sink, f.smap, "smap", first);
  write_flag(sink, f.umip, "umip", first);
  write_flag(sink, f.pge, "pge", first);
  write_flag(sink, f.pcid, "pcid", first);
  write_flag(sink, f.invpcid, "invpcid", first);
  write_flag(sink, f.gbpages, "1g-pages", first);
  write_flag(sink, f.x2apic, "x2apic", first);
  write_flag(sink, f.la57, "la57", first);
  write_flag(sink, f.fsgsbase, "fsgsbase", first);
  write_flag(sink, f.rdrand, "rdrand", first);
  write_flag(sink, f.hypervisor, "hypervisor", first);
  if (first) sink.write("-");
}

void format_value(ktl::FormatSink& sink, const Protections& p, const ktl::FormatSpec&) {
  bool first = true;
  write_flag(sink, p.nxe, "NXE", first);
  write_flag(sink, p.wp, "WP", first);
  write_flag(sink, p.smep, "SMEP", first);
  write_flag(sink, p.smap, "SMAP", first);
  write_flag(sink, p.umip, "UMIP", first);
  write_flag(sink, p.pge, "PGE", first);
  if (first) sink.write("-");
}

}  // namespace arch::x86_64
