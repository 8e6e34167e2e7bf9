// arch.x86_64.apic: the little of the local APIC the kernel uses so far: a self-NMI (the NMI
// path's test). Interrupts stay masked (no timer yet). Works in xAPIC mode (MMIO at the
// IA32_APIC_BASE address, through the direct map) and x2APIC mode (MSRs).
module;

#include <ktl/macros.h>

export module arch.x86_64.apic;

import ktl;
import arch.x86_64.cpu;

export namespace arch::x86_64 {

// The direct-map base through which the xAPIC's registers are reached.
void set_apic_direct_map(u64 base);
// Sends an NMI to this CPU (delivery mode NMI to the own APIC ID).
void send_nmi_to_self();

}  // namespace arch::x86_64
