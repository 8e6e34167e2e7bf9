// arch.x86_64.pit: the 8254 PIT's channel 2 as a time reference when there is no HPET (Intel
// 82C54 data sheet; port 0x61 bit 0 gates channel 2, bit 1 enables the speaker, bit 5 reads its
// OUT). Mode 0 (interrupt on terminal count): OUT goes high `counts` input clocks after the count
// is loaded. Channel 0 (IRQ 0) is left alone: the local APIC timer drives the kernel's timers.
module;

export module arch.x86_64.pit;

import ktl;
import arch.x86_64.cpu;

export namespace arch::x86_64 {

inline constexpr u64 kPitHz = 1'193'182;

// Loads `counts` into channel 2 (gate low, speaker off). pit_channel2_start then opens the gate,
// and pit_channel2_done says whether the count has run out.
void pit_channel2_load(u16 counts);
void pit_channel2_start();
[[nodiscard]] bool pit_channel2_done();

}  // namespace arch::x86_64
