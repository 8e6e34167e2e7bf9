// arch.x86_64.apic: this CPU's local APIC (Intel SDM vol. 3A, "Advanced Programmable Interrupt
// Controller"). Both access modes are written: x2APIC (MSRs 0x800 + offset/16) where CPUID.1:ECX[21]
// offers it, xAPIC (MMIO at IA32_APIC_BASE, mapped uncached by the caller) otherwise. QEMU's TCG
// offers no x2APIC, so only the xAPIC path runs in our QEMU tests.
//
// Vectors: the spurious vector 0xff (its handler must not EOI), APIC errors 0xfe, the timer 0xf0.
// The timer runs in one-shot mode at divide 16 (TSC-deadline mode is not offered by TCG).
//
// Contract: init_local_apic runs once on the boot CPU with interrupts masked, before any LAPIC
// interrupt is unmasked. FIXME(smp): per-CPU state once other CPUs start.
module;

#include <ktl/macros.h>

export module arch.x86_64.apic;

import ktl;
import arch.x86_64.cpu;
import kernel.mmio;

export namespace arch::x86_64 {

enum class ApicMode : u8 { XApic, X2Apic };
[[nodiscard]] constexpr const char* to_string(ApicMode m) {
  switch (m) {
    case ApicMode::XApic: return "xAPIC";
    case ApicMode::X2Apic: return "x2APIC";
  }
  return "unknown APIC mode";
}

inline constexpr u8 kApicTimerVector = 0xf0;
inline constexpr u8 kApicErrorVector = 0xfe;
inline constexpr u8 kSpuriousVector = 0xff;
// The timer's divide (Divide Configuration register value 0x3); calibrate_* measures its rate.
inline constexpr u32 kApicTimerDivide = 16;

struct LocalApicInfo {
  ApicMode mode;
  u32 id;
  u32 version;    // bits 7:0 of the version register
  u32 max_lvt;    // highest LVT entry index
  u64 base_phys;  // IA32_APIC_BASE's address (the xAPIC window)
};

// The physical address of the xAPIC register page (IA32_APIC_BASE), for the caller to map.
[[nodiscard]] u64 local_apic_base_phys();
// Whether CPUID offers x2APIC mode.
[[nodiscard]] bool x2apic_supported();
// Enables this CPU's local APIC in x2APIC mode when supported (then `xapic_regs` is unused), else
// in xAPIC mode through `xapic_regs` (one page at local_apic_base_phys()). Software-enables it
// with kSpuriousVector, masks LINT0 (the 8259's ExtINT path: the I/O APIC serves the ISA lines),
// programs LINT1 as NMI, sends APIC errors to kApicErrorVector, masks the timer, TPR 0.
LocalApicInfo init_local_apic(kernel::MmioRegion xapic_regs);
[[nodiscard]] bool local_apic_ready();

// End of interrupt for the interrupt being handled (never for the spurious vector).
void apic_eoi();
// The error status register (after latching it: write, then read), 0 when there were no errors.
[[nodiscard]] u32 apic_error_status();

// The timer: one-shot on kApicTimerVector after `count` ticks (at kApicTimerDivide); stop; and
// a masked free run from 0xffffffff for calibration.
void apic_timer_one_shot(u32 count);
void apic_timer_stop();
void apic_timer_start_free_run();
[[nodiscard]] u32 apic_timer_current_count();

// Sends an NMI to this CPU (delivery mode NMI to the own APIC ID). Works before
// init_local_apic too (then in the mode the firmware left, xAPIC through the direct map).
void set_apic_direct_map(u64 base);
void send_nmi_to_self();

}  // namespace arch::x86_64
