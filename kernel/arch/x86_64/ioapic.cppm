// arch.x86_64.ioapic: one I/O APIC (Intel 82093AA data sheet): IOREGSEL at +0x00, IOWIN at +0x10;
// register 1 holds the highest redirection entry, entry n is registers 0x10 + 2n (low) and
// 0x11 + 2n (high: destination APIC ID in bits 31:24). Fixed delivery, physical destination.
//
// Contract: one owner programs a chip, with interrupts masked (the index/window pair is not
// atomic). FIXME(smp): a lock once several CPUs route interrupts.
module;

#include <ktl/macros.h>

export module arch.x86_64.ioapic;

import ktl;
import arch.x86_64.cpu;
import kernel.mmio;

export namespace arch::x86_64 {

enum class PinPolarity : u8 { ActiveHigh, ActiveLow };
enum class PinTrigger : u8 { Edge, Level };

class IoApic {
 public:
  constexpr IoApic() = default;
  // The chip behind `regs` (at least 0x20 bytes), serving GSIs gsi_base .. gsi_base + pins() - 1.
  [[nodiscard]] static IoApic over(kernel::MmioRegion regs, u32 gsi_base);

  [[nodiscard]] inline u32 id() const { return (read(0) >> 24) & 0xf; }
  [[nodiscard]] inline u32 version() const { return read(1) & 0xff; }
  [[nodiscard]] inline u32 pins() const { return pins_; }
  [[nodiscard]] inline u32 gsi_base() const { return gsi_base_; }
  [[nodiscard]] inline bool valid() const { return pins_ != 0; }

  // Delivers pin `pin` as `vector` to the local APIC `destination` (unmasked).
  void route(u32 pin, u8 vector, PinPolarity polarity, PinTrigger trigger, u32 destination) const;
  void mask(u32 pin) const;
  void unmask(u32 pin) const;
  void mask_all() const;
  // The raw 64-bit redirection entry (for tests and the boot log).
  [[nodiscard]] u64 entry(u32 pin) const;

 private:
  [[nodiscard]] u32 read(u32 reg) const;
  void write(u32 reg, u32 value) const;
  void check_pin(u32 pin) const;

  kernel::MmioRegion regs_;
  u32 gsi_base_ = 0;
  u32 pins_ = 0;
};

}  // namespace arch::x86_64
