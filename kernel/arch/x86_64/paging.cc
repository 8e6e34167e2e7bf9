module;

#include <ktl/macros.h>

module arch.x86_64.paging;

import ktl;
import arch.x86_64.cpu;

namespace arch::x86_64 {

ktl::Optional<Translation> translate(u64 virt, u64 direct_map_base) {
  u64 table_phys = read_cr3() & pte::kAddressMask;
  bool writable = true;
  bool user = true;
  bool no_execute = false;
  for (u32 level = 4; level >= 1; --level) {
    u32 shift = 12 + 9 * (level - 1);
    auto index = static_cast<ktl::usize>((virt >> shift) & 511);
    // The direct map covers every table (contract above); from_raw is the one unchecked step.
    auto table = ktl::Span<u64>::from_raw(reinterpret_cast<u64*>(direct_map_base + table_phys), 512);
    u64& e = table[index];
    if ((e & pte::kPresent) == 0) return ktl::nullopt;
    writable = writable && (e & pte::kWritable) != 0;
    user = user && (e & pte::kUser) != 0;
    no_execute = no_execute || (e & pte::kNoExecute) != 0;
    bool leaf = level == 1 || (level <= 3 && (e & pte::kHuge) != 0);
    if (leaf) {
      u64 size = u64{1} << shift;
      u64 frame = e & pte::kAddressMask & ~(size - 1);
      return Translation{frame | (virt & (size - 1)), size, writable, user, no_execute,
                         (e & pte::kGlobal) != 0,     &e};
    }
    table_phys = e & pte::kAddressMask;
  }
  return ktl::nullopt;
}

}  // namespace arch::x86_64
