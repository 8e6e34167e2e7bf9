// arch.x86_64.pic: the two legacy 8259 PICs, remapped away from the CPU's exception vectors and
// masked. Firmware leaves them at vector bases it chose (the PC's were 0x08 and 0x70, the first
// colliding with #DF and #TS), so a PIC interrupt would look like an exception. The kernel takes
// device interrupts through the local and I/O APICs; the PICs stay masked, at 0x20-0x2f, where a
// spurious IRQ 7 or 15 (which a masked PIC can still raise) lands on a vector that is not an
// exception.
export module arch.x86_64.pic;

import ktl;

export namespace arch::x86_64 {

inline constexpr ktl::u8 kPicMasterVectorBase = 0x20;  // IRQ 0-7
inline constexpr ktl::u8 kPicSlaveVectorBase = 0x28;   // IRQ 8-15

// Re-initialises both PICs (ICW1-ICW4: edge triggered, cascade on IRQ 2, 8086 mode) at the vector
// bases above and masks every line.
void remap_and_mask_pics();

}  // namespace arch::x86_64
