// arch.x86_64.context: what kernel.sched needs from the CPU (its ArchOps), for x86_64: the
// context switch (switch.S) and a new task's first frame. Used by the kernel and, unchanged, by
// the host tests of the scheduler (the routine is plain SysV code).
//
// The first frame, from the saved stack pointer up: r15, r14, r13 (= start), r12 (= task), rbx,
// rbp (= 0), then the return address ferrite_task_first_entry; placed so that `start` is entered
// with RSP + 8 aligned to 16, as after a call. FPU/SIMD policy: kernel code is built without x87,
// MMX and SSE (-mno-80387 -mno-mmx -mno-sse, tools/toolchain/BUILD), so there is no extended state
// to switch (FIXME(user): fxsave/xsave once user tasks run). The host tests build with SSE: XMM
// registers are caller-saved, and the control words the ABI makes callee-saved (MXCSR, x87 CW) are
// not switched because nothing changes them.
module;

#include <ktl/macros.h>

export module arch.x86_64.context;

import ktl;

export extern "C" void ferrite_switch_context(ktl::u64* save_sp, ktl::u64 new_sp);

export namespace arch::x86_64 {

// Builds the first frame below `stack_top`; returns the stack pointer to switch to.
[[nodiscard]] ktl::u64 prepare_task_stack(ktl::u64 stack_top, void (*start)(void* task), void* task);

}  // namespace arch::x86_64
