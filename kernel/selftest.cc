module;

#include <ktl/macros.h>

module kernel.selftest;

import ktl;
import kernel.cmdline;
import mm.heap;
import arch.x86_64.apic;
import arch.x86_64.idt;
import kernel.sched;
import kernel.tasks;

namespace kernel::selftest {

namespace {

// An address in the lower half above the loader's identity map (RAM and the low 4 GiB): never
// mapped, and canonical (bit 47 clear; a non-canonical one would raise #GP instead of #PF).
constexpr ktl::u64 kUnmappedAddress = 0x0000'0bad'0000'0000ull;

volatile ktl::u64 g_zero = 0;
volatile ktl::u64 g_one = 1;
volatile bool g_recurse = true;
volatile bool g_returned = false;
const ktl::u64 g_read_only_word = 0x5a5a'5a5a'5a5a'5a5aull;  // .rodata: mapped read-only

[[gnu::noinline]] void trigger_page_fault() {
  KTL_UNSAFE_BUFFER_BEGIN  // the point: this load faults, and the test checks the trap it raises
  auto* p = reinterpret_cast<volatile ktl::u64*>(static_cast<ktl::uptr>(kUnmappedAddress));
  (void)*p;
  KTL_UNSAFE_BUFFER_END
}

[[gnu::noinline]] void trigger_divide_error() {
  ktl::u64 q = g_one / g_zero;  // g_zero is volatile: the compiler must emit the div
  g_one = q;
}

[[gnu::noinline]] void trigger_write_to_rodata() {
  // CR0.WP makes this fault in supervisor mode too.
  auto* p = const_cast<volatile ktl::u64*>(&g_read_only_word);
  *p = 0;
}

[[gnu::noinline]] ktl::u64 trigger_stack_overflow(ktl::u64 depth) {
  // A large frame, touched so it is really allocated, and an addition after the call so the
  // recursion cannot become a loop.
  volatile ktl::u8 frame[512];
  frame[0] = static_cast<ktl::u8>(depth);
  if (!g_recurse) return depth;
  return trigger_stack_overflow(depth + 1) + frame[0];
}

[[gnu::noinline]] void trigger_nmi() { arch::x86_64::send_nmi_to_self(); }

// The kernel heap is hardened in test mode: the second kfree is reported, not absorbed.
[[gnu::noinline]] void trigger_double_free() {
  void* p = mm::kmalloc(64);
  mm::kfree(p);
  mm::kfree(p);
}

// An NMI handler that overflows its IST stack: the guard page below it turns the overflow into a
// page fault, whose delivery faults again (no IST for #PF) and ends in a double fault on IST 1.
[[gnu::noinline]] void overflow_nmi_stack(arch::x86_64::TrapFrame&) { g_one = trigger_stack_overflow(0); }
[[gnu::noinline]] void trigger_ist_stack_overflow() {
  (void)arch::x86_64::set_trap_handler(arch::x86_64::vector::kNmi, &overflow_nmi_stack);
  __asm__ volatile("int $2" ::: "memory");
}

// A lock-order inversion: the kernel checks lock ranks in every build but -c opt (ktl.sync). Two
// locks of the ranks of a PMM arena and the slab registry, taken in the wrong order.
[[gnu::noinline]] void trigger_lock_inversion() {
  ktl::SpinLock arena(ktl::LockRank::PmmArena);
  ktl::SpinLock registry(ktl::LockRank::SlabRegistry);
  arena.lock();
  registry.lock();  // panics: slab.registry ranks above pmm.arena
  registry.unlock();
  arena.unlock();
}

void overflow_entry(void*) { g_one = trigger_stack_overflow(0); }

// A kernel task that recurses until it runs into the guard page below its stack: the double
// fault's report names the task's stack ("task N (overflow) stack").
[[gnu::noinline]] void trigger_task_stack_overflow() {
  auto t = kernel::tasks::spawn("overflow", kernel::sched::Priority::Normal, &overflow_entry, nullptr);
  if (t.is_err()) return;
  (void)t.value().join();
}

[[gnu::noinline]] void trigger_panic() { ktl::panic("deliberate panic (test=fault:panic)"); }

}  // namespace

void run_fault(FaultKind kind, ktl::u64 direct_map_base) {
  arch::x86_64::set_apic_direct_map(direct_map_base);
  switch (kind) {
    case FaultKind::PageFault: trigger_page_fault(); break;
    case FaultKind::Divide: trigger_divide_error(); break;
    case FaultKind::WriteProtect: trigger_write_to_rodata(); break;
    case FaultKind::StackOverflow: g_one = trigger_stack_overflow(0); break;
    case FaultKind::Nmi:
      trigger_nmi();
      // Delivery is asynchronous: give it a moment.
      for (int i = 0; i < 1000000; ++i) ktl::cpu_relax();
      break;
    case FaultKind::Panic: trigger_panic(); break;
    case FaultKind::DoubleFree: trigger_double_free(); break;
    case FaultKind::IstStackOverflow: trigger_ist_stack_overflow(); break;
    case FaultKind::LockOrder: trigger_lock_inversion(); break;
    case FaultKind::TaskStackOverflow: trigger_task_stack_overflow(); break;
    case FaultKind::None: break;
  }
  // A store after the calls keeps them calls (no sibling-call jumps), so run_fault stays in the
  // backtrace the boot tests check.
  g_returned = true;
}

}  // namespace kernel::selftest
