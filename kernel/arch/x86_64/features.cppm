// arch.x86_64.features: what this CPU can do (CPUID) and the protection bits the kernel turns on.
//
//   auto f = arch::x86_64::detect_features();
//   auto on = arch::x86_64::enable_protections(f);   // NXE, WP, SMEP, SMAP, UMIP, PGE where present
//
// enable_protections() reads the control registers back, so what it reports is what the CPU
// accepted, not what was asked. Contract: boot CPU, interrupts off. The kernel never touches user
// memory yet and the loader maps no user pages, so SMAP needs no stac/clac anywhere.
module;

#include <ktl/macros.h>

export module arch.x86_64.features;

import ktl;
import arch.x86_64.cpu;

export namespace arch::x86_64 {

struct CpuFeatures {
  ktl::Array<char, 13> vendor{};  // "GenuineIntel", "AuthenticAMD", "TCGTCGTCGTCG"... (NUL-terminated)
  u32 family = 0;
  u32 model = 0;
  u32 stepping = 0;
  u32 physical_address_bits = 36;
  u32 linear_address_bits = 48;
  bool nx = false;          // CPUID 8000_0001h EDX[20]
  bool smep = false;        // CPUID 7.0 EBX[7]
  bool smap = false;        // CPUID 7.0 EBX[20]
  bool umip = false;        // CPUID 7.0 ECX[2]
  bool pge = false;         // CPUID 1 EDX[13]
  bool pcid = false;        // CPUID 1 ECX[17]
  bool invpcid = false;     // CPUID 7.0 EBX[10]
  bool gbpages = false;     // CPUID 8000_0001h EDX[26]
  bool x2apic = false;      // CPUID 1 ECX[21]
  bool la57 = false;        // CPUID 7.0 ECX[16]
  bool fsgsbase = false;    // CPUID 7.0 EBX[0]
  bool rdrand = false;      // CPUID 1 ECX[30]
  bool hypervisor = false;  // CPUID 1 ECX[31]

  [[nodiscard]] inline ktl::StringView vendor_name() const { return ktl::StringView(vendor.data()); }
};

// The bits that are on after enable_protections().
struct Protections {
  bool nxe = false;
  bool wp = false;
  bool smep = false;
  bool smap = false;
  bool umip = false;
  bool pge = false;
};

[[nodiscard]] CpuFeatures detect_features();
// Sets EFER.NXE, CR0.WP, CR4.SMEP/SMAP/UMIP/PGE for every feature `f` reports; returns what the
// control registers hold afterwards.
Protections enable_protections(const CpuFeatures& f);
// What the control registers hold now.
[[nodiscard]] Protections current_protections();

// "nx smep smap umip pge pcid ..." (the features present).
void format_value(ktl::FormatSink& sink, const CpuFeatures& f, const ktl::FormatSpec& spec);
// "NXE WP SMEP SMAP UMIP PGE" for those that are on, "-" if none.
void format_value(ktl::FormatSink& sink, const Protections& p, const ktl::FormatSpec& spec);

}  // namespace arch::x86_64
