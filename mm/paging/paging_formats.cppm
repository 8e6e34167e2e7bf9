// mm.paging.formats: the page-table formats the engine (mm.paging) is instantiated with.
//
// A format is a type with only static members: the geometry (levels, entries per table, which
// levels may hold leaves, the page sizes it knows), and the encoding of entries. Levels are
// numbered from the bottom: level 0 holds 4 KiB leaves, level kLevels-1 is the root.
//
//   X86_64        PML4 -> PDPT -> PD -> PT, 512 x 8-byte entries; 2 MiB (PD) and 1 GiB (PDPT)
//                 leaves with PS; NX; PAT memory types. The kernel's format.
//   X86_32        PD -> PT, 1024 x 4-byte entries; 4 MiB PSE leaves in the PD; no NX (every
//                 page is executable); 32-bit physical addresses (no PAE, no PSE-36).
//   Aarch64Lower  VMSAv8-64 stage 1, 4 KiB granule, 48-bit VA, L0 -> L1 -> L2 -> L3: table
//   Aarch64Upper  descriptors, 1 GiB (L1) and 2 MiB (L2) blocks, AF, AP[2:1], UXN/PXN, nG,
//                 AttrIndx into MAIR_EL1 (kMair). Lower is the TTBR0 half (user), Upper the
//                 TTBR1 half (kernel); each root serves one half.
//
// Entries the engine writes: tables are permissive (the leaf decides), leaves carry exactly the
// PageFlags asked for. Bits the format does not model (accessed/dirty, software bits) are written
// as zero and preserved when a huge leaf is split.
module;

#include <ktl/macros.h>

export module mm.paging.formats;

import ktl;
import mm.addr;
import mm.paging.types;
export import mm.paging.x86;

export namespace mm::paging {

using ktl::u32;
using ktl::u64;
using ktl::usize;

enum class EntryKind : ktl::u8 { Empty, Table, Leaf };

template <class A, class... B>
inline constexpr bool is_one_of = (ktl::is_same<A, B> || ...);

namespace x86 {
// The memory types of PageFlags as indices into x86::kPat (mm.paging.x86).
[[nodiscard]] constexpr u64 pat_index(CacheMode c) {
  switch (c) {
    case CacheMode::WriteBack: return kPatWriteBack;
    case CacheMode::WriteThrough: return kPatWriteThrough;
    case CacheMode::Uncached: return kPatUncached;
    case CacheMode::WriteCombining: return kPatWriteCombining;
  }
  return kPatWriteBack;
}
[[nodiscard]] constexpr CacheMode cache_of_pat_index(u64 index) {
  switch (index & 7) {
    case 0:
    case 4: return CacheMode::WriteBack;
    case 1: return CacheMode::WriteThrough;
    case 5: return CacheMode::WriteCombining;
    default: return CacheMode::Uncached;  // 2, 6: UC-; 3, 7: UC
  }
}

// The parts X86_64 and X86_32 share: the entry width and whether NX exists differ.
template <class EntryT, bool kHasNx>
struct Common {
  using Entry = EntryT;
  static constexpr u64 kAttrBits = kWritable | kUser | kPwt | kPcd | kGlobal | (kHasNx ? kNoExecute : 0);

