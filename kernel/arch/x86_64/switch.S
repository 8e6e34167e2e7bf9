// Kernel task context switch and first entry (x86_64 SysV; shared by the kernel and the host
// tests, see arch.x86_64.context).
//
// void ferrite_switch_context(u64* save_sp, u64 new_sp)
//   Pushes the callee-saved registers, stores RSP into *save_sp, loads new_sp, pops the other
//   context's registers and returns into it. The caller-saved registers are already saved by the
//   compiler around the call; RFLAGS is not switched (the scheduler switches with interrupts
//   masked, and each side restores its own interrupt state).
//
// ferrite_task_first_entry: where a new task's prepared frame returns to. The frame holds the
//   task pointer in r12 and its start function in r13; RBP is 0 so backtraces stop here.
    .text
    .globl ferrite_switch_context
    .type ferrite_switch_context, @function
ferrite_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size ferrite_switch_context, . - ferrite_switch_context

    .globl ferrite_task_first_entry
    .type ferrite_task_first_entry, @function
ferrite_task_first_entry:
    movq %r12, %rdi
    xorl %ebp, %ebp
    callq *%r13
    ud2
    .size ferrite_task_first_entry, . - ferrite_task_first_entry

    .section .note.GNU-stack, "", @progbits
