// arch.x86_64.serial: a polled 16550 UART (COM1 at I/O port 0x3f8), 115200 8N1.
module;

#include <ktl/macros.h>

export module arch.x86_64.serial;

import ktl;
import arch.x86_64.cpu;

export namespace arch::x86_64 {

class Serial16550 final : public ktl::FormatSink {
 public:
  static constexpr ktl::u16 kCom1 = 0x3f8;

  constexpr explicit Serial16550(ktl::u16 base) : base_(base) {}

  // Programs the UART. Returns false if no UART answers at `base` (the scratch register test).
  inline bool init() {
    outb(base_ + 7, 0x5a);
    if (inb(base_ + 7) != 0x5a) return false;
    outb(base_ + 1, 0x00);  // no interrupts
    outb(base_ + 3, 0x80);  // DLAB on
    outb(base_ + 0, 0x01);  // divisor 1 = 115200 baud
    outb(base_ + 1, 0x00);
    outb(base_ + 3, 0x03);  // 8N1, DLAB off
    outb(base_ + 2, 0xc7);  // FIFO on, cleared, 14-byte threshold
    outb(base_ + 4, 0x03);  // DTR + RTS
    present_ = true;
    return true;
  }

  inline void write(ktl::StringView text) override {
    if (!present_) return;
    for (char c : text) {
      if (c == '\n') put('\r');
      put(c);
    }
  }

 private:
  inline void put(char c) {
    // Wait for the transmit holding register, but never forever (a wedged UART must not hang a
    // panic report on its way to other consoles).
    for (int spin = 0; spin < 100000 && (inb(base_ + 5) & 0x20) == 0; ++spin) {
      ktl::cpu_relax();
    }
    outb(base_, static_cast<ktl::u8>(c));
  }

  ktl::u16 base_;
  bool present_ = false;
};

}  // namespace arch::x86_64
