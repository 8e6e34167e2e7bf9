module;

#include <ktl/macros.h>

module arch.x86_64.ioapic;

import ktl;
import arch.x86_64.cpu;
import kernel.mmio;

namespace arch::x86_64 {

namespace {
constexpr u64 kRegSelect = 0x00;
constexpr u64 kRegWindow = 0x10;
constexpr u32 kEntryMasked = 1u << 16;
constexpr u32 kEntryLevel = 1u << 15;
constexpr u32 kEntryActiveLow = 1u << 13;
constexpr u32 entry_low(u32 pin) { return 0x10 + 2 * pin; }
}  // namespace

IoApic IoApic::over(kernel::MmioRegion regs, u32 gsi_base) {
  ktl::check(regs.size() >= 0x20, "IoApic::over: the register window is smaller than 0x20 bytes");
  IoApic chip;
  chip.regs_ = regs;
  chip.gsi_base_ = gsi_base;
  chip.pins_ = ((chip.read(1) >> 16) & 0xff) + 1;
  return chip;
}

u32 IoApic::read(u32 reg) const {
  regs_.write32(kRegSelect, reg);
  return regs_.read32(kRegWindow);
}

void IoApic::write(u32 reg, u32 value) const {
  regs_.write32(kRegSelect, reg);
  regs_.write32(kRegWindow, value);
}

void IoApic::check_pin(u32 pin) const {
  if (pin < pins_) return;
  ktl::InlineString<96> m;
  ktl::format_to(m, "I/O APIC: pin {} out of range (the chip has {})", pin, pins_);
  ktl::panic(m.c_str());
}

void IoApic::route(u32 pin, u8 vector, PinPolarity polarity, PinTrigger trigger, u32 destination) const {
  check_pin(pin);
  ktl::check(vector >= 0x20, "I/O APIC: vectors below 0x20 are the CPU's exceptions");
  u32 low = vector;
  if (polarity == PinPolarity::ActiveLow) low |= kEntryActiveLow;
  if (trigger == PinTrigger::Level) low |= kEntryLevel;
  write(entry_low(pin), kEntryMasked | low);  // masked while the destination changes
  write(entry_low(pin) + 1, (destination & 0xff) << 24);
  write(entry_low(pin), low);
}

void IoApic::mask(u32 pin) const {
  check_pin(pin);
  write(entry_low(pin), read(entry_low(pin)) | kEntryMasked);
}

void IoApic::unmask(u32 pin) const {
  check_pin(pin);
  write(entry_low(pin), read(entry_low(pin)) & ~kEntryMasked);
}

void IoApic::mask_all() const {
  for (u32 pin = 0; pin < pins_; ++pin) mask(pin);
}

u64 IoApic::entry(u32 pin) const {
  check_pin(pin);
  return (u64{read(entry_low(pin) + 1)} << 32) | read(entry_low(pin));
}

}  // namespace arch::x86_64
