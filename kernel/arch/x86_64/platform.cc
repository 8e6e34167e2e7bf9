module;

#include <ktl/macros.h>

module arch.x86_64.platform;

import ktl;
import boot.info;
import kernel.acpi;
import kernel.irq;
import kernel.log;
import kernel.memory;
import kernel.mmio;
import kernel.time;
import mm.addr;
import mm.arch;
import arch.x86_64.cpu;
import arch.x86_64.apic;
import arch.x86_64.hpet;
import arch.x86_64.idt;
import arch.x86_64.ioapic;
import arch.x86_64.pic;
import arch.x86_64.pit;

namespace arch::x86_64 {

namespace {

using ktl::usize;

constexpr u32 kSamples = 8;
constexpr u64 kWindowNs = 10 * kernel::time::kNsPerMs;
constexpr u64 kInterruptFlag = u64{1} << 9;
constexpr usize kMaxIoApics = 8;

// ACPI tables are read through the direct map (they live in RAM the loader maps).
class DirectMapReader final : public kernel::acpi::PhysReader {
 public:
  ktl::Result<void, kernel::acpi::AcpiError> read(u64 phys, ktl::Span<u8> out) const override {
    mm::PhysWindow w = kernel::memory::window();
    if (!w.covers(mm::PhysAddr::unchecked(phys), out.size()))
      return ktl::Err(kernel::acpi::AcpiError::Unreadable);
    ktl::Span<u8> src = w.bytes(mm::PhysAddr::unchecked(phys), out.size());
    for (usize i = 0; i < out.size(); ++i) out[i] = src[i];
    return ktl::ok();
  }
};

struct State {
  kernel::acpi::Tables acpi;
  ktl::Array<IoApic, kMaxIoApics> ioapics{};
  usize ioapic_count = 0;
  Hpet hpet;
  bool have_hpet = false;
  u32 apic_id = 0;
  kernel::time::TickScale apic_scale;
  kernel::time::TickScale tsc_scale;
  ktl::Atomic<u64> apic_errors{0};
};
State g_platform;

PlatformError error(PlatformCause cause, const char* detail = nullptr) {
  return PlatformError{cause, detail};
}

ktl::Result<kernel::MmioRegion, PlatformError> map(u64 phys, u64 bytes) {
  auto r = kernel::memory::map_device(mm::PhysAddr::unchecked(phys), bytes);
  if (r.is_err()) return ktl::Err(error(PlatformCause::DeviceMapping, to_string(r.error())));
  return r.value();
}

// --- trap routing ------------------------------------------------------------------------------------

void timer_interrupt(u8) { (void)kernel::time::timers().interrupt(kernel::time::now_ns()); }

void apic_error_interrupt(u8) {
  u32 esr = apic_error_status();
  u64 n = g_platform.apic_errors.fetch_add(1, ktl::MemoryOrder::Relaxed) + 1;
  if (kernel::irq::report_occurrence(n)) klog::warn("apic: error interrupt, ESR {:#x} ({} so far)", esr, n);
}

void external_interrupt(TrapFrame& frame) {
  auto vector = static_cast<u8>(frame.vector);
  kernel::irq::Table& table = kernel::irq::table();
  // The APIC's spurious vector and the 8259s' IRQ 7 / 15 get no EOI (SDM "Spurious Interrupt").
  if (vector == kSpuriousVector || vector == kPicMasterVectorBase + 7 || vector == kPicSlaveVectorBase + 7) {
    table.count_spurious(vector);
    return;
  }
  kernel::irq::enter();
  (void)table.dispatch(vector);
  apic_eoi();
  kernel::irq::exit();  // back to task context: the scheduler's preemption point
}

// --- calibration ---------------------------------------------------------------------------------------

struct Samples {
  ktl::Array<kernel::time::FrequencySample, kSamples> tsc{};
  ktl::Array<kernel::time::FrequencySample, kSamples> apic{};
};

void sample_hpet(const Hpet& hpet, Samples& s) {
  u64 window = kWindowNs * hpet.frequency_hz() / kernel::time::kNsPerSecond;
  for (u32 i = 0; i < kSamples; ++i) {
    u64 start = hpet.counter();
    u64 tsc0 = rdtsc();
    apic_timer_start_free_run();
    u64 now = start;
    while (now - start < window) now = hpet.counter();
    u64 tsc1 = rdtsc();
    u32 left = apic_timer_current_count();
    s.tsc[i] = {now - start, tsc1 - tsc0};
    s.apic[i] = {now - start, 0xffff'ffffu - left};
  }
  apic_timer_stop();
}

void sample_pit(Samples& s) {
  constexpr u64 kCounts = kPitHz * kWindowNs / kernel::time::kNsPerSecond;  // 11931
  for (u32 i = 0; i < kSamples; ++i) {
    pit_channel2_load(static_cast<u16>(kCounts));
    u64 tsc0 = rdtsc();
    apic_timer_start_free_run();
    pit_channel2_start();
    while (!pit_channel2_done()) ktl::cpu_relax();
    u64 tsc1 = rdtsc();
    u32 left = apic_timer_current_count();
    s.tsc[i] = {kCounts, tsc1 - tsc0};
    s.apic[i] = {kCounts, 0xffff'ffffu - left};
  }
  apic_timer_stop();
}

// --- the clock and the timer device -----------------------------------------------------------------

u64 read_tsc() { return rdtsc(); }
u64 read_hpet() { return g_platform.hpet.counter(); }

// Programs the APIC timer to fire at `deadline_ns` (0: stop). Deadlines beyond the 32-bit count
// (about 68 s at 62.5 MHz) fire early; the interrupt finds nothing due and programs the rest.
void program_apic_timer(u64 deadline_ns) {
  if (deadline_ns == 0) {
    apic_timer_stop();
    return;
  }
  u64 now = kernel::time::now_ns();
  u64 ticks = deadline_ns <= now ? 1 : g_platform.apic_scale.to_ticks(deadline_ns - now);
  if (ticks == 0) ticks = 1;
  if (ticks > 0xffff'ffffu) ticks = 0xffff'ffffu;
  apic_timer_one_shot(static_cast<u32>(ticks));
}

bool tsc_invariant() {
  if (cpuid(0x8000'0000).eax < 0x8000'0007) return false;
  return (cpuid(0x8000'0007).edx & (1u << 8)) != 0;
}

void log_tables(const kernel::acpi::Tables& t) {
  ktl::InlineString<200> names;
  for (const kernel::acpi::TableInfo& info : t.tables) ktl::format_to(names, " {}", info.name());
  klog::info("acpi: revision {} ({}), {} tables:{}", u32{t.revision}, t.xsdt ? "XSDT" : "RSDT", t.table_count,
             names.view());
  const kernel::acpi::Madt& m = t.madt;
  klog::info("acpi: MADT: {} local APICs, {} I/O APICs, {} interrupt source overrides, local APIC at {}",
             m.local_apics.size(), m.io_apics.size(), m.isa_overrides.size(),
             mm::PhysAddr::unchecked(m.local_apic_address));
  for (const kernel::acpi::IsaOverride& o : m.isa_overrides) {
    klog::debug("acpi:   ISA IRQ {} -> GSI {} ({}, {})", u32{o.source_irq}, o.gsi,
                o.polarity == kernel::acpi::Polarity::ActiveLow ? "active-low" : "active-high",
                o.trigger == kernel::acpi::Trigger::Level ? "level" : "edge");
  }
}

}  // namespace

const kernel::acpi::Tables& acpi_tables() { return g_platform.acpi; }
u64 tsc_hz() { return g_platform.tsc_scale.hz(); }

ktl::Result<TimeInfo, PlatformError> start_platform(const boot::BootInfo& info) {
  State& p = g_platform;
  if (info.acpi_rsdp == 0) return ktl::Err(error(PlatformCause::NoRsdp));
  DirectMapReader reader;
  if (auto r = kernel::acpi::parse_into(reader, info.acpi_rsdp, p.acpi); r.is_err()) {
    if (p.acpi.error_table[0] != 0) {
      klog::error("acpi: the error is in table {}", ktl::StringView(p.acpi.error_table.span()));
    }
    return ktl::Err(error(PlatformCause::Acpi, to_string(r.error())));
  }
  log_tables(p.acpi);

  // The local APIC.
  kernel::MmioRegion xapic;
  if (!x2apic_supported()) xapic = TRY(map(local_apic_base_phys(), 0x1000));
  LocalApicInfo lapic = init_local_apic(xapic);
  p.apic_id = lapic.id;
  klog::info(
      "apic: local APIC {} in {} mode (version {:#x}, {} LVT entries) at {}; LINT0 masked, spurious vector "
      "{:#x}",
      lapic.id, to_string(lapic.mode), lapic.version, lapic.max_lvt + 1,
      mm::PhysAddr::unchecked(lapic.base_phys), u32{kSpuriousVector});

  // The I/O APICs, all pins masked.
  ktl::Span<const kernel::acpi::IoApic> chips = p.acpi.madt.io_apics.span();
  if (chips.empty()) return ktl::Err(error(PlatformCause::NoIoApic));
  for (const kernel::acpi::IoApic& c : chips) {
    if (p.ioapic_count == kMaxIoApics) {
      klog::warn("ioapic: more than {} I/O APICs; the rest are not used", kMaxIoApics);
      break;
    }
    kernel::MmioRegion regs = TRY(map(c.address, 0x20));
    IoApic chip = IoApic::over(regs, c.gsi_base);
    chip.mask_all();
    p.ioapics[p.ioapic_count++] = chip;
    klog::info("ioapic: id {} at {}, GSI {}-{} (version {:#x}), all pins masked", c.id,
               mm::PhysAddr::unchecked(c.address), c.gsi_base, c.gsi_base + chip.pins() - 1, chip.version());
  }

  // Trap routing for every vector above the exceptions.
  for (u32 v = 0x20; v < 0x100; ++v) (void)set_trap_handler(static_cast<u8>(v), &external_interrupt);
  kernel::irq::table().set(kApicTimerVector, &timer_interrupt, "apic-timer");
  kernel::irq::table().set(kApicErrorVector, &apic_error_interrupt, "apic-error");

  // Calibration.
  ReferenceClock ref = ReferenceClock::Pit;
  u64 ref_hz = kPitHz;
  if (p.acpi.hpet.has_value()) {
    kernel::MmioRegion regs = TRY(map(p.acpi.hpet->base, 0x400));
    auto hpet = Hpet::start(regs);
    if (hpet.is_ok()) {
      p.hpet = hpet.value();
      p.have_hpet = true;
      ref = ReferenceClock::Hpet;
      ref_hz = p.hpet.frequency_hz();
      klog::info("hpet: at {}, {} Hz ({} fs period), {} timers, vendor {:#x}",
                 mm::PhysAddr::unchecked(p.acpi.hpet->base), ref_hz, p.hpet.period_fs(), p.hpet.timers(),
                 p.hpet.vendor());
    } else {
      klog::warn("hpet: at {}: {}; calibrating against the PIT", mm::PhysAddr::unchecked(p.acpi.hpet->base),
                 hpet.error());
    }
  } else {
    klog::info("hpet: none in the ACPI tables; calibrating against the PIT");
  }
  // A host that deschedules the vCPU during several windows can leave no majority: try again a
  // few times before giving up.
  constexpr u32 kCalibrationTries = 3;
  Samples samples;
  kernel::time::FrequencyEstimate tsc_est, apic_est;
  for (u32 attempt = 1;; ++attempt) {
    if (p.have_hpet) {
      sample_hpet(p.hpet, samples);
    } else {
      sample_pit(samples);
    }
    auto tsc =
        kernel::time::estimate_frequency(ktl::Span<const kernel::time::FrequencySample>(samples.tsc), ref_hz);
    auto apic = kernel::time::estimate_frequency(ktl::Span<const kernel::time::FrequencySample>(samples.apic),
                                                 ref_hz);
    if (tsc.is_ok() && apic.is_ok()) {
      tsc_est = tsc.value();
      apic_est = apic.value();
      break;
    }
    kernel::time::CalibrationError e = tsc.is_err() ? tsc.error() : apic.error();
    if (attempt == kCalibrationTries) return ktl::Err(error(PlatformCause::Calibration, to_string(e)));
    klog::warn("time: calibration attempt {} against the {}: {}; again", attempt, to_string(ref), e);
  }
  p.tsc_scale = kernel::time::TickScale::from_hz(tsc_est.hz);
  p.apic_scale = kernel::time::TickScale::from_hz(apic_est.hz);

  // The clock.
  kernel::time::ClockSource source;
  bool invariant = tsc_invariant();
  if (invariant) {
    source = {"tsc", &read_tsc, p.tsc_scale};
  } else if (p.have_hpet) {
    source = {"hpet", &read_hpet, kernel::time::TickScale::from_hz(ref_hz)};
  } else {
    klog::warn("time: the TSC is not marked invariant and there is no HPET: the clock uses the TSC anyway");
    source = {"tsc", &read_tsc, p.tsc_scale};
  }
  kernel::time::clock().install(source);
  kernel::time::timers().install(&program_apic_timer);

  TimeInfo t;
  t.reference = ref;
  t.reference_hz = ref_hz;
  t.tsc = tsc_est;
  t.apic_timer = apic_est;
  t.clock_source = source.name;
  return t;
}

namespace {
// The I/O APIC pin that serves `gsi`, if one of the chips does.
struct ChipPin {
  const IoApic* chip;
  ktl::usize index;
  u32 pin;
};
ktl::Optional<ChipPin> chip_for_gsi(u32 gsi) {
  State& p = g_platform;
  for (ktl::usize i = 0; i < p.ioapic_count; ++i) {
    const IoApic& chip = p.ioapics[i];
    if (gsi >= chip.gsi_base() && gsi - chip.gsi_base() < chip.pins())
      return ChipPin{&chip, i, gsi - chip.gsi_base()};
  }
  return ktl::nullopt;
}
}  // namespace

u32 boot_apic_id() { return g_platform.apic_id; }

ktl::Result<void, PlatformError> route_isa_irq(u8 irq) {
  kernel::acpi::IrqRoute r = kernel::acpi::route_isa_irq(g_platform.acpi.madt, irq);
  ktl::Optional<ChipPin> c = chip_for_gsi(r.gsi);
  if (!c.has_value()) return ktl::Err(error(PlatformCause::NoIsaRoute));
  c->chip->route(
      c->pin, static_cast<u8>(kIsaVectorBase + irq),
      r.polarity == kernel::acpi::Polarity::ActiveLow ? PinPolarity::ActiveLow : PinPolarity::ActiveHigh,
      r.trigger == kernel::acpi::Trigger::Level ? PinTrigger::Level : PinTrigger::Edge, g_platform.apic_id);
  klog::debug("ioapic: ISA IRQ {} -> GSI {} (pin {} of I/O APIC {}) -> vector {:#x}", u32{irq}, r.gsi, c->pin,
              c->index, u32{kIsaVectorBase} + irq);
  return ktl::ok();
}

ktl::Optional<u64> isa_irq_entry(u8 irq) {
  ktl::Optional<ChipPin> c = chip_for_gsi(kernel::acpi::route_isa_irq(g_platform.acpi.madt, irq).gsi);
  if (!c.has_value()) return ktl::nullopt;
  return c->chip->entry(c->pin);
}

PowerOffError acpi_power_off() {
  const kernel::acpi::Tables& t = g_platform.acpi;
  if (!t.fadt.has_value()) return PowerOffError::NoFadt;
  if (!t.s5.has_value()) return PowerOffError::NoS5;
  if (t.fadt->pm1a_control == 0) return PowerOffError::NoPm1Control;
  constexpr u16 kSlpEn = 1u << 13;
  cli();
  outw(t.fadt->pm1a_control, static_cast<u16>((u16{t.s5->slp_typ_a} << 10) | kSlpEn));
  if (t.fadt->pm1b_control != 0) {
    outw(t.fadt->pm1b_control, static_cast<u16>((u16{t.s5->slp_typ_b} << 10) | kSlpEn));
  }
  // The clock still runs with interrupts masked (it is a counter).
  u64 until = kernel::time::now_ns() + 100 * kernel::time::kNsPerMs;
  while (kernel::time::now_ns() < until) ktl::cpu_relax();
  sti();
  return PowerOffError::StillRunning;
}

namespace {
bool interrupts_disable() {
  u64 flags = read_rflags();
  cli();
  return (flags & kInterruptFlag) != 0;
}
void interrupts_enable() { sti(); }
}  // namespace

void enable_interrupts() {
  ktl::set_interrupt_hooks({&interrupts_disable, &interrupts_enable});
  sti();
}

void idle_until(const ktl::Atomic<bool>& done) {
  for (;;) {
    cli();
    if (done.load()) break;
    // STI takes effect after the next instruction: an interrupt between the check and HLT still
    // ends the HLT (SDM vol. 2, STI).
    __asm__ volatile("sti; hlt" ::: "memory");
  }
  sti();
}

}  // namespace arch::x86_64
