// kernel.bench: the kernel's own micro-benchmarks (the shell's `bench`, test=bench):
//   an empty function call            the unit the others are compared with
//   an interrupt round trip           `int` to a registered no-op handler and back (the full
//                                     trap path: isr.S, ferrite_trap, kernel.irq, EOI, iretq)
//   a context switch                  two tasks yielding to each other (ping-pong)
//   timer interrupt -> task wake-up   a high-priority task's lateness after sleep_until
// Times come from the TSC (calibrated at boot). Under TCG they depend on the host and its load:
// the ratios are the figures to compare.
module;

#include <ktl/macros.h>

export module kernel.bench;

import ktl;

export namespace kernel::bench {

struct Results {
  ktl::u64 call_ps = 0;       // picoseconds per empty call
  ktl::u64 interrupt_ps = 0;  // per interrupt round trip
  ktl::u64 switch_ps = 0;     // per context switch
  ktl::u64 wake_p50_ns = 0;   // timer -> task wake-up lateness
  ktl::u64 wake_p99_ns = 0;
  ktl::u32 wake_samples = 0;
};

// Runs every benchmark and prints its lines to `out`.
Results run_all(ktl::FormatSink& out);

}  // namespace kernel::bench
