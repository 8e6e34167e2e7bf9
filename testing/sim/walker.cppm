// sim.walker: an independent software MMU for host tests.
//
// It decodes page tables in simulated physical memory the way the hardware does, straight from
// the architecture manuals' bit layouts, and shares no code with the engine (mm.paging): it is the
// referee that checks every translation the engine claims.
//
//   x86_64   Intel SDM vol. 3A, 4.5 (4-level paging): PML4E/PDPTE/PDE/PTE, PS at the PDPTE (1 GiB)
//            and PDE (2 MiB), reserved bits, R/W and U/S ANDed and XD ORed over the walk,
//            IA32_PAT lookup with PAT:PCD:PWT (PAT is bit 12 in PS entries, bit 7 in PTEs).
//   x86_32   Intel SDM vol. 3A, 4.3 (32-bit paging, CR4.PSE=1): 4 MiB PDEs with PSE-36 bits.
//   aarch64  Arm ARM D8 (VMSAv8-64, 4 KiB granule, TnSZ = 16): table/block/page descriptors,
//            AF, AP[2:1] with APTable, UXN/PXN with UXNTable/PXNTable, MAIR_EL1 attribute
//            decoding, and "writable at EL0 implies PXN".
//
// Host only (std is fine here).
module;

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

export module sim.walker;

// The walker judges the fuzzers' page tables; it is not their target, so a fuzzer build does not
// instrument it for coverage (libFuzzer's comparison hooks on every entry it decodes).
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

import ktl;
import mm.addr;
import mm.arch;

export namespace sim {

enum class Mmu { X86_64, X86_32, Aarch64 };

enum class MemType {
  WriteBack,
  WriteThrough,
  WriteProtect,
  WriteCombining,
  UncachedMinus,
  Uncached,
  NormalNonCacheable,  // aarch64 Normal Inner/Outer Non-cacheable
  Device,              // aarch64 Device-* (which kind is in WalkResult::device_kind)
  Invalid,             // a PAT/MAIR encoding the manuals reserve
};

enum class Fault {
  None,
  NotPresent,     // P = 0 / descriptor bit 0 = 0
  ReservedBit,    // a must-be-zero bit is set
  BadDescriptor,  // an encoding the level does not allow (aarch64 block at L0, 0b01 at L3)
  AccessFlag,     // aarch64 leaf with AF = 0
  AddressSize,    // the virtual address is outside the translated range / wrong half
};

struct MmuConfig {
  Mmu mmu = Mmu::X86_64;
  std::uint64_t pat = 0x0007'0406'0007'0406ull;  // IA32_PAT (power-on default unless set)
  std::uint64_t mair = 0;                        // MAIR_EL1
  bool nxe = true;                               // IA32_EFER.NXE
  bool upper_half = false;                       // aarch64: the root is TTBR1_EL1
};

struct WalkResult {
  Fault fault = Fault::NotPresent;
  int fault_level = -1;  // the table level (4..1 on x86_64, 2..1 on x86_32, 0..3 on aarch64)
  std::uint64_t phys = 0;
  std::uint64_t page_va = 0;
  std::uint64_t page_size = 0;
  bool writable = false;     // writes allowed (supervisor with CR0.WP=1 / EL1)
  bool user = false;         // user-mode (EL0) access allowed
  bool exec_user = false;    // instruction fetch allowed at CPL3 / EL0
  bool exec_kernel = false;  // ... at CPL0 / EL1
  bool global = false;
  MemType memtype = MemType::Invalid;
  unsigned device_kind = 0;   // aarch64 Device-nGnRnE = 0, nGnRE = 1, nGRE = 2, GRE = 3
  unsigned shareability = 0;  // aarch64 SH[1:0] of the leaf
  // Physical addresses of the tables walked, root first (a fixed array: walks are hot in tests).
  std::array<std::uint64_t, 4> tables{};
  unsigned depth = 0;
  inline void push_table(std::uint64_t t) { tables.at(depth++) = t; }
  [[nodiscard]] inline std::vector<std::uint64_t> table_list() const {
    return std::vector<std::uint64_t>(tables.begin(), tables.begin() + depth);
  }

