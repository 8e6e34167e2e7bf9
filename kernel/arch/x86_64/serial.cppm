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

  // Receive interrupts (IRQ 4 for COM1): "data available" on, the FIFO's trigger at 1 byte so
  // each key arrives at once, and OUT2, which gates the UART's interrupt line on PC boards.
  inline void enable_receive_interrupts() {
    if (!present_) return;
    outb(base_ + 2, 0x07);  // FIFO on, cleared, trigger level 1 byte
    outb(base_ + 4, 0x0b);  // DTR + RTS + OUT2
    outb(base_ + 1, 0x01);  // IER: received data available
  }
  // Loopback (MCR bit 4): what is sent comes back as received, and nothing leaves the UART (tests
  // of the receive path).
  enum class Loopback : ktl::u8 { Off, On };
  inline void set_loopback(Loopback l) { outb(base_ + 4, l == Loopback::On ? 0x1b : 0x0b); }
  // The next received byte, if there is one (LSR bit 0: data ready).
  [[nodiscard]] inline ktl::Optional<ktl::u8> read_byte() {
    if (!present_ || (inb(base_ + 5) & 0x01) == 0) return ktl::nullopt;
    return inb(base_);
  }
  [[nodiscard]] inline bool present() const { return present_; }
  [[nodiscard]] inline ktl::u16 port() const { return base_; }

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
