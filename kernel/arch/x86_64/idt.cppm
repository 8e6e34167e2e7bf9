// arch.x86_64.idt: the interrupt descriptor table and trap dispatch.
//
// All 256 vectors get an interrupt gate (interrupts stay masked inside handlers) pointing at the
// stubs in isr.S, which build a TrapFrame and call ferrite_trap(). Double fault, NMI and machine
// check run on their own IST stacks (arch.x86_64.gdt). Dispatch: a handler registered for the
// vector, otherwise the default handler (the kernel installs its panic report there).
//
// Contract: load_idt() runs once on the boot CPU, after load_gdt(). Handlers run with interrupts
// off; a handler that returns resumes the interrupted code at frame.rip (which it may change).
module;

#include <ktl/macros.h>

export module arch.x86_64.idt;

import ktl;
import arch.x86_64.cpu;
import arch.x86_64.gdt;

export namespace arch::x86_64 {

// The stack as isr.S leaves it: the registers it pushed, then the vector and error code, then
// the frame the CPU pushed.
struct TrapFrame {
  u64 r15, r14, r13, r12, r11, r10, r9, r8;
  u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
  u64 vector;
  u64 error_code;  // 0 for vectors without one
  u64 rip, cs, rflags, rsp, ss;
};
static_assert(sizeof(TrapFrame) == 22 * 8);

namespace vector {
inline constexpr u8 kDivideError = 0;
inline constexpr u8 kDebug = 1;
inline constexpr u8 kNmi = 2;
inline constexpr u8 kBreakpoint = 3;
inline constexpr u8 kInvalidOpcode = 6;
inline constexpr u8 kDoubleFault = 8;
inline constexpr u8 kGeneralProtection = 13;
inline constexpr u8 kPageFault = 14;
inline constexpr u8 kMachineCheck = 18;
}  // namespace vector

struct ExceptionInfo {
  const char* mnemonic;  // "#PF"
  const char* name;      // "page fault"
  bool has_error_code;   // the CPU pushes one
  bool selector_error;   // the error code is a segment-selector index (#TS, #NP, #SS, #GP)
};
// The architectural exceptions (vectors 0..31); anything above is an external interrupt.
[[nodiscard]] ExceptionInfo exception_info(u64 vector);

using TrapHandler = void (*)(TrapFrame& frame);

void load_idt();
[[nodiscard]] bool idt_loaded();
// The handler for every vector that has none of its own.
void set_default_trap_handler(TrapHandler handler);
// Installs `handler` for one vector (nullptr: back to the default); returns the previous one.
TrapHandler set_trap_handler(u8 vector, TrapHandler handler);
// The IST slot a vector's gate uses, 0 for none (for tests).
[[nodiscard]] u8 ist_slot_of(u8 vector);
[[nodiscard]] u64 idt_base();

}  // namespace arch::x86_64

// Called by isr.S for every interrupt and exception.
export extern "C" void ferrite_trap(arch::x86_64::TrapFrame* frame);
