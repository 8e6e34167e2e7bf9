module;

#include <ktl/macros.h>

module kernel.panic;

import ktl;
import kernel.backtrace;
import kernel.log;
import kernel.symbols;
import kernel.trap_decode;
import mm.addr;
import mm.arch;
import mm.paging.walk;
import arch.x86_64.cpu;
import arch.x86_64.gdt;
import arch.x86_64.idt;

namespace kpanic {

namespace {

using ktl::u64;
using ktl::usize;

constexpr usize kMaxFrames = 32;

struct NamedStack {
  kernel::StackBounds bounds;
  const char* name;
};

struct State {
  OnPanic policy = OnPanic::Halt;
  ksym::SymbolTable symbols;
  ktl::Optional<mm::PhysWindow> direct_map;
  ktl::Array<NamedStack, kMaxStacks> stacks{};
  usize stack_count = 0;
  ktl::Atomic<ktl::u32> depth{0};
};
State g_state;

// Every console, no lock (the code that panicked may hold it); only the serial port once a
// report has already failed part-way.
class PanicSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView text) override {
    if (g_state.depth.load() > 1) {
      klog::write_first(text);
    } else {
      klog::write_all(text);
    }
  }
};

// Returns false if a report is already running (and handles that case).
bool enter() {
  ktl::u32 depth = g_state.depth.fetch_add(1) + 1;
  if (depth == 1) return true;
  if (depth == 2) {
    klog::write_first("\nKERNEL PANIC while reporting a panic (the report above is incomplete)\n");
    return true;
  }
  stop();
}

const NamedStack* stack_holding(u64 address) {
  for (usize i = 0; i < g_state.stack_count; ++i) {
    if (g_state.stacks[i].bounds.holds(address, 1)) return &g_state.stacks[i];
  }
  return nullptr;
}

void print_registers(ktl::FormatSink& out, const arch::x86_64::TrapFrame& f) {
  ktl::format_to(out, "  RAX {:#018x}  RBX {:#018x}  RCX {:#018x}\n", f.rax, f.rbx, f.rcx);
  ktl::format_to(out, "  RDX {:#018x}  RSI {:#018x}  RDI {:#018x}\n", f.rdx, f.rsi, f.rdi);
  ktl::format_to(out, "  RBP {:#018x}  RSP {:#018x}  R8  {:#018x}\n", f.rbp, f.rsp, f.r8);
  ktl::format_to(out, "  R9  {:#018x}  R10 {:#018x}  R11 {:#018x}\n", f.r9, f.r10, f.r11);
  ktl::format_to(out, "  R12 {:#018x}  R13 {:#018x}  R14 {:#018x}\n", f.r12, f.r13, f.r14);
  ktl::format_to(out, "  R15 {:#018x}  RFLAGS {:#010x}  CS {:#06x}  SS {:#06x}\n", f.r15, f.rflags, f.cs,
                 f.ss);
}

void print_control_registers(ktl::FormatSink& out) {
  using namespace arch::x86_64;
  ktl::format_to(out, "  CR0 {:#018x}  CR3 {:#018x}  CR4 {:#018x}  EFER {:#x}\n", read_cr0(), read_cr3(),
                 read_cr4(), rdmsr(msr::kEfer));
}

void print_stack_hint(ktl::FormatSink& out, const arch::x86_64::TrapFrame& f) {
  u64 here = ktl::address_of(&f);
  const NamedStack* handler_stack = stack_holding(here);
  const NamedStack* interrupted = stack_holding(f.rsp);
  ktl::format_to(out, "  handler stack: {}; interrupted RSP in: {}\n",
                 handler_stack != nullptr ? handler_stack->name : "unknown",
                 interrupted != nullptr ? interrupted->name : "no known stack");
  // A full stack: the next push hit the guard page below it (the fault's own frame could not be
  // pushed, so the CPU raised #DF with RSP still at, or just above, the bottom).
  if (interrupted != nullptr && f.rsp - interrupted->bounds.bottom < 256) {
    ktl::format_to(out, "  RSP is {} bytes above the bottom of the {}: stack overflow into its guard page\n",
                   f.rsp - interrupted->bounds.bottom, interrupted->name);
  }
  if (interrupted == nullptr) {
    for (usize i = 0; i < g_state.stack_count; ++i) {
      const NamedStack& s = g_state.stacks[i];
      if (f.rsp < s.bounds.bottom && s.bounds.bottom - f.rsp <= 64 * 1024) {
        ktl::format_to(out, "  RSP is {} bytes below the bottom of the {}: stack overflow\n",
                       s.bounds.bottom - f.rsp, s.name);
      }
    }
  }
}

void print_fault_address(ktl::FormatSink& out, u64 cr2) {
  auto v = mm::VirtAddr::try_from(cr2);
  if (v.is_err()) {
    ktl::format_to(out, "  CR2 (faulting address) {:#018x} (non-canonical)\n", cr2);
    return;
  }
  ktl::format_to(out, "  CR2 (faulting address) {}", v.value());
  if (g_state.direct_map) {
    using Format = mm::paging::X86_64;
    auto root = mm::PhysAddr::unchecked(arch::x86_64::read_cr3() & Format::kAddrMask);
    auto t = mm::paging::translate<Format>(*g_state.direct_map, root, v.value());
    if (t.has_value()) {
      ktl::format_to(out, ": mapped to {} ({}{}{})", t->phys, t->flags.writable() ? "writable" : "read-only",
                     t->flags.executable() ? "" : ", no-execute", t->flags.user() ? ", user" : "");
    } else {
      out.write(": not mapped");
    }
  }
  out.write("\n");
}

}  // namespace