  [[nodiscard]] inline bool ok() const { return fault == Fault::None; }
};

[[nodiscard]] const char* to_string(Fault f);
[[nodiscard]] const char* to_string(MemType m);
[[nodiscard]] std::string describe(const WalkResult& r);

// Translates `va` with the tables rooted at physical `root`.
[[nodiscard]] WalkResult walk(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root,
                              std::uint64_t va);

struct LeafInfo {
  std::uint64_t va;    // first address of the leaf (canonical form)
  std::uint64_t size;  // bytes
  WalkResult walk;     // the walk of `va`
};
// Every leaf reachable from `root`, in address order, with its full walk. A table entry that points
// at a table already on the current path (the recursive self-reference) is not followed.
[[nodiscard]] std::vector<LeafInfo> leaves(const mm::PhysWindow& mem, const MmuConfig& cfg,
                                           std::uint64_t root);
// The number of distinct table frames reachable from `root`, the root included.
[[nodiscard]] std::size_t table_count(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root);

// One pass for a whole-tree check: every leaf's first address and size (as `leaves`, without the
// walks, which the caller makes its own way) and the number of distinct tables (as `table_count`).
struct Census {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> leaves;  // (va, size), in address order
  std::size_t tables = 0;
};
[[nodiscard]] Census census(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root);

// A load of `bytes` (1..8, naturally aligned) bytes at `va` through the simulated MMU: nullopt on
// a fault. Reading a recursive-window address returns the page-table entry it aliases.
[[nodiscard]] std::optional<std::uint64_t> load(const mm::PhysWindow& mem, const MmuConfig& cfg,
                                                std::uint64_t root, std::uint64_t va, unsigned bytes);

}  // namespace sim

