module;

#include <ktl/macros.h>

module arch.x86_64.apic;

import ktl;
import arch.x86_64.cpu;
import kernel.mmio;

namespace arch::x86_64 {

namespace {
constexpr u32 kApicBaseMsr = 0x1b;
constexpr u64 kApicBaseX2Apic = u64{1} << 10;
constexpr u64 kApicBaseEnable = u64{1} << 11;
constexpr u64 kApicBaseAddressMask = 0x000f'ffff'ffff'f000ull;
constexpr u32 kX2ApicMsrBase = 0x800;
constexpr u32 kX2ApicIcrMsr = 0x830;

// Register offsets in the xAPIC page (x2APIC: MSR 0x800 + offset / 16).
constexpr u32 kRegId = 0x20;
constexpr u32 kRegVersion = 0x30;
constexpr u32 kRegTpr = 0x80;
constexpr u32 kRegEoi = 0xb0;
constexpr u32 kRegSvr = 0xf0;
constexpr u32 kRegEsr = 0x280;
constexpr u32 kRegIcrLow = 0x300;
constexpr u32 kRegIcrHigh = 0x310;
constexpr u32 kRegLvtTimer = 0x320;
constexpr u32 kRegLvtLint0 = 0x350;
constexpr u32 kRegLvtLint1 = 0x360;
constexpr u32 kRegLvtError = 0x370;
constexpr u32 kRegTimerInitial = 0x380;
constexpr u32 kRegTimerCurrent = 0x390;
constexpr u32 kRegTimerDivide = 0x3e0;

constexpr u32 kSvrEnable = 1u << 8;
constexpr u32 kLvtMasked = 1u << 16;
constexpr u32 kLvtDeliveryNmi = 0x4 << 8;
constexpr u32 kDivideBy16 = 0x3;
constexpr u32 kDeliveryNmi = 0x4 << 8;
constexpr u32 kLevelAssert = 1u << 14;

struct State {
  bool ready = false;
  ApicMode mode = ApicMode::XApic;
  kernel::MmioRegion regs;
  u64 direct_map = 0;  // before init: the xAPIC page through the direct map (send_nmi_to_self)
};
State g_apic;

u32 read(u32 reg) {
  if (g_apic.mode == ApicMode::X2Apic) return static_cast<u32>(rdmsr(kX2ApicMsrBase + reg / 16));
  return g_apic.regs.read32(reg);
}

void write(u32 reg, u32 value) {
  if (g_apic.mode == ApicMode::X2Apic) {
    wrmsr(kX2ApicMsrBase + reg / 16, value);
  } else {
    g_apic.regs.write32(reg, value);
  }
}
}  // namespace

u64 local_apic_base_phys() { return rdmsr(kApicBaseMsr) & kApicBaseAddressMask; }

bool x2apic_supported() { return (cpuid(1).ecx & (1u << 21)) != 0; }

LocalApicInfo init_local_apic(kernel::MmioRegion xapic_regs) {
  u64 base = rdmsr(kApicBaseMsr);
  bool x2 = x2apic_supported() || (base & kApicBaseX2Apic) != 0;
  if (x2) {
    // EN and EXTD together (SDM "x2APIC Mode": xAPIC -> x2APIC needs EN already set).
    if ((base & kApicBaseEnable) == 0) wrmsr(kApicBaseMsr, base | kApicBaseEnable);
    wrmsr(kApicBaseMsr, base | kApicBaseEnable | kApicBaseX2Apic);
    g_apic.mode = ApicMode::X2Apic;
  } else {
    ktl::check(xapic_regs.size() >= 0x400, "init_local_apic: the xAPIC window must cover the register page");
    if ((base & kApicBaseEnable) == 0) wrmsr(kApicBaseMsr, base | kApicBaseEnable);
    g_apic.mode = ApicMode::XApic;
    g_apic.regs = xapic_regs;
  }
  write(kRegTpr, 0);
  write(kRegLvtTimer, kLvtMasked | kApicTimerVector);
  write(kRegTimerInitial, 0);
  write(kRegLvtLint0, kLvtMasked);
  write(kRegLvtLint1, kLvtDeliveryNmi);
  write(kRegLvtError, kApicErrorVector);
  write(kRegEsr, 0);
  write(kRegEsr, 0);
  write(kRegSvr, kSvrEnable | kSpuriousVector);
  g_apic.ready = true;

  LocalApicInfo info;
  info.mode = g_apic.mode;
  u32 id = read(kRegId);
  info.id = g_apic.mode == ApicMode::X2Apic ? id : id >> 24;
  u32 version = read(kRegVersion);
  info.version = version & 0xff;
  info.max_lvt = (version >> 16) & 0xff;
  info.base_phys = base & kApicBaseAddressMask;
  return info;
}

bool local_apic_ready() { return g_apic.ready; }

void apic_eoi() { write(kRegEoi, 0); }

u32 apic_error_status() {
  write(kRegEsr, 0);
  return read(kRegEsr);
}

void apic_timer_one_shot(u32 count) {
  write(kRegTimerDivide, kDivideBy16);
  write(kRegLvtTimer, kApicTimerVector);  // unmasked, one-shot
  write(kRegTimerInitial, count == 0 ? 1 : count);
}

void apic_timer_stop() {
  write(kRegTimerInitial, 0);
  write(kRegLvtTimer, kLvtMasked | kApicTimerVector);
}

void apic_timer_start_free_run() {
  write(kRegTimerDivide, kDivideBy16);
  write(kRegLvtTimer, kLvtMasked | kApicTimerVector);
  write(kRegTimerInitial, 0xffff'ffffu);
}

u32 apic_timer_current_count() { return read(kRegTimerCurrent); }

void set_apic_direct_map(u64 base) { g_apic.direct_map = base; }

void send_nmi_to_self() {
  u64 apic_base = rdmsr(kApicBaseMsr);
  if ((apic_base & kApicBaseEnable) == 0) wrmsr(kApicBaseMsr, apic_base | kApicBaseEnable);
  if ((apic_base & kApicBaseX2Apic) != 0) {
    u64 id = rdmsr(kX2ApicMsrBase + kRegId / 16);
    wrmsr(kX2ApicIcrMsr, (id << 32) | kDeliveryNmi | kLevelAssert);
    return;
  }
  kernel::MmioRegion regs = g_apic.ready ? g_apic.regs
                                         : kernel::MmioRegion::unchecked(
                                               g_apic.direct_map + (apic_base & kApicBaseAddressMask), 0x400);
  u32 id = regs.read32(kRegId) >> 24;
  regs.write32(kRegIcrHigh, id << 24);
  regs.write32(kRegIcrLow, kDeliveryNmi | kLevelAssert);
}

}  // namespace arch::x86_64
