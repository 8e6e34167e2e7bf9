// In-kernel tests of interrupts and time (arch.x86_64.platform, kernel.irq, kernel.time): they run
// with interrupts on, as every suite of test=all now does. Only in the kernel, never on the host.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import kernel.acpi;
import kernel.irq;
import kernel.serial_console;
import kernel.time;
import arch.x86_64.cpu;
import arch.x86_64.apic;
import arch.x86_64.platform;
import arch.x86_64.serial;
import mm.heap;

namespace {

using ktl::u64;
using ktl::u8;
constexpr u64 kInterruptFlag = u64{1} << 9;
constexpr u64 kMs = kernel::time::kNsPerMs;

bool interrupts_on() { return (arch::x86_64::read_rflags() & kInterruptFlag) != 0; }

KTEST(Interrupts, AreOnAndEveryHeldLockMasksThem) {
  KEXPECT(interrupts_on());
  ktl::SpinLock a(ktl::LockRank::Timers), b(ktl::LockRank::Test);
  a.lock();
  KEXPECT(!interrupts_on());
  b.lock();
  a.unlock();  // not the last one: still masked
  KEXPECT(!interrupts_on());
  b.unlock();
  KEXPECT(interrupts_on());
  KEXPECT_EQ(ktl::interrupt_mask_depth(), 0u);
}

KTEST(Interrupts, AnUnexpectedVectorIsCountedAndNotFatal) {
  kernel::irq::Table& t = kernel::irq::table();
  u64 before = t.unexpected();
  u64 count = t.count(0x77);
  __asm__ volatile("int $0x77" ::: "memory");
  __asm__ volatile("int $0x77" ::: "memory");
  KEXPECT_EQ(t.unexpected(), before + 2);
  KEXPECT_EQ(t.count(0x77), count + 2);
  KEXPECT(interrupts_on());  // and execution simply went on
}

KTEST(Interrupts, ASpuriousVectorIsCountedApartWithoutEoi) {
  kernel::irq::Table& t = kernel::irq::table();
  u64 spurious = t.spurious();
  u64 unexpected = t.unexpected();
  __asm__ volatile("int $0xff" ::: "memory");
  KEXPECT_EQ(t.spurious(), spurious + 1);
  KEXPECT_EQ(t.unexpected(), unexpected);
}

struct InterruptAllocation {
  void* small = nullptr;
  void* large = nullptr;
  bool ran = false;
};
InterruptAllocation g_irq_alloc;

void allocate_in_interrupt(u8) {
  g_irq_alloc.ran = true;
  g_irq_alloc.small = mm::kmalloc(64);        // the size classes: fine
  g_irq_alloc.large = mm::kmalloc(1u << 20);  // a large object: refused (Atomic)
}

KTEST(Interrupts, AnInterruptHandlersAllocationsAreAtomic) {
  kernel::irq::table().set(0x79, &allocate_in_interrupt, "test-alloc");
  __asm__ volatile("int $0x79" ::: "memory");
  kernel::irq::table().clear(0x79);
  KEXPECT(g_irq_alloc.ran);
  KEXPECT(g_irq_alloc.small != nullptr);
  KEXPECT(g_irq_alloc.large == nullptr);
  mm::kfree(g_irq_alloc.small);
  void* large = mm::kmalloc(1u << 20);  // the same request from a task is served
  KEXPECT(large != nullptr);
  mm::kfree(large);
}

KTEST(Interrupts, IsaIrqsAreRoutedAsTheMadtSays) {
  // On q35 and pc, ISA IRQ 0 (the PIT) is overridden to GSI 2; COM1's IRQ 4 is identity-mapped.
  const kernel::acpi::Madt& madt = arch::x86_64::acpi_tables().madt;
  KEXPECT_EQ(kernel::acpi::route_isa_irq(madt, 0).gsi, 2u);
  kernel::acpi::IrqRoute com1 = kernel::acpi::route_isa_irq(madt, kernel::serial_console::kIrq);
  KEXPECT_EQ(com1.gsi, 4u);
  KEXPECT(com1.trigger == kernel::acpi::Trigger::Edge);
  auto entry = arch::x86_64::isa_irq_entry(kernel::serial_console::kIrq);
  KASSERT(entry.has_value());
  KEXPECT_EQ(*entry & 0xff, u64{arch::x86_64::kIsaVectorBase} + kernel::serial_console::kIrq);  // vector
  KEXPECT_EQ((*entry >> 16) & 1, 0u);                                                           // unmasked
  KEXPECT_EQ((*entry >> 15) & 1, 0u);                                                           // edge
  KEXPECT_EQ((*entry >> 13) & 1, 0u);                                                           // active-high
  KEXPECT_EQ((*entry >> 8) & 7, 0u);  // fixed delivery
  // The PIT's line (GSI 2) stays masked: nothing drives the kernel from it.
  auto pit = arch::x86_64::isa_irq_entry(0);
  KASSERT(pit.has_value());
  KEXPECT_EQ((*pit >> 16) & 1, 1u);
}

KTEST(Time, TheClockIsMonotonicAndAdvances) {
  u64 first = kernel::time::now_ns();
  u64 last = first;
  for (int i = 0; i < 20000; ++i) {
    u64 now = kernel::time::now_ns();
    if (!KEXPECT_LE(last, now)) return;
    last = now;
  }
  KEXPECT_LT(first, last);
}

struct Stamp final : kernel::time::Timer {
  u64 fired_at = 0;
  int order = 0;
  int* next_order = nullptr;
  ktl::Atomic<bool> done{false};
  void expired() override {
    fired_at = kernel::time::now_ns();
    order = (*next_order)++;
    done.store(true);
  }
};

KTEST(Time, OneShotTimersFireOnTimeInDeadlineOrder) {
  // Armed out of order; each must fire after its deadline, within 20 ms of it under TCG, in order.
  int next = 1;
  Stamp a, b, c;
  a.next_order = b.next_order = c.next_order = &next;
  u64 start = kernel::time::now_ns();
  kernel::time::timers().arm(a, start + 30 * kMs);
  kernel::time::timers().arm(b, start + 10 * kMs);
  kernel::time::timers().arm(c, start + 20 * kMs);
  arch::x86_64::idle_until(a.done);
  arch::x86_64::idle_until(b.done);
  arch::x86_64::idle_until(c.done);
  KEXPECT_EQ(b.order, 1);
  KEXPECT_EQ(c.order, 2);
  KEXPECT_EQ(a.order, 3);
  KEXPECT_LE(start + 10 * kMs, b.fired_at);
  KEXPECT_LE(start + 20 * kMs, c.fired_at);
  KEXPECT_LE(start + 30 * kMs, a.fired_at);
  KEXPECT_LT(b.fired_at, start + 30 * kMs);
  KEXPECT_LT(a.fired_at, start + 50 * kMs);
}

KTEST(Time, ACancelledTimerNeverFires) {
  int next = 1;
  Stamp early, cancelled;
  early.next_order = cancelled.next_order = &next;
  u64 start = kernel::time::now_ns();
  kernel::time::timers().arm(cancelled, start + 5 * kMs);
  kernel::time::timers().arm(early, start + 15 * kMs);
  KEXPECT(kernel::time::timers().cancel(cancelled));
  arch::x86_64::idle_until(early.done);
  KEXPECT(!cancelled.done.load());
  KEXPECT_EQ(early.order, 1);
}

KTEST(SerialConsole, TheReceiveInterruptDeliversBytesInLoopback) {
  // The UART's loopback turns what it sends into what it receives, raising the receive
  // interrupt; nothing reaches the host while it is on (so no logging in between).
  auto& com1 = kernel::serial_console::com1();
  auto& input = kernel::serial_console::input();
  while (input.pop().has_value()) {
  }
  u64 interrupts = kernel::serial_console::receive_interrupts();
  com1.set_loopback(arch::x86_64::Serial16550::Loopback::On);
  com1.write("ok!");
  u64 deadline = kernel::time::now_ns() + 200 * kMs;
  while (input.size() < 3 && kernel::time::now_ns() < deadline) ktl::cpu_relax();
  com1.set_loopback(arch::x86_64::Serial16550::Loopback::Off);
  KEXPECT_LT(interrupts, kernel::serial_console::receive_interrupts());
  KASSERT_EQ(input.size(), 3u);
  KEXPECT_EQ(*input.pop(), u8{'o'});
  KEXPECT_EQ(*input.pop(), u8{'k'});
  KEXPECT_EQ(*input.pop(), u8{'!'});
}

}  // namespace
