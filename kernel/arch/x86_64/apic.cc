module;

#include <ktl/macros.h>

module arch.x86_64.apic;

import ktl;
import arch.x86_64.cpu;

namespace arch::x86_64 {

namespace {
constexpr u32 kApicBaseMsr = 0x1b;
constexpr u64 kApicBaseX2Apic = u64{1} << 10;
constexpr u64 kApicBaseEnable = u64{1} << 11;
constexpr u32 kX2ApicIdMsr = 0x802;
constexpr u32 kX2ApicIcrMsr = 0x830;
constexpr u64 kRegId = 0x20;
constexpr u64 kRegIcrLow = 0x300;
constexpr u64 kRegIcrHigh = 0x310;
constexpr u32 kDeliveryNmi = 0x4 << 8;
constexpr u32 kLevelAssert = 1u << 14;
u64 g_direct_map = 0;

volatile u32& mmio(u64 base, u64 reg) {
  KTL_UNSAFE_BUFFER_BEGIN  // the xAPIC page is in the direct map (the loader maps the low 4 GiB)
  return *reinterpret_cast<volatile u32*>(static_cast<ktl::uptr>(g_direct_map + base + reg));
  KTL_UNSAFE_BUFFER_END
}
}  // namespace

void set_apic_direct_map(u64 base) { g_direct_map = base; }

void send_nmi_to_self() {
  u64 apic_base = rdmsr(kApicBaseMsr);
  if ((apic_base & kApicBaseEnable) == 0) wrmsr(kApicBaseMsr, apic_base | kApicBaseEnable);
  if ((apic_base & kApicBaseX2Apic) != 0) {
    u64 id = rdmsr(kX2ApicIdMsr);
    wrmsr(kX2ApicIcrMsr, (id << 32) | kDeliveryNmi | kLevelAssert);
    return;
  }
  u64 base = apic_base & 0x000f'ffff'ffff'f000ull;
  u32 id = mmio(base, kRegId) >> 24;
  mmio(base, kRegIcrHigh) = id << 24;
  mmio(base, kRegIcrLow) = kDeliveryNmi | kLevelAssert;
}

}  // namespace arch::x86_64
