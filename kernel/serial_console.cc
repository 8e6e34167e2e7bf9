module kernel.serial_console;

import ktl;
import arch.x86_64.serial;
import kernel.console.input;
import kernel.sched;

namespace kernel::serial_console {

namespace {
arch::x86_64::Serial16550 g_com1(arch::x86_64::Serial16550::kCom1);
console::InputQueue g_input;
ktl::Atomic<ktl::u64> g_interrupts{0};
sched::WaitQueue g_readers;
}  // namespace

arch::x86_64::Serial16550& com1() { return g_com1; }
console::InputQueue& input() { return g_input; }

void receive_interrupt(ktl::u8) {
  g_interrupts.fetch_add(1, ktl::MemoryOrder::Relaxed);
  // Bounded: a UART that always reports data (a broken one) must not hold the CPU forever.
  for (int i = 0; i < 64; ++i) {
    ktl::Optional<ktl::u8> b = g_com1.read_byte();
    if (!b.has_value()) break;
    (void)g_input.push(*b);
  }
  if (g_input.size() > 0 && sched::scheduler().initialized()) (void)sched::scheduler().wake_all(g_readers);
}

ktl::u8 read_byte_blocking() {
  for (;;) {
    if (auto b = g_input.pop()) return *b;
    (void)sched::scheduler().wait_until(g_readers, [] { return g_input.size() > 0; });
  }
}

ktl::u64 receive_interrupts() { return g_interrupts.load(ktl::MemoryOrder::Relaxed); }

}  // namespace kernel::serial_console