  [[nodiscard]] static constexpr EntryKind kind_at(Entry e, u32 level, u32 largest_leaf_level) {
    if ((e & kPresent) == 0) return EntryKind::Empty;
    if (level == 0) return EntryKind::Leaf;
    if (level <= largest_leaf_level && (e & kPageSize) != 0) return EntryKind::Leaf;
    return EntryKind::Table;
  }
  [[nodiscard]] static constexpr Entry leaf_bits(u32 level, PageFlags f) {
    u64 bits = kPresent;
    if (f.writable()) bits |= kWritable;
    if (f.user()) bits |= kUser;
    if (f.global()) bits |= kGlobal;
    if (kHasNx && !f.executable()) bits |= kNoExecute;
    bits |= pat_bits(pat_index(f.cache()), level == 0 ? LeafSize::Page4K : LeafSize::Large);
    if (level > 0) bits |= kPageSize;
    return static_cast<Entry>(bits);
  }
  [[nodiscard]] static constexpr PageFlags leaf_flags(Entry e, u32 level) {
    PageFlags f;
    if (e & kWritable) f = f.with(Access::ReadWrite);
    if (e & kUser) f = f.with(Privilege::User);
    if (e & kGlobal) f = f.with(Scope::Global);
    if (!kHasNx || (static_cast<u64>(e) & kNoExecute) == 0) f = f.with(Exec::Yes);
    return f.with(cache_of_pat_index(pat_index_of(e, level == 0 ? LeafSize::Page4K : LeafSize::Large)));
  }
  [[nodiscard]] static constexpr Entry table_bits() {
    return static_cast<Entry>(kPresent | kWritable | kUser);
  }
  // The MMU ANDs R/W and U/S and ORs XD over every level of the walk.
  [[nodiscard]] static constexpr PageFlags restrict(Entry table, PageFlags f) {
    if ((table & kWritable) == 0) f = f.with(Access::ReadOnly);
    if ((table & kUser) == 0) f = f.with(Privilege::Kernel);
    if (kHasNx && (static_cast<u64>(table) & kNoExecute) != 0) f = f.with(Exec::No);
    return f;
  }
  [[nodiscard]] static constexpr Entry relax_table(Entry e) {
    u64 v = static_cast<u64>(e) | kWritable | kUser;
    if (kHasNx) v &= ~kNoExecute;
    return static_cast<Entry>(v);
  }
};
}  // namespace x86

// --- x86_64, 4-level ---------------------------------------------------------------------------------
struct X86_64 : x86::Common<u64, true> {
  static constexpr const char* kName = "x86_64";
  static constexpr u32 kLevels = 4;
  static constexpr u32 kIndexBits = 9;
  static constexpr usize kEntries = 512;
  static constexpr u32 kLargestLeafLevel = 2;
  static constexpr u64 kPhysLimit = u64{1} << 52;
  static constexpr bool kRecursive = true;
  // Root slots [0, 256) translate the lower (user) half, [256, 512) the kernel half.
  static constexpr u32 kUserRootSlots = 256;
  static constexpr u64 kPat = x86::kPat;
  static constexpr u64 kAddrMask = x86::kAddrMask;

  template <PageSize S>
  static constexpr int kLevelOf = ktl::is_same<S, Size4K>   ? 0
                                  : ktl::is_same<S, Size2M> ? 1
                                  : ktl::is_same<S, Size1G> ? 2
                                                            : -1;

  [[nodiscard]] static constexpr bool virt_ok(VirtAddr) { return true; }  // canonical by construction
  [[nodiscard]] static constexpr EntryKind kind(Entry e, u32 level) {
    return kind_at(e, level, kLargestLeafLevel);
  }
  [[nodiscard]] static constexpr PhysAddr target(Entry e, u32 level) {
    if (level > 0 && (e & x86::kPageSize) != 0) {
      return PhysAddr::unchecked(e & kAddrMask & ~((u64{1} << (12 + 9 * level)) - 1));
    }
    return PhysAddr::unchecked(e & kAddrMask);
  }
  [[nodiscard]] static constexpr Entry table_entry(PhysAddr table) { return table.value() | table_bits(); }
  [[nodiscard]] static constexpr Entry leaf_entry(u32 level, PhysAddr frame, PageFlags f) {
    return frame.value() | leaf_bits(level, f);
  }
  // Supervisor, writable, not executable: the tables are data to the kernel, invisible to users.
  [[nodiscard]] static constexpr Entry self_entry(PhysAddr root) {
    return root.value() | x86::kPresent | x86::kWritable | x86::kNoExecute;
  }
  // The template of the first of kEntries leaves one level down that together map what the leaf
  // `e` at `level` mapped (the engine adds the offsets): same attributes, PAT bit moved.
  [[nodiscard]] static constexpr Entry split_leaf(Entry e, u32 level) {
    u64 attrs = e & ~kAddrMask & ~x86::kPageSize;  // low attributes and NX
    if (e & x86::kPatLarge) attrs |= level - 1 == 0 ? x86::kPat4K : x86::kPatLarge;
    if (level - 1 > 0) attrs |= x86::kPageSize;
    return target(e, level).value() | attrs;
  }
  [[nodiscard]] static constexpr PageFlags effective(PageFlags f) { return f; }
};

// --- x86 32-bit, 2-level (PSE) -----------------------------------------------------------------------
struct X86_32 : x86::Common<u32, false> {
  static constexpr const char* kName = "x86_32";
  static constexpr u32 kLevels = 2;
  static constexpr u32 kIndexBits = 10;
  static constexpr usize kEntries = 1024;
  static constexpr u32 kLargestLeafLevel = 1;
  static constexpr u64 kPhysLimit = u64{1} << 32;
  static constexpr bool kRecursive = true;
  // The classic 3 GiB / 1 GiB split: PD slots [768, 1024) are the kernel's.
  static constexpr u32 kUserRootSlots = 768;
  static constexpr u64 kPat = x86::kPat;