void set_policy(OnPanic policy) { g_state.policy = policy; }
void set_symbols(const ksym::SymbolTable& table) { g_state.symbols = table; }
const ksym::SymbolTable& symbols() { return g_state.symbols; }
void set_direct_map(mm::PhysWindow window) { g_state.direct_map = window; }

void add_stack(kernel::StackBounds stack, const char* name) {
  ktl::InterruptsOff off;  // a report reads the list from an exception handler
  ktl::check(g_state.stack_count < kMaxStacks, "kpanic::add_stack: too many stacks");
  g_state.stacks[g_state.stack_count++] = NamedStack{stack, name};
}

void remove_stack(const char* name) {
  ktl::InterruptsOff off;
  for (usize i = 0; i < g_state.stack_count; ++i) {
    if (ktl::StringView(g_state.stacks[i].name) != ktl::StringView(name)) continue;
    g_state.stacks[i] = g_state.stacks[--g_state.stack_count];
    return;
  }
  ktl::panic("kpanic::remove_stack: no stack of that name");
}

void replace_stack(const char* name, kernel::StackBounds stack) {
  for (usize i = 0; i < g_state.stack_count; ++i) {
    NamedStack& s = g_state.stacks[i];
    if (ktl::StringView(s.name) == ktl::StringView(name)) {
      s.bounds = stack;
      return;
    }
  }
  ktl::panic("kpanic::replace_stack: no stack of that name");
}

ksym::Symbolized symbolize(u64 address) { return ksym::Symbolized{address, g_state.symbols.lookup(address)}; }

ksym::Symbolized symbolize_return(u64 address) {
  ksym::Symbolized s{address, g_state.symbols.lookup(address - 1)};
  if (s.symbol.has_value()) s.symbol->offset = address - s.symbol->address;
  return s;
}

void print_backtrace(ktl::FormatSink& out, u64 rbp, usize first_index) {
  ktl::Array<kernel::StackBounds, kMaxStacks> bounds{};
  for (usize i = 0; i < g_state.stack_count; ++i) bounds[i] = g_state.stacks[i].bounds;
  usize index = first_index;
  auto result = kernel::walk_frames(rbp, bounds.span().first(g_state.stack_count), kMaxFrames, [&](u64 ret) {
    ktl::format_to(out, "  #{} {}\n", index++, symbolize_return(ret));
  });
  ktl::format_to(out, "  ({} frames; {})\n", index, kernel::to_string(result.end));
}

void report_exception(arch::x86_64::TrapFrame& f) {
  (void)enter();
  PanicSink out;
  u64 cr2 = arch::x86_64::read_cr2();  // first, before anything else can fault
  arch::x86_64::ExceptionInfo info = arch::x86_64::exception_info(f.vector);
  out.write("\n========================================================================\n");
  ktl::format_to(out, "KERNEL PANIC: {} ({}, vector {}) in {}\n", info.name, info.mnemonic, f.vector,
                 symbolize(f.rip));
  if (info.has_error_code) {
    ktl::format_to(out, "  error code {:#x}: ", f.error_code);
    if (f.vector == arch::x86_64::vector::kPageFault) {
      ktl::format_to(out, "{}\n", kernel::PageFaultCode{f.error_code});
    } else if (info.selector_error) {
      ktl::format_to(out, "{}\n", kernel::SelectorCode{f.error_code});
    } else {
      out.write(f.error_code == 0 ? "(always 0 for this exception)\n" : "\n");
    }
  }
  if (f.vector == arch::x86_64::vector::kPageFault) print_fault_address(out, cr2);
  ktl::format_to(out, "  RIP {}\n", symbolize(f.rip));
  print_registers(out, f);
  print_control_registers(out);
  print_stack_hint(out, f);
  out.write("backtrace:\n");
  ktl::format_to(out, "  #0 {}\n", symbolize(f.rip));
  print_backtrace(out, f.rbp, 1);
  stop();
}

void stop() {
  if (g_state.policy == OnPanic::ExitQemu) {
    PanicSink out;
    out.write("test mode: panic, exiting QEMU with status 35\n");
    arch::x86_64::qemu_exit(0x11);  // QEMU exits with (0x11 << 1) | 1 = 35
  }
  PanicSink out;
  out.write("halted.\n");
  arch::x86_64::halt_forever();
}

}  // namespace kpanic

// ktl's panic hook (ktl::panic, ktl::check).
extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line,
                                           const char* function) {
  arch::x86_64::cli();
  (void)kpanic::enter();
  kpanic::PanicSink out;
  out.write("\n========================================================================\n");
  ktl::format_to(out, "KERNEL PANIC: {}\n  at {}:{} in {}\n", message, file, line, function);
  out.write("backtrace:\n");
  kpanic::print_backtrace(out, arch::x86_64::read_rbp());
  kpanic::stop();
}