namespace sim {
namespace {

constexpr std::uint64_t bit(std::uint64_t v, unsigned n) { return (v >> n) & 1; }
// Bits [hi:lo] of v, shifted down.
constexpr std::uint64_t field(std::uint64_t v, unsigned hi, unsigned lo) {
  return (v >> lo) & ((hi - lo == 63) ? ~0ull : ((1ull << (hi - lo + 1)) - 1));
}
// Bits [hi:lo] of v, in place.
constexpr std::uint64_t mask_in_place(std::uint64_t v, unsigned hi, unsigned lo) {
  return field(v, hi, lo) << lo;
}

// One bounds-checked view of the bytes, then one copy: the walker reads every entry of every table
// when it enumerates a tree, and a checked access per byte made that the fuzzers' largest cost.
std::uint64_t read_phys(const mm::PhysWindow& mem, std::uint64_t pa, unsigned bytes) {
  ktl::Span<ktl::u8> b = mem.bytes(mm::PhysAddr::from(pa), bytes);
  std::uint64_t v = 0;
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the host reads entries in place");
  __builtin_memcpy(&v, b.data(),
                   b.size() < sizeof v ? b.size() : sizeof v);  // little-endian, like the tables
  return v;
}

MemType pat_type(std::uint64_t pat, unsigned index) {
  switch (field(pat, index * 8 + 7, index * 8)) {
    case 0x00: return MemType::Uncached;
    case 0x01: return MemType::WriteCombining;
    case 0x04: return MemType::WriteThrough;
    case 0x05: return MemType::WriteProtect;
    case 0x06: return MemType::WriteBack;
    case 0x07: return MemType::UncachedMinus;
    default: return MemType::Invalid;
  }
}

// --- x86 (both modes) -------------------------------------------------------------------------------------
WalkResult walk_x86_64(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root,
                       std::uint64_t va) {
  WalkResult r;
  // Canonical: bits 63:47 all equal.
  std::uint64_t top = va >> 47;
  if (top != 0 && top != 0x1ffff) {
    r.fault = Fault::AddressSize;
    return r;
  }
  bool rw = true, us = true, xd = false;
  std::uint64_t table = root & 0x000f'ffff'ffff'f000ull;
  // Level 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT (the SDM's naming order).
  for (int level = 4; level >= 1; --level) {
    r.push_table(table);
    unsigned lo_bit = 12 + 9 * (level - 1);
    std::uint64_t index = field(va, lo_bit + 8, lo_bit);
    std::uint64_t e = read_phys(mem, table + index * 8, 8);
    r.fault_level = level;
    if (!bit(e, 0)) {
      r.fault = Fault::NotPresent;
      return r;
    }
    if (!cfg.nxe && bit(e, 63)) {
      r.fault = Fault::ReservedBit;
      return r;
    }
    rw = rw && bit(e, 1);
    us = us && bit(e, 2);
    xd = xd || (cfg.nxe && bit(e, 63));
    bool ps = level != 1 && bit(e, 7);
    if (level == 4 && bit(e, 7)) {  // PS is reserved in a PML4E
      r.fault = Fault::ReservedBit;
      return r;
    }
    if (level == 1 || ps) {
      std::uint64_t size = 1ull << lo_bit;
      std::uint64_t frame;
      unsigned pat_bit;
      if (level == 1) {
        frame = mask_in_place(e, 51, 12);
        pat_bit = 7;
      } else {
        // Bits [lo_bit-1 : 13] are reserved in a PS entry; bit 12 is PAT.
        if (field(e, lo_bit - 1, 13) != 0) {
          r.fault = Fault::ReservedBit;
          return r;
        }
        frame = mask_in_place(e, 51, lo_bit);
        pat_bit = 12;
      }
      unsigned pat_index = static_cast<unsigned>(bit(e, pat_bit) << 2 | bit(e, 4) << 1 | bit(e, 3));
      r.fault = Fault::None;
      r.page_size = size;
      r.page_va = va & ~(size - 1);
      r.phys = frame | (va & (size - 1));
      r.writable = rw;
      r.user = us;
      r.exec_user = r.exec_kernel = !xd;
      r.global = bit(e, 8);
      r.memtype = pat_type(cfg.pat, pat_index);
      return r;
    }
    table = mask_in_place(e, 51, 12);
  }
  return r;
}

WalkResult walk_x86_32(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root,
                       std::uint64_t va) {
  WalkResult r;
  if (va > 0xffff'ffffull) {
    r.fault = Fault::AddressSize;
    return r;
  }
  std::uint64_t pd = root & 0xffff'f000ull;
  r.push_table(pd);
  r.fault_level = 2;
  std::uint64_t pde = read_phys(mem, pd + field(va, 31, 22) * 4, 4);
  if (!bit(pde, 0)) {
    r.fault = Fault::NotPresent;
    return r;
  }
  bool rw = bit(pde, 1), us = bit(pde, 2);
  if (bit(pde, 7)) {  // 4 MiB page (CR4.PSE = 1)
    if (bit(pde, 21)) {
      r.fault = Fault::ReservedBit;
      return r;
    }
    // PSE-36: PDE bits 20:13 are physical address bits 39:32.
    std::uint64_t frame = mask_in_place(pde, 31, 22) | (field(pde, 20, 13) << 32);
    unsigned pat_index = static_cast<unsigned>(bit(pde, 12) << 2 | bit(pde, 4) << 1 | bit(pde, 3));
    r.fault = Fault::None;
    r.page_size = 4ull << 20;
    r.page_va = va & ~(r.page_size - 1);
    r.phys = frame | (va & (r.page_size - 1));
    r.writable = rw;
    r.user = us;
    r.exec_user = r.exec_kernel = true;  // no XD in 32-bit paging
    r.global = bit(pde, 8);
    r.memtype = pat_type(cfg.pat, pat_index);
    return r;
  }
  std::uint64_t pt = mask_in_place(pde, 31, 12);
  r.push_table(pt);
  r.fault_level = 1;
  std::uint64_t pte = read_phys(mem, pt + field(va, 21, 12) * 4, 4);
  if (!bit(pte, 0)) {
    r.fault = Fault::NotPresent;
    return r;
  }
  unsigned pat_index = static_cast<unsigned>(bit(pte, 7) << 2 | bit(pte, 4) << 1 | bit(pte, 3));
  r.fault = Fault::None;
  r.page_size = 4096;
  r.page_va = va & ~0xfffull;
  r.phys = mask_in_place(pte, 31, 12) | (va & 0xfff);
  r.writable = rw && bit(pte, 1);
  r.user = us && bit(pte, 2);
  r.exec_user = r.exec_kernel = true;
  r.global = bit(pte, 8);
  r.memtype = pat_type(cfg.pat, pat_index);
  return r;
}

// --- aarch64 ----------------------------------------------------------------------------------------------
void decode_mair(std::uint64_t mair, unsigned index, WalkResult& r) {
  unsigned attr = static_cast<unsigned>(field(mair, index * 8 + 7, index * 8));
  unsigned outer = attr >> 4, inner = attr & 0xf;
  if (outer == 0) {
    // Device memory: 0b0000dd00.
    if ((inner & 0b0011) != 0) {
      r.memtype = MemType::Invalid;
      return;
    }
    r.memtype = MemType::Device;
    r.device_kind = inner >> 2;
    return;
  }
  auto kind = [](unsigned nibble) {
    if (nibble == 0b0100) return MemType::NormalNonCacheable;
    unsigned policy = nibble >> 2;  // 00 WT transient, 01 WB transient, 10 WT, 11 WB (with RW != 00 for 0x)
    if (policy == 0b00 || policy == 0b10) return MemType::WriteThrough;
    return MemType::WriteBack;
  };
  if (inner == 0) {
    r.memtype = MemType::Invalid;  // UNPREDICTABLE
    return;
  }
  MemType o = kind(outer), i = kind(inner);
  r.memtype = (o == i) ? i : MemType::Invalid;  // mixed inner/outer: not used by the kernel
}

WalkResult walk_aarch64(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root,
                        std::uint64_t va) {
  WalkResult r;
  // TnSZ = 16: TTBR0 takes VA[63:48] == 0, TTBR1 takes VA[63:48] == 0xffff.
  std::uint64_t top = va >> 48;
  if (top != (cfg.upper_half ? 0xffffull : 0)) {
    r.fault = Fault::AddressSize;
    return r;
  }
  bool ap_no_el0 = false, ap_read_only = false, uxn_table = false, pxn_table = false;
  std::uint64_t table = mask_in_place(root, 47, 12);
  for (int level = 0; level <= 3; ++level) {  // the Arm ARM's lookup levels 0..3
    r.push_table(table);
    unsigned lo_bit = 39 - 9 * level;
    std::uint64_t d = read_phys(mem, table + field(va, lo_bit + 8, lo_bit) * 8, 8);
    r.fault_level = level;
    if (!bit(d, 0)) {
      r.fault = Fault::NotPresent;
      return r;
    }
    bool type_bit = bit(d, 1);
    if (level < 3 && type_bit) {  // table descriptor
      ap_no_el0 = ap_no_el0 || bit(d, 61);
      ap_read_only = ap_read_only || bit(d, 62);
      uxn_table = uxn_table || bit(d, 60);
      pxn_table = pxn_table || bit(d, 59);
      table = mask_in_place(d, 47, 12);
      continue;
    }
    if (level == 0 || (level == 3 && !type_bit)) {  // no L0 blocks with 4 KiB granule; 0b01 at L3 reserved
      r.fault = Fault::BadDescriptor;
      return r;
    }
    std::uint64_t size = 1ull << lo_bit;
    // Output address bits below the block size (down to 12) are RES0 (nT at bit 16 unused here).
    if (level < 3 && field(d, lo_bit - 1, 12) != 0) {
      r.fault = Fault::ReservedBit;
      return r;
    }
    if (!bit(d, 10)) {
      r.fault = Fault::AccessFlag;
      return r;
    }
    bool ap1 = bit(d, 6), ap2 = bit(d, 7);
    r.fault = Fault::None;
    r.page_size = size;
    r.page_va = va & ~(size - 1);
    r.phys = mask_in_place(d, 47, lo_bit) | (va & (size - 1));
    r.user = ap1 && !ap_no_el0;
    r.writable = !ap2 && !ap_read_only;
    bool el0_writable = r.user && r.writable;
    r.exec_user = !bit(d, 54) && !uxn_table;
    r.exec_kernel = !bit(d, 53) && !pxn_table && !el0_writable;
    r.global = !bit(d, 11);
    r.shareability = static_cast<unsigned>(field(d, 9, 8));
    decode_mair(cfg.mair, static_cast<unsigned>(field(d, 4, 2)), r);
    return r;
  }
  return r;
}

// --- enumeration ------------------------------------------------------------------------------------------
struct Geometry {
  int levels;
  unsigned entry_bytes;
  unsigned entries;
  unsigned index_bits;
  unsigned va_bits;
};
Geometry geometry(Mmu m) {
  switch (m) {
    case Mmu::X86_64: return {4, 8, 512, 9, 48};
    case Mmu::X86_32: return {2, 4, 1024, 10, 32};
    case Mmu::Aarch64: return {4, 8, 512, 9, 48};
  }
  return {};
}
// What an entry is, for enumeration. depth 0 is the root.
enum class Kind { Invalid, Table, Leaf };
Kind classify(Mmu m, int depth, int levels, std::uint64_t e) {
  bool last = depth == levels - 1;
  switch (m) {
    case Mmu::X86_64:
      if (!bit(e, 0)) return Kind::Invalid;
      if (last) return Kind::Leaf;
      if (bit(e, 7)) return depth == 0 ? Kind::Invalid : Kind::Leaf;  // PS is reserved in a PML4E
      return Kind::Table;
    case Mmu::X86_32:
      if (!bit(e, 0)) return Kind::Invalid;
      if (last || bit(e, 7)) return Kind::Leaf;  // a PDE with PS maps 4 MiB
      return Kind::Table;
    case Mmu::Aarch64:
      if (!bit(e, 0)) return Kind::Invalid;
      if (last) return bit(e, 1) ? Kind::Leaf : Kind::Invalid;
      if (bit(e, 1)) return Kind::Table;
      return depth == 0 ? Kind::Invalid : Kind::Leaf;
  }
  return Kind::Invalid;
}
std::uint64_t table_address(Mmu m, std::uint64_t e) {
  return m == Mmu::X86_32 ? mask_in_place(e, 31, 12) : mask_in_place(e, m == Mmu::Aarch64 ? 47 : 51, 12);
}
std::uint64_t canonical(const MmuConfig& cfg, std::uint64_t va) {
  if (cfg.mmu == Mmu::X86_32) return va;
  if (cfg.mmu == Mmu::Aarch64) return cfg.upper_half ? (va | 0xffff'0000'0000'0000ull) : va;
  return bit(va, 47) ? (va | 0xffff'0000'0000'0000ull) : va;
}

template <class Fn>
void dfs(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t table, int depth, std::uint64_t base,
         std::vector<std::uint64_t>& path, Fn& on_leaf, std::set<std::uint64_t>* tables) {
  Geometry g = geometry(cfg.mmu);
  if (tables != nullptr) tables->insert(table);
  path.push_back(table);
  unsigned shift = 12 + g.index_bits * static_cast<unsigned>(g.levels - 1 - depth);
  // The whole table at once (one bounds-checked view, one copy), then its entries from the copy.
  std::uint64_t words[512];
  ktl::Span<ktl::u8> bytes = mem.bytes(mm::PhysAddr::from(table), g.entries * g.entry_bytes);
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the host reads entries in place");
  ktl::check(bytes.size() == sizeof words, "sim walker: a table is not one 4 KiB frame");
  __builtin_memcpy(words, bytes.data(), sizeof words);
  for (unsigned i = 0; i < g.entries; ++i) {
    std::uint64_t e = g.entry_bytes == 8 ? words[i] : (words[i / 2] >> (32 * (i % 2))) & 0xffff'ffffull;
    std::uint64_t va = base | (static_cast<std::uint64_t>(i) << shift);
    switch (classify(cfg.mmu, depth, g.levels, e)) {
      case Kind::Invalid: break;
      case Kind::Leaf: on_leaf(canonical(cfg, va), 1ull << shift); break;
      case Kind::Table: {
        std::uint64_t next = table_address(cfg.mmu, e);
        bool on_path = false;
        for (std::uint64_t p : path) on_path = on_path || p == next;
        if (!on_path) dfs(mem, cfg, next, depth + 1, va, path, on_leaf, tables);
        break;
      }
    }
  }
  path.pop_back();
}

}  // namespace

const char* to_string(Fault f) {
  switch (f) {
    case Fault::None: return "none";
    case Fault::NotPresent: return "not-present";
    case Fault::ReservedBit: return "reserved-bit";
    case Fault::BadDescriptor: return "bad-descriptor";
    case Fault::AccessFlag: return "access-flag";
    case Fault::AddressSize: return "address-size";
  }
  return "?";
}

const char* to_string(MemType m) {
  switch (m) {
    case MemType::WriteBack: return "WB";
    case MemType::WriteThrough: return "WT";
    case MemType::WriteProtect: return "WP";
    case MemType::WriteCombining: return "WC";
    case MemType::UncachedMinus: return "UC-";
    case MemType::Uncached: return "UC";
    case MemType::NormalNonCacheable: return "Normal-NC";
    case MemType::Device: return "Device";
    case MemType::Invalid: return "invalid";
  }
  return "?";
}

std::string describe(const WalkResult& r) {
  char buf[256];
  if (!r.ok()) {
    std::snprintf(buf, sizeof buf, "fault %s at level %d", to_string(r.fault), r.fault_level);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "page %#llx (+%#llx) -> %#llx %s%s%s%s%s%s %s",
                static_cast<unsigned long long>(r.page_va), static_cast<unsigned long long>(r.page_size),
                static_cast<unsigned long long>(r.phys), r.user ? "U" : "K", r.writable ? "W" : "-",
                r.exec_user ? "x" : "-", r.exec_kernel ? "X" : "-", r.global ? "G" : "",
                r.shareability != 0 ? " sh" : "", to_string(r.memtype));
  return buf;
}

WalkResult walk(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root, std::uint64_t va) {
  switch (cfg.mmu) {
    case Mmu::X86_64: return walk_x86_64(mem, cfg, root, va);
    case Mmu::X86_32: return walk_x86_32(mem, cfg, root, va);
    case Mmu::Aarch64: return walk_aarch64(mem, cfg, root, va);
  }
  return {};
}

std::vector<LeafInfo> leaves(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root) {
  std::vector<LeafInfo> out;
  std::vector<std::uint64_t> path;
  auto on_leaf = [&](std::uint64_t va, std::uint64_t size) {
    out.push_back({va, size, walk(mem, cfg, root, va)});
  };
  std::uint64_t table = cfg.mmu == Mmu::X86_32 ? (root & 0xffff'f000ull) : table_address(cfg.mmu, root);
  dfs(mem, cfg, table, 0, 0, path, on_leaf, nullptr);
  return out;
}

std::size_t table_count(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root) {
  std::set<std::uint64_t> tables;
  std::vector<std::uint64_t> path;
  auto ignore = [](std::uint64_t, std::uint64_t) {};
  std::uint64_t table = cfg.mmu == Mmu::X86_32 ? (root & 0xffff'f000ull) : table_address(cfg.mmu, root);
  dfs(mem, cfg, table, 0, 0, path, ignore, &tables);
  return tables.size();
}

Census census(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root) {
  Census out;
  std::set<std::uint64_t> tables;
  std::vector<std::uint64_t> path;
  auto on_leaf = [&](std::uint64_t va, std::uint64_t size) { out.leaves.emplace_back(va, size); };
  std::uint64_t table = cfg.mmu == Mmu::X86_32 ? (root & 0xffff'f000ull) : table_address(cfg.mmu, root);
  dfs(mem, cfg, table, 0, 0, path, on_leaf, &tables);
  out.tables = tables.size();
  return out;
}

std::optional<std::uint64_t> load(const mm::PhysWindow& mem, const MmuConfig& cfg, std::uint64_t root,
                                  std::uint64_t va, unsigned bytes) {
  if (bytes == 0 || bytes > 8 || (va & (bytes - 1)) != 0) return std::nullopt;
  WalkResult r = walk(mem, cfg, root, va);
  if (!r.ok()) return std::nullopt;
  if (!mem.covers(mm::PhysAddr::from(r.phys), bytes)) return std::nullopt;  // not simulated RAM
  return read_phys(mem, r.phys, bytes);
}

}  // namespace sim

#pragma clang attribute pop
