module arch.x86_64.pit;

import ktl;
import arch.x86_64.cpu;

namespace arch::x86_64 {

namespace {
constexpr u16 kPortControl = 0x61;
constexpr u16 kPortChannel2 = 0x42;
constexpr u16 kPortCommand = 0x43;
constexpr u8 kGate2 = 1u << 0;
constexpr u8 kSpeaker = 1u << 1;
constexpr u8 kOut2 = 1u << 5;
constexpr u8 kCommandChannel2Mode0 = 0xb0;  // channel 2, lobyte/hibyte, mode 0, binary
}  // namespace

void pit_channel2_load(u16 counts) {
  outb(kPortControl, static_cast<u8>(inb(kPortControl) & ~(kGate2 | kSpeaker)));
  outb(kPortCommand, kCommandChannel2Mode0);
  outb(kPortChannel2, static_cast<u8>(counts & 0xff));
  outb(kPortChannel2, static_cast<u8>(counts >> 8));
}

void pit_channel2_start() { outb(kPortControl, static_cast<u8>((inb(kPortControl) & ~kSpeaker) | kGate2)); }

bool pit_channel2_done() { return (inb(kPortControl) & kOut2) != 0; }

}  // namespace arch::x86_64
