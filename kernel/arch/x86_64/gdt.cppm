// arch.x86_64.gdt: the kernel's GDT and the task-state segment (TSS) of the boot CPU.
//
// The TSS carries the interrupt stack table: the double-fault, NMI and machine-check gates (see
// arch.x86_64.idt) switch to their own stacks, so a kernel-stack overflow (which faults again
// while the CPU pushes the page-fault frame) still reaches a handler that can report it.
//
// Contract: load() runs once, on the boot CPU, with interrupts off, before the IDT is loaded.
// FIXME(smp): one GDT/TSS per CPU.
// The IST stacks start out in .bss (no guard pages: the kernel has no mapper when it loads the
// GDT); once memory management is up, kernel.memory maps stacks with unmapped guard pages around
// them and moves the TSS to those (set_ist_stack). The .bss ones stay as a fallback that nothing
// uses afterwards.
module;

#include <ktl/macros.h>

export module arch.x86_64.gdt;

import ktl;
import arch.x86_64.cpu;

export namespace arch::x86_64 {

namespace selector {
inline constexpr u16 kKernelCode = 0x08;
inline constexpr u16 kKernelData = 0x10;
inline constexpr u16 kUserData = 0x18 | 3;
inline constexpr u16 kUserCode = 0x20 | 3;
inline constexpr u16 kTss = 0x28;
}  // namespace selector

// Interrupt-stack-table slots (1..7; 0 means "no stack switch").
enum class IstSlot : u8 { DoubleFault = 1, Nmi = 2, MachineCheck = 3 };
inline constexpr ktl::usize kIstStackSize = 16 * 1024;

// [bottom, top) of a stack; `top` is the initial stack pointer.
struct StackRange {
  u64 bottom;
  u64 top;
  [[nodiscard]] constexpr bool contains(u64 address, u64 size = 1) const {
    return address >= bottom && address <= top && size <= top - address;
  }
};

struct [[gnu::packed]] TaskStateSegment {
  u32 reserved0;
  u64 rsp0, rsp1, rsp2;  // stacks for privilege-level changes (rsp0 once user mode exists)
  u64 reserved1;
  u64 ist1, ist2, ist3, ist4, ist5, ist6, ist7;  // the interrupt stack table
  u64 reserved2;
  u16 reserved3;
  u16 iomap_base;
};
static_assert(sizeof(TaskStateSegment) == 104);

// Builds the GDT and TSS, loads them (lgdt, reloads every segment register, ltr).
void load_gdt();
[[nodiscard]] bool gdt_loaded();
// The stack the CPU switches to for `slot` (valid after load_gdt()).
[[nodiscard]] StackRange ist_stack(IstSlot slot);
// The .bss stack load_gdt() installed for `slot`.
[[nodiscard]] StackRange early_ist_stack(IstSlot slot);
// Points the TSS's IST entry for `slot` at `stack` (top 16-byte aligned). Contract: interrupts
// off; the stack stays mapped for the rest of the kernel's life.
void set_ist_stack(IstSlot slot, StackRange stack);
// The GDT's base as loaded (for tests comparing against sgdt).
[[nodiscard]] u64 gdt_base();

}  // namespace arch::x86_64