  template <PageSize S>
  static constexpr int kLevelOf = ktl::is_same<S, Size4K>   ? 0
                                  : ktl::is_same<S, Size4M> ? 1
                                                            : -1;

  [[nodiscard]] static constexpr bool virt_ok(VirtAddr v) { return v.value() <= 0xffff'ffffull; }
  [[nodiscard]] static constexpr EntryKind kind(Entry e, u32 level) {
    return kind_at(e, level, kLargestLeafLevel);
  }
  [[nodiscard]] static constexpr PhysAddr target(Entry e, u32 level) {
    if (level == 1 && (e & x86::kPageSize) != 0) return PhysAddr::unchecked(e & 0xffc0'0000u);
    return PhysAddr::unchecked(e & 0xffff'f000u);
  }
  [[nodiscard]] static constexpr Entry table_entry(PhysAddr table) {
    return static_cast<Entry>(table.value()) | table_bits();
  }
  [[nodiscard]] static constexpr Entry leaf_entry(u32 level, PhysAddr frame, PageFlags f) {
    return static_cast<Entry>(frame.value()) | leaf_bits(level, f);
  }
  [[nodiscard]] static constexpr Entry self_entry(PhysAddr root) {
    return static_cast<Entry>(root.value() | x86::kPresent | x86::kWritable);
  }
  [[nodiscard]] static constexpr Entry split_leaf(Entry e, u32 level) {
    u32 attrs = e & 0xfffu & ~static_cast<u32>(x86::kPageSize);
    if (e & x86::kPatLarge) attrs |= static_cast<u32>(x86::kPat4K);
    return static_cast<Entry>(target(e, level).value()) | attrs;
  }
  // No NX without PAE: everything that is mapped is executable.
  [[nodiscard]] static constexpr PageFlags effective(PageFlags f) { return f.with(Exec::Yes); }
};

// --- aarch64, 4 KiB granule, 4 levels ----------------------------------------------------------------
namespace a64 {
// Arm ARM D8.3 (VMSAv8-64 translation table descriptor formats).
inline constexpr u64 kValid = u64{1} << 0;
inline constexpr u64 kTableOrPage = u64{1} << 1;
inline constexpr u32 kAttrIndxShift = 2;
inline constexpr u64 kApEl0 = u64{1} << 6;       // AP[1]: EL0 access
inline constexpr u64 kApReadOnly = u64{1} << 7;  // AP[2]
inline constexpr u64 kShInner = u64{3} << 8;
inline constexpr u64 kAf = u64{1} << 10;
inline constexpr u64 kNotGlobal = u64{1} << 11;
inline constexpr u64 kPxn = u64{1} << 53;
inline constexpr u64 kUxn = u64{1} << 54;
inline constexpr u64 kPxnTable = u64{1} << 59;
inline constexpr u64 kUxnTable = u64{1} << 60;
inline constexpr u64 kApTableNoEl0 = u64{1} << 61;
inline constexpr u64 kApTableReadOnly = u64{1} << 62;
inline constexpr u64 kAddrMask = 0x0000'ffff'ffff'f000ull;

// MAIR_EL1 the aarch64 kernel programs: Attr0 = 0xff (Normal, WB RW-allocate), Attr1 = 0xbb
// (Normal, WT RW-allocate), Attr2 = 0x44 (Normal, non-cacheable: write-combining), Attr3 = 0x00
// (Device-nGnRnE: uncached).
inline constexpr u64 kMair = 0x0000'0000'0044'bbffull;

[[nodiscard]] constexpr u64 attr_index(CacheMode c) {
  switch (c) {
    case CacheMode::WriteBack: return 0;
    case CacheMode::WriteThrough: return 1;
    case CacheMode::WriteCombining: return 2;
    case CacheMode::Uncached: return 3;
  }
  return 0;
}
[[nodiscard]] constexpr CacheMode cache_of_attr_index(u64 i) {
  switch (i) {
    case 0: return CacheMode::WriteBack;
    case 1: return CacheMode::WriteThrough;
    case 2: return CacheMode::WriteCombining;
    default: return CacheMode::Uncached;
  }
}

template <bool kUpper>
struct Format {
  using Entry = u64;
  static constexpr const char* kName = kUpper ? "aarch64-ttbr1" : "aarch64-ttbr0";
  static constexpr u32 kLevels = 4;
  static constexpr u32 kIndexBits = 9;
  static constexpr usize kEntries = 512;
  static constexpr u32 kLargestLeafLevel = 2;
  static constexpr u64 kPhysLimit = u64{1} << 48;
  static constexpr bool kRecursive = false;
  // Separate roots per half: a TTBR0 root is all user, a TTBR1 root all kernel; nothing shared.
  static constexpr u32 kUserRootSlots = kUpper ? 0 : 512;
  static constexpr u64 kMair = a64::kMair;

  template <PageSize S>
  static constexpr int kLevelOf = ktl::is_same<S, Size4K>   ? 0
                                  : ktl::is_same<S, Size2M> ? 1
                                  : ktl::is_same<S, Size1G> ? 2
                                                            : -1;

  // VirtAddr is 48-bit canonical, so the TTBR1 half in use is [0xffff8000'00000000, 2^64):
  // root slots 256..511 of a TTBR1 table. FIXME(aarch64): VirtAddr cannot name the lower half of
  // the TTBR1 region (0xffff0000'00000000..); the aarch64 port needs its own canonical rule.
  [[nodiscard]] static constexpr bool virt_ok(VirtAddr v) { return v.is_higher_half() == kUpper; }

  [[nodiscard]] static constexpr EntryKind kind(Entry e, u32 level) {
    if ((e & kValid) == 0) return EntryKind::Empty;
    bool bit1 = (e & kTableOrPage) != 0;
    if (level == 0) return bit1 ? EntryKind::Leaf : EntryKind::Empty;   // 0b01 at L3 is reserved
    if (level == 3) return bit1 ? EntryKind::Table : EntryKind::Empty;  // no L0 blocks with 4 KiB
    return bit1 ? EntryKind::Table : EntryKind::Leaf;
  }
  [[nodiscard]] static constexpr PhysAddr target(Entry e, u32 level) {
    if (level > 0 && (e & kTableOrPage) == 0) {
      return PhysAddr::unchecked(e & kAddrMask & ~((u64{1} << (12 + 9 * level)) - 1));
    }
    return PhysAddr::unchecked(e & kAddrMask);
  }
  [[nodiscard]] static constexpr Entry table_entry(PhysAddr table) {
    return table.value() | kValid | kTableOrPage;
  }
  [[nodiscard]] static constexpr Entry leaf_entry(u32 level, PhysAddr frame, PageFlags f) {
    u64 bits = kValid | kAf | (attr_index(f.cache()) << kAttrIndxShift);
    if (level == 0) bits |= kTableOrPage;
    if (f.cache() != CacheMode::Uncached) bits |= kShInner;  // Device memory ignores SH
    if (f.user()) bits |= kApEl0;
    if (!f.writable()) bits |= kApReadOnly;
    if (!f.global()) bits |= kNotGlobal;
    // The kernel never executes user pages, users never execute kernel pages.
    if (f.user()) {
      bits |= kPxn;
      if (!f.executable()) bits |= kUxn;
    } else {
      bits |= kUxn;
      if (!f.executable()) bits |= kPxn;
    }
    return frame.value() | bits;
  }
  [[nodiscard]] static constexpr PageFlags leaf_flags(Entry e, u32) {
    PageFlags f;
    bool user = (e & kApEl0) != 0;
    if (user) f = f.with(Privilege::User);
    if ((e & kApReadOnly) == 0) f = f.with(Access::ReadWrite);
    if ((e & kNotGlobal) == 0) f = f.with(Scope::Global);
    if ((e & (user ? kUxn : kPxn)) == 0) f = f.with(Exec::Yes);
    return f.with(cache_of_attr_index((e >> kAttrIndxShift) & 7));
  }
  [[nodiscard]] static constexpr PageFlags restrict(Entry table, PageFlags f) {
    if (table & kApTableReadOnly) f = f.with(Access::ReadOnly);
    if (table & kApTableNoEl0) f = f.with(Privilege::Kernel);
    if (table & (f.user() ? kUxnTable : kPxnTable)) f = f.with(Exec::No);
    return f;
  }
  [[nodiscard]] static constexpr Entry relax_table(Entry e) {
    return e & ~(kPxnTable | kUxnTable | kApTableNoEl0 | kApTableReadOnly);
  }
  [[nodiscard]] static constexpr Entry split_leaf(Entry e, u32 level) {
    u64 attrs = e & ~kAddrMask;
    if (level - 1 == 0) attrs |= kTableOrPage;  // block -> page descriptor
    return target(e, level).value() | attrs;
  }
  [[nodiscard]] static constexpr PageFlags effective(PageFlags f) { return f; }
};
}  // namespace a64

using Aarch64Lower = a64::Format<false>;
using Aarch64Upper = a64::Format<true>;

}  // namespace mm::paging
