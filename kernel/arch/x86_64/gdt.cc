module;

#include <ktl/macros.h>

module arch.x86_64.gdt;

import ktl;
import arch.x86_64.cpu;

namespace arch::x86_64 {

namespace {

// Descriptor encodings (Intel SDM vol. 3, 3.4.5): limit 0xfffff, 4 KiB granularity. In 64-bit
// mode base and limit are ignored for code and data; L=1 marks 64-bit code.
constexpr u64 kNull = 0;
constexpr u64 kKernelCode64 = 0x00af'9a00'0000'ffffull;  // P, DPL0, code exec/read, L
constexpr u64 kKernelData = 0x00cf'9200'0000'ffffull;    // P, DPL0, data read/write
constexpr u64 kUserData = 0x00cf'f200'0000'ffffull;      // P, DPL3, data read/write
constexpr u64 kUserCode64 = 0x00af'fa00'0000'ffffull;    // P, DPL3, code exec/read, L

constexpr ktl::usize kEntries = 7;  // null, 4 segments, TSS (two slots)
constexpr ktl::usize kIstStacks = 3;

struct State {
  alignas(16) ktl::Array<u64, kEntries> gdt{};
  alignas(16) TaskStateSegment tss{};
  alignas(16) ktl::Array<ktl::Array<u8, kIstStackSize>, kIstStacks> ist_stacks{};
  // The stacks the TSS points at: the early ones above until set_ist_stack() moves them.
  ktl::Array<StackRange, kIstStacks> current{};
  bool loaded = false;
};
State g_state;

StackRange stack_of(ktl::usize index) {
  u64 bottom = ktl::address_of(g_state.ist_stacks[index].data());
  return StackRange{bottom, bottom + kIstStackSize};
}

// Reloads CS with a far return and the data segment registers with the kernel data selector.
void reload_segments() {
  __asm__ volatile(
      "pushq %[code]\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "lretq\n"
      "1:\n\t"
      "movw %[data], %%ax\n\t"
      "movw %%ax, %%ds\n\t"
      "movw %%ax, %%es\n\t"
      "movw %%ax, %%ss\n\t"
      "xorl %%eax, %%eax\n\t"
      "movw %%ax, %%fs\n\t"
      "movw %%ax, %%gs\n\t"
      :
      : [code] "i"(selector::kKernelCode), [data] "i"(selector::kKernelData)
      : "rax", "memory");
}

}  // namespace

void load_gdt() {
  ktl::check(!g_state.loaded, "load_gdt: called twice");
  State& s = g_state;
  s.gdt[0] = kNull;
  s.gdt[1] = kKernelCode64;
  s.gdt[2] = kKernelData;
  s.gdt[3] = kUserData;
  s.gdt[4] = kUserCode64;

  // The IstSlot values are 1..3 in the order of ist_stacks.
  static_assert(kIstStacks == 3);
  for (ktl::usize i = 0; i < kIstStacks; ++i) s.current[i] = stack_of(i);
  s.tss.ist1 = s.current[0].top;
  s.tss.ist2 = s.current[1].top;
  s.tss.ist3 = s.current[2].top;
  s.tss.iomap_base = sizeof(TaskStateSegment);  // no I/O permission bitmap

  // 64-bit TSS descriptor (available, type 9), 16 bytes (SDM vol. 3, 8.2.3).
  u64 base = ktl::address_of(&s.tss);
  u64 limit = sizeof(TaskStateSegment) - 1;
  s.gdt[5] = (limit & 0xffff) | ((base & 0xff'ffff) << 16) | (u64{0x89} << 40) |
             (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  s.gdt[6] = base >> 32;

  lgdt(DescriptorTablePointer{static_cast<u16>(kEntries * sizeof(u64) - 1), ktl::address_of(s.gdt.data())});
  reload_segments();
  ltr(selector::kTss);
  s.loaded = true;
}

bool gdt_loaded() { return g_state.loaded; }

StackRange ist_stack(IstSlot slot) {
  auto index = static_cast<ktl::usize>(ktl::to_underlying(slot)) - 1;
  ktl::check(index < kIstStacks, "ist_stack: no such IST slot");
  return g_state.current[index];
}

StackRange early_ist_stack(IstSlot slot) {
  auto index = static_cast<ktl::usize>(ktl::to_underlying(slot)) - 1;
  ktl::check(index < kIstStacks, "early_ist_stack: no such IST slot");
  return stack_of(index);
}

void set_ist_stack(IstSlot slot, StackRange stack) {
  auto index = static_cast<ktl::usize>(ktl::to_underlying(slot)) - 1;
  ktl::check(g_state.loaded && index < kIstStacks, "set_ist_stack: no such IST slot (or no TSS yet)");
  ktl::check((stack.top & 15) == 0 && stack.top - stack.bottom >= 4096, "set_ist_stack: bad stack");
  // The CPU reads the IST entry when it delivers an interrupt through the gate: no reload needed.
  // Interrupts are off (contract), so no delivery sees a half-written entry.
  g_state.current[index] = stack;
  TaskStateSegment& t = g_state.tss;
  switch (slot) {
    case IstSlot::DoubleFault: t.ist1 = stack.top; break;
    case IstSlot::Nmi: t.ist2 = stack.top; break;
    case IstSlot::MachineCheck: t.ist3 = stack.top; break;
  }
}

u64 gdt_base() { return ktl::address_of(g_state.gdt.data()); }

}  // namespace arch::x86_64
