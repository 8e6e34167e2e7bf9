// kernel.irq: the architecture-neutral half of interrupt dispatch. The arch's trap entry hands
// every external interrupt (x86_64: vectors 0x20..0xff) to dispatch(), which runs the handler
// registered for the vector and counts it. A vector nobody registered is counted as unexpected
// and reported through the log at its 1st, 2nd, 4th, 8th, ... occurrence (never fatal: a stray
// or misrouted interrupt must not take the kernel down, and a storm must not flood the console).
// Spurious interrupts (the local APIC's and the 8259's) are counted apart: the arch's entry knows
// which vectors those are and that they get no EOI.
//
// Contract: handlers run with interrupts masked, on the interrupted stack; they must not sleep.
// Registration happens at bring-up, before the source is unmasked. FIXME(smp): per-CPU counts.
module;

#include <ktl/macros.h>

export module kernel.irq;

import ktl;

export namespace kernel::irq {

using ktl::u32;
using ktl::u64;
using ktl::u8;

inline constexpr u32 kVectors = 256;

using Handler = void (*)(u8 vector);

enum class Outcome : u8 { Handled, Unexpected };

// Whether the n-th occurrence (1-based) of an unexpected interrupt is reported: 1, 2, 4, 8, ...
[[nodiscard]] constexpr bool report_occurrence(u64 n) { return n != 0 && (n & (n - 1)) == 0; }

class Table {
 public:
  constexpr Table() = default;
  // Panics if the vector already has a handler (two drivers on one vector is a routing bug).
  void set(u8 vector, Handler handler, const char* name);
  void clear(u8 vector);
  // Runs the vector's handler, or counts (and maybe logs) it as unexpected.
  Outcome dispatch(u8 vector);
  void count_spurious(u8 vector);

  [[nodiscard]] inline u64 count(u8 vector) const { return counts_[vector].load(ktl::MemoryOrder::Relaxed); }
  [[nodiscard]] inline const char* name(u8 vector) const { return names_[vector]; }
  [[nodiscard]] inline bool has_handler(u8 vector) const { return handlers_[vector].load() != nullptr; }
  [[nodiscard]] inline u64 unexpected() const { return unexpected_.load(ktl::MemoryOrder::Relaxed); }
  [[nodiscard]] inline u64 spurious() const { return spurious_.load(ktl::MemoryOrder::Relaxed); }
  [[nodiscard]] u64 total() const;

 private:
  ktl::Array<ktl::Atomic<Handler>, kVectors> handlers_{};
  ktl::Array<const char*, kVectors> names_{};
  ktl::Array<ktl::Atomic<u64>, kVectors> counts_{};
  ktl::Atomic<u64> unexpected_{0};
  ktl::Atomic<u64> spurious_{0};
};

// The kernel's table.
[[nodiscard]] Table& table();

// Interrupt context: the arch's entry brackets every external interrupt with enter() and exit()
// (after its EOI). exit() back to task context runs the exit hook: the scheduler's preemption
// point. FIXME(smp): per CPU.
void enter();
void exit();
[[nodiscard]] bool in_interrupt();
void set_exit_hook(void (*hook)());

}  // namespace kernel::irq
