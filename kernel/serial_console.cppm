// kernel.serial_console: COM1 as the kernel's serial console: the log's first sink (output) and,
// once interrupts run, its receive interrupt (ISA IRQ 4, through the I/O APIC) filling an
// InputQueue for the shell.
module;

#include <ktl/macros.h>

export module kernel.serial_console;

import ktl;
import arch.x86_64.serial;
import kernel.console.input;
import kernel.sched;

export namespace kernel::serial_console {

inline constexpr ktl::u8 kIrq = 4;

// The UART (initialised by the kernel's entry, before anything logs).
[[nodiscard]] arch::x86_64::Serial16550& com1();
// What was typed at COM1 (filled by the receive interrupt).
[[nodiscard]] console::InputQueue& input();
// The receive interrupt's handler (kernel.irq), registered by the caller for COM1's vector; it
// drains the UART's FIFO into input() and wakes a reader.
void receive_interrupt(ktl::u8 vector);
// Waits (sleeping) for the next typed byte. For one reader task at a time.
[[nodiscard]] ktl::u8 read_byte_blocking();
// Interrupts taken / bytes received through them.
[[nodiscard]] ktl::u64 receive_interrupts();

}  // namespace kernel::serial_console
