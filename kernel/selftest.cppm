// kernel.selftest: deliberate faults for test mode (test=fault:<kind>), so the boot tests can
// check that each one produces a panic report naming the function that faulted.
//
// Each trigger is a separate, never-inlined function with a recognisable name; the boot tests in
// testing/kernel/BUILD match those names in the symbolised report.
module;

#include <ktl/macros.h>

export module kernel.selftest;

import ktl;
import kernel.cmdline;

export namespace kernel::selftest {

// Triggers `kind`. Returns only if the fault did not happen (the caller reports a failure).
void run_fault(FaultKind kind, ktl::u64 direct_map_base);

}  // namespace kernel::selftest
