// kernel.panic: the kernel's last words.
//
// Two ways in: ktl::panic / ktl::check (ferrite_panic, for broken invariants) and every exception
// without a handler of its own (report_exception, the IDT's default handler). Both print, to
// every console without taking the log lock: what happened (the exception with its decoded error
// code, CR2 for page faults), the registers, and a backtrace symbolised through the embedded
// symbol table (kernel.symbols). Then the CPU halts, or in test mode QEMU exits with status 35.
//
// A panic inside the report (a broken console, a bad symbol table) is caught: the second report
// goes to the serial port only, a third stops at once.
module;

#include <ktl/macros.h>

export module kernel.panic;

import ktl;
import kernel.backtrace;
import kernel.symbols;
import arch.x86_64.idt;
import mm.arch;

export namespace kpanic {

enum class OnPanic { Halt, ExitQemu };

// Configuration, set once at boot before anything can fail (and read without locks afterwards).
void set_policy(OnPanic policy);
void set_symbols(const ksym::SymbolTable& table);
[[nodiscard]] const ksym::SymbolTable& symbols();
// The direct map, through which a page-fault report walks the active tables (CR3) with the
// paging engine's lock-free translate (mm::paging::translate: no lock, reads only, never panics).
void set_direct_map(mm::PhysWindow window);
// Stacks the backtrace may read (the boot stack, the IST stacks, task stacks). At most
// kMaxStacks. `name` must stay valid while the stack is registered.
inline constexpr ktl::usize kMaxStacks = 80;
void add_stack(kernel::StackBounds stack, const char* name);
// Moves the stack registered as `name` to `stack` (the IST stacks, once they are mapped with guard
// pages). Panics if no stack has that name.
void replace_stack(const char* name, kernel::StackBounds stack);
// Forgets the stack registered as `name` (a task's, when it is freed). Panics if there is none.
void remove_stack(const char* name);

// `address` with the function containing it.
[[nodiscard]] ksym::Symbolized symbolize(ktl::u64 address);
// A return address: looked up one byte earlier (the call may be the function's last instruction).
[[nodiscard]] ksym::Symbolized symbolize_return(ktl::u64 address);

// Prints "  #n 0x... <function+0x..>" per frame, starting at frame pointer `rbp`.
void print_backtrace(ktl::FormatSink& out, ktl::u64 rbp, ktl::usize first_index = 0);

// The default trap handler: reports the exception and stops.
[[noreturn]] void report_exception(arch::x86_64::TrapFrame& frame);

// Halts, or exits QEMU with status 35 in test mode.
[[noreturn]] void stop();

}  // namespace kpanic
