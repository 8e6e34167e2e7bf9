// arch.x86_64.paging: reading the live 4-level page tables (translation of one address).
//
// The kernel has no mapper of its own yet (mm builds one); this module only walks the tables the
// loader built, through the direct map, to answer "is this address mapped, and how": the
// framebuffer check, the panic report and the TLB tests use it. Contract: `direct_map_base` maps
// all physical memory that holds page tables (boot::layout::kDirectMapBase).
module;

#include <ktl/macros.h>

export module arch.x86_64.paging;

import ktl;
import arch.x86_64.cpu;

export namespace arch::x86_64 {

namespace pte {
inline constexpr u64 kPresent = u64{1} << 0;
inline constexpr u64 kWritable = u64{1} << 1;
inline constexpr u64 kUser = u64{1} << 2;
inline constexpr u64 kHuge = u64{1} << 7;
inline constexpr u64 kGlobal = u64{1} << 8;
inline constexpr u64 kNoExecute = u64{1} << 63;
inline constexpr u64 kAddressMask = 0x000f'ffff'ffff'f000ull;
}  // namespace pte

struct Translation {
  u64 phys;         // the physical address `virt` translates to
  u64 page_size;    // 4 KiB, 2 MiB or 1 GiB
  bool writable;    // every level allows writes
  bool user;        // every level allows user access
  bool no_execute;  // some level forbids execution (only effective with EFER.NXE)
  bool global;
  u64* entry;  // the leaf entry, through the direct map (tests edit it and flush)
};

// Walks the tables rooted at CR3; nullopt if `virt` is not mapped.
[[nodiscard]] ktl::Optional<Translation> translate(u64 virt, u64 direct_map_base);

}  // namespace arch::x86_64
