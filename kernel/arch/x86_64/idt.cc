module;

#include <ktl/macros.h>

module arch.x86_64.idt;

import ktl;
import arch.x86_64.cpu;
import arch.x86_64.gdt;

extern "C" void ferrite_isr_stubs();  // isr.S: 256 stubs of 16 bytes each

namespace arch::x86_64 {

namespace {

constexpr ktl::usize kVectors = 256;
constexpr u64 kStubSize = 16;

struct Gate {
  u16 offset_low;
  u16 selector;
  u8 ist;
  u8 type_attr;  // P | DPL | type (0xe: 64-bit interrupt gate)
  u16 offset_mid;
  u32 offset_high;
  u32 reserved;
};
static_assert(sizeof(Gate) == 16);

struct State {
  alignas(16) ktl::Array<Gate, kVectors> idt{};
  ktl::Array<ktl::Atomic<TrapHandler>, kVectors> handlers{};
  ktl::Atomic<TrapHandler> fallback{};
  bool loaded = false;
};
State g_state;

constexpr ktl::Array<ExceptionInfo, 32> kExceptions = {{
    {"#DE", "divide error", false, false},
    {"#DB", "debug", false, false},
    {"NMI", "non-maskable interrupt", false, false},
    {"#BP", "breakpoint", false, false},
    {"#OF", "overflow", false, false},
    {"#BR", "bound range exceeded", false, false},
    {"#UD", "invalid opcode", false, false},
    {"#NM", "device not available", false, false},
    {"#DF", "double fault", true, false},
    {"#09", "coprocessor segment overrun", false, false},
    {"#TS", "invalid TSS", true, true},
    {"#NP", "segment not present", true, true},
    {"#SS", "stack-segment fault", true, true},
    {"#GP", "general protection fault", true, true},
    {"#PF", "page fault", true, false},
    {"#15", "reserved exception 15", false, false},
    {"#MF", "x87 floating-point error", false, false},
    {"#AC", "alignment check", true, false},
    {"#MC", "machine check", false, false},
    {"#XM", "SIMD floating-point exception", false, false},
    {"#VE", "virtualization exception", false, false},
    {"#CP", "control protection", true, false},
    {"#22", "reserved exception 22", false, false},
    {"#23", "reserved exception 23", false, false},
    {"#24", "reserved exception 24", false, false},
    {"#25", "reserved exception 25", false, false},
    {"#26", "reserved exception 26", false, false},
    {"#27", "reserved exception 27", false, false},
    {"#HV", "hypervisor injection", false, false},
    {"#VC", "VMM communication", true, false},
    {"#SX", "security exception", true, false},
    {"#31", "reserved exception 31", false, false},
}};

u8 ist_for(ktl::usize v) {
  switch (v) {
    case vector::kDoubleFault: return ktl::to_underlying(IstSlot::DoubleFault);
    case vector::kNmi: return ktl::to_underlying(IstSlot::Nmi);
    case vector::kMachineCheck: return ktl::to_underlying(IstSlot::MachineCheck);
    default: return 0;
  }
}

}  // namespace

ExceptionInfo exception_info(u64 v) {
  if (v < kExceptions.size()) return kExceptions[static_cast<ktl::usize>(v)];
  return ExceptionInfo{"IRQ", "external interrupt", false, false};
}

void load_idt() {
  ktl::check(gdt_loaded(), "load_idt: the GDT (and its IST stacks) must be loaded first");
  ktl::check(!g_state.loaded, "load_idt: called twice");
  u64 stubs = ktl::address_of(&ferrite_isr_stubs);
  for (ktl::usize v = 0; v < kVectors; ++v) {
    u64 target = stubs + v * kStubSize;
    g_state.idt[v] = Gate{
        static_cast<u16>(target & 0xffff),
        selector::kKernelCode,
        ist_for(v),
        0x8e,  // present, DPL 0, 64-bit interrupt gate
        static_cast<u16>((target >> 16) & 0xffff),
        static_cast<u32>(target >> 32),
        0,
    };
  }
  lidt(DescriptorTablePointer{static_cast<u16>(kVectors * sizeof(Gate) - 1),
                              ktl::address_of(g_state.idt.data())});
  g_state.loaded = true;
}

bool idt_loaded() { return g_state.loaded; }

void set_default_trap_handler(TrapHandler handler) { g_state.fallback.store(handler); }

TrapHandler set_trap_handler(u8 v, TrapHandler handler) { return g_state.handlers[v].exchange(handler); }

u8 ist_slot_of(u8 v) { return g_state.idt[v].ist; }

u64 idt_base() { return ktl::address_of(g_state.idt.data()); }

}  // namespace arch::x86_64

extern "C" void ferrite_trap(arch::x86_64::TrapFrame* frame) {
  using namespace arch::x86_64;
  TrapHandler handler = nullptr;
  if (frame->vector < kVectors) handler = g_state.handlers[static_cast<ktl::usize>(frame->vector)].load();
  if (handler == nullptr) handler = g_state.fallback.load();
  if (handler == nullptr) halt_forever();  // nothing installed yet: nothing can report it
  handler(*frame);
}
