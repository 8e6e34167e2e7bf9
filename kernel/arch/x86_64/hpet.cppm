// arch.x86_64.hpet: the HPET's main counter as a time reference (IA-PC HPET specification 1.0a):
// GCAP_ID at 0x000 (bits 63:32 the period in femtoseconds, at most 100 ns; bit 13 a 64-bit
// counter; bits 12:8 the last timer's index), General Configuration at 0x010 (bit 0 enables the
// counter), the main counter at 0x0f0. Only the counter is used (the comparators are not).
module;

#include <ktl/macros.h>

export module arch.x86_64.hpet;

import ktl;
import arch.x86_64.cpu;
import kernel.mmio;

export namespace arch::x86_64 {

enum class HpetError : u32 {
  TooSmall,      // the register window is smaller than 0x100 bytes
  BadPeriod,     // the period is 0 or above 100 ns (the specification's bound)
  Counter32Bit,  // only a 32-bit counter (it would wrap every ~43 s at 100 MHz)
  NotCounting,   // the counter did not advance once enabled
};
[[nodiscard]] constexpr const char* to_string(HpetError e) {
  switch (e) {
    case HpetError::TooSmall: return "register window smaller than 0x100 bytes";
    case HpetError::BadPeriod: return "counter period 0 or above 100 ns";
    case HpetError::Counter32Bit: return "only a 32-bit main counter";
    case HpetError::NotCounting: return "the main counter does not advance";
  }
  return "unknown HPET error";
}

class Hpet {
 public:
  constexpr Hpet() = default;
  // Checks the chip behind `regs` and starts its main counter.
  [[nodiscard]] static ktl::Result<Hpet, HpetError> start(kernel::MmioRegion regs);

  [[nodiscard]] inline u64 counter() const { return regs_.read64(0xf0); }
  [[nodiscard]] inline u64 period_fs() const { return period_fs_; }
  // The counter's rate, rounded to the nearest hertz.
  [[nodiscard]] inline u64 frequency_hz() const {
    return (u64{1'000'000'000'000'000} + period_fs_ / 2) / period_fs_;
  }
  [[nodiscard]] inline u32 timers() const { return timers_; }
  [[nodiscard]] inline u32 vendor() const { return vendor_; }

 private:
  kernel::MmioRegion regs_;
  u64 period_fs_ = 0;
  u32 timers_ = 0;
  u32 vendor_ = 0;
};

}  // namespace arch::x86_64
