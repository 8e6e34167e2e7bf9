/* Entry stubs for all 256 interrupt vectors (see arch.x86_64.idt).
 *
 * Stub n sits at ferrite_isr_stubs + 16 * n. It pushes a zero error code when the CPU does not
 * push one (every vector except 8, 10-14, 17, 21, 29, 30), then the vector number, and jumps to
 * ferrite_isr_common, which saves the general-purpose registers so that the stack holds an
 * arch::x86_64::TrapFrame and calls ferrite_trap(TrapFrame*). If that returns, the registers are
 * restored and iretq resumes the interrupted code.
 *
 * Stack alignment: in 64-bit mode the CPU aligns RSP to 16 before pushing its 5-word frame; with
 * the error code, the vector and 15 registers the frame is 22 words, so RSP is 16-byte aligned
 * at the call, as the SysV ABI wants. The kernel is built with -mno-red-zone and without SSE, so
 * nothing below RSP and no vector state needs saving. */
    .section .text.isr, "ax"
    .global ferrite_isr_stubs
    .type ferrite_isr_stubs, @function
    .balign 16
ferrite_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp ferrite_isr_common
    .set vec, vec + 1
    .endr
    .size ferrite_isr_stubs, . - ferrite_isr_stubs

    .global ferrite_isr_common
    .type ferrite_isr_common, @function
ferrite_isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call ferrite_trap
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp      /* vector and error code */
    iretq
    .size ferrite_isr_common, . - ferrite_isr_common
