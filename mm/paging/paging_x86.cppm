// mm.paging.x86: the x86 page-table vocabulary, defined once: the entry bits (Intel SDM vol. 3A,
// 4.3 for 32-bit and 4.5 for 4-level paging) and the PAT the loader programs, which the memory
// types of the entries index. Used by the formats (mm.paging.formats), the UEFI loader's table
// builder (which programs kPat and reports it in boot::BootInfo::pat) and the kernel, which
// refuses a BootInfo whose PAT is not kPat (kernel.boot_check). Depends on ktl only.
export module mm.paging.x86;

import ktl;

export namespace mm::paging::x86 {

using ktl::u64;

inline constexpr u64 kPresent = u64{1} << 0;
inline constexpr u64 kWritable = u64{1} << 1;
inline constexpr u64 kUser = u64{1} << 2;
inline constexpr u64 kPwt = u64{1} << 3;
inline constexpr u64 kPcd = u64{1} << 4;
inline constexpr u64 kPageSize = u64{1} << 7;  // PS in a directory entry
inline constexpr u64 kPat4K = u64{1} << 7;     // PAT in a PTE
inline constexpr u64 kGlobal = u64{1} << 8;
inline constexpr u64 kPatLarge = u64{1} << 12;  // PAT in a PS entry
inline constexpr u64 kNoExecute = u64{1} << 63;
// The frame or table address of a 4-level entry (52-bit physical addresses).
inline constexpr u64 kAddrMask = 0x000f'ffff'ffff'f000ull;

// IA32_PAT as the loader programs it (0x0007010600070406): PA0..PA7 = WB, WT, UC-, UC, WB, WC,
// UC-, UC. PA0..PA3 are the power-on values, so entries without the PAT bit mean the same
// before and after the loader writes it.
inline constexpr u64 kPat = 0x0007'0106'0007'0406ull;

// PAT indices (PAT:PCD:PWT) of the memory types in kPat.
inline constexpr u64 kPatWriteBack = 0;
inline constexpr u64 kPatWriteThrough = 1;
inline constexpr u64 kPatUncached = 3;
inline constexpr u64 kPatWriteCombining = 5;

enum class LeafSize : ktl::u8 { Page4K, Large };  // where the PAT bit lives: PTE bit 7 or PS-entry bit 12

// The PWT/PCD/PAT bits of a leaf that selects PAT entry `index`.
[[nodiscard]] constexpr u64 pat_bits(u64 index, LeafSize size) {
  u64 bits = 0;
  if (index & 1) bits |= kPwt;
  if (index & 2) bits |= kPcd;
  if (index & 4) bits |= size == LeafSize::Page4K ? kPat4K : kPatLarge;
  return bits;
}
// The PAT index a leaf's PWT/PCD/PAT bits select.
[[nodiscard]] constexpr u64 pat_index_of(u64 entry, LeafSize size) {
  u64 pat_bit = size == LeafSize::Page4K ? kPat4K : kPatLarge;
  return ((entry & kPwt) ? 1 : 0) | ((entry & kPcd) ? 2 : 0) | ((entry & pat_bit) ? 4 : 0);
}

}  // namespace mm::paging::x86
