// The x86_64 implementation of mm.slab.cpu's CPU hooks (declared in mm/slab/slab_cpu.cppm).
//
// CpuPin keeps the slab fast paths on one CPU's magazines without a lock: pinning masks
// interrupts on this CPU (an interrupt handler that allocates cannot interleave with the code it
// interrupted), unpinning restores the interrupt flag as it was. Pins nest (each restores its
// own saved flags). FIXME(smp): ferrite_cpu_id from the per-CPU area once other CPUs run.
#include <ktl/macros.h>

import ktl;
import arch.x86_64.cpu;
import mm.slab.cpu; // the declarations these definitions must match

namespace {
constexpr ktl::u64 kInterruptFlag = ktl::u64{1} << 9;
}

extern "C" ktl::u64 ferrite_cpu_pin() {
  ktl::u64 flags = arch::x86_64::read_rflags();
  arch::x86_64::cli();
  return flags;
}

extern "C" void ferrite_cpu_unpin(ktl::u64 saved) {
  if ((saved & kInterruptFlag) != 0) arch::x86_64::sti();
}

extern "C" ktl::u32 ferrite_cpu_id() { return 0; }
