/* Kernel entry on x86_64. The loader jumps here with:
 *   rdi = virtual address (direct map) of the boot::BootInfo
 *   rsp = top of the boot stack (a guard page below its bottom), a zero "return address" pushed
 *   interrupts off, paging on with the loader's tables, EFER.NXE and CR0.WP set.
 * We align the stack for the SysV ABI and call kernel_entry(BootInfo*), which never returns. */
    .section .text.entry, "ax"
    .global _start
    .type _start, @function
_start:
    cli
    cld
    xor %ebp, %ebp
    and $-16, %rsp
    call kernel_entry
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start
