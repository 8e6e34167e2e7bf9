module;

#include <ktl/macros.h>

module arch.x86_64.hpet;

import ktl;
import arch.x86_64.cpu;
import kernel.mmio;

namespace arch::x86_64 {

namespace {
constexpr u64 kCapabilities = 0x000;
constexpr u64 kConfig = 0x010;
constexpr u64 kMaxPeriodFs = 100'000'000;  // 100 ns
constexpr u64 kCounter64 = u64{1} << 13;
constexpr u64 kEnable = 1;
}  // namespace

ktl::Result<Hpet, HpetError> Hpet::start(kernel::MmioRegion regs) {
  if (regs.size() < 0x100) return ktl::Err(HpetError::TooSmall);
  u64 caps = regs.read64(kCapabilities);
  Hpet h;
  h.regs_ = regs;
  h.period_fs_ = caps >> 32;
  h.timers_ = static_cast<u32>((caps >> 8) & 0x1f) + 1;
  h.vendor_ = static_cast<u32>((caps >> 16) & 0xffff);
  if (h.period_fs_ == 0 || h.period_fs_ > kMaxPeriodFs) return ktl::Err(HpetError::BadPeriod);
  if ((caps & kCounter64) == 0) return ktl::Err(HpetError::Counter32Bit);
  regs.write64(kConfig, regs.read64(kConfig) | kEnable);
  u64 first = h.counter();
  for (u32 i = 0; i < 1'000'000; ++i) {
    if (h.counter() != first) return h;
  }
  return ktl::Err(HpetError::NotCounting);
}

}  // namespace arch::x86_64
