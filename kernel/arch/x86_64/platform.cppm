// arch.x86_64.platform: interrupts and time on a PC, from the ACPI tables up.
//
//   1. ACPI (kernel.acpi): the MADT (local APIC, I/O APICs, ISA overrides), the HPET, the FADT.
//   2. The local APIC (arch.x86_64.apic: x2APIC where offered, else xAPIC), the I/O APICs masked.
//   3. The trap routing of vectors 0x20..0xff: the spurious vectors (the APIC's 0xff, the 8259s'
//      0x27 and 0x2f) are counted and get no EOI; APIC errors are logged; the APIC timer feeds
//      kernel.time's timer service; every other vector goes to kernel.irq (a registered handler,
//      or counted and logged as unexpected) and gets an EOI. Exceptions (0..31) stay with the
//      default trap handler (the panic report).
//   4. Calibration of the TSC and the APIC timer against the HPET, or without one the PIT's
//      channel 2: eight 10 ms windows, the first dropped, the median kept, a majority within 1 % of it
//      (kernel.time: a window the host delayed is outvoted).
//   5. The monotonic clock: the TSC when CPUID says it is invariant, else the HPET's counter, else
//      the TSC anyway (logged as a warning); one-shot timers on the APIC timer.
//
// Contract: start() runs once, after kernel.memory (it maps the devices) and before interrupts
// are enabled; the caller enables them afterwards (enable_interrupts).
module;

#include <ktl/macros.h>

export module arch.x86_64.platform;

import ktl;
import boot.info;
import kernel.acpi;
import kernel.time;
import arch.x86_64.cpu;

export namespace arch::x86_64 {

// ISA IRQ n arrives on vector kIsaVectorBase + n (through the I/O APIC).
inline constexpr u8 kIsaVectorBase = 0x30;

enum class ReferenceClock : u8 { Hpet, Pit };
[[nodiscard]] constexpr const char* to_string(ReferenceClock r) {
  switch (r) {
    case ReferenceClock::Hpet: return "HPET";
    case ReferenceClock::Pit: return "PIT";
  }
  return "unknown reference clock";
}

enum class PlatformCause : u32 {
  NoRsdp,         // the loader found no ACPI tables
  Acpi,           // the tables did not parse (an AcpiError)
  NoIoApic,       // the MADT lists no I/O APIC
  DeviceMapping,  // a device's registers could not be mapped
  Calibration,    // the samples were unusable (a CalibrationError)
  NoIsaRoute,     // no I/O APIC serves an ISA IRQ's GSI
};
[[nodiscard]] constexpr const char* to_string(PlatformCause c) {
  switch (c) {
    case PlatformCause::NoRsdp: return "no ACPI RSDP from the loader";
    case PlatformCause::Acpi: return "ACPI tables";
    case PlatformCause::NoIoApic: return "the MADT lists no I/O APIC";
    case PlatformCause::DeviceMapping: return "mapping device registers";
    case PlatformCause::Calibration: return "timer calibration";
    case PlatformCause::NoIsaRoute: return "no I/O APIC pin for the IRQ's GSI";
  }
  return "unknown platform error";
}
struct PlatformError {
  PlatformCause cause;
  const char* detail = nullptr;  // the text of the layer's error below, if any
};

struct TimeInfo {
  ReferenceClock reference;
  u64 reference_hz;
  kernel::time::FrequencyEstimate tsc;
  kernel::time::FrequencyEstimate apic_timer;  // at kApicTimerDivide
  const char* clock_source;
};

[[nodiscard]] ktl::Result<TimeInfo, PlatformError> start_platform(const boot::BootInfo& info);
// The TSC's calibrated rate (valid after start_platform succeeded).
[[nodiscard]] u64 tsc_hz();
// The parsed tables (valid after start_platform succeeded).
[[nodiscard]] const kernel::acpi::Tables& acpi_tables();
// The boot CPU's local APIC ID (valid after start_platform succeeded): where MSI/MSI-X messages go.
[[nodiscard]] u32 boot_apic_id();
// Routes ISA IRQ `irq` (MADT overrides honoured) to vector kIsaVectorBase + irq on this CPU.
[[nodiscard]] ktl::Result<void, PlatformError> route_isa_irq(u8 irq);

// The I/O APIC redirection entry that serves ISA IRQ `irq` (for tests and diagnostics).
[[nodiscard]] ktl::Optional<u64> isa_irq_entry(u8 irq);

// Powers the machine off through ACPI S5: SLP_TYPa/b from the DSDT's \_S5_ package written with
// SLP_EN to PM1a_CNT (and PM1b_CNT). Returns only if that did not work (no FADT, no \_S5_, or the
// machine is still running 100 ms later), saying why.
enum class PowerOffError : u8 { NoFadt, NoS5, NoPm1Control, StillRunning };
[[nodiscard]] constexpr const char* to_string(PowerOffError e) {
  switch (e) {
    case PowerOffError::NoFadt: return "no FADT";
    case PowerOffError::NoS5: return "no \\_S5_ sleep type in the DSDT";
    case PowerOffError::NoPm1Control: return "the FADT has no PM1a control port";
    case PowerOffError::StillRunning: return "still running 100 ms after entering S5";
  }
  return "unknown power-off error";
}
[[nodiscard]] PowerOffError acpi_power_off();

// Installs ktl's interrupt-masking hooks (every held SpinLock masks interrupts) and enables them.
void enable_interrupts();
// Halts until `done` is true, with interrupts enabled while halted (STI; HLT: no wake-up lost).
void idle_until(const ktl::Atomic<bool>& done);

}  // namespace arch::x86_64
