// The x86_64 implementation of mm.arch's TLB and address-space hooks (declared in mm/base/arch.cppm).
// Contract (mm.arch): called with interrupts off or from code that owns the address space;
// local CPU only. FIXME(smp): shootdowns.
#include <ktl/macros.h>

import ktl;
import mm.arch;
import arch.x86_64.cpu;

namespace {
// Beyond this many pages one full flush is cheaper than a run of invlpg.
constexpr ktl::u64 kInvlpgLimit = 64;
constexpr ktl::u64 kPage = 4096;
constexpr ktl::u64 kRootMask = 0x000f'ffff'ffff'f000ull;
}  // namespace

extern "C" void ferrite_arch_flush_tlb_all() {
  using namespace arch::x86_64;
  ktl::u64 cr4v = read_cr4();
  if ((cr4v & cr4::kPge) != 0) {
    // Toggling CR4.PGE flushes every entry, global ones included (SDM vol. 3, 4.10.4.1).
    write_cr4(cr4v & ~cr4::kPge);
    write_cr4(cr4v);
  } else {
    write_cr3(read_cr3());
  }
}

extern "C" void ferrite_arch_flush_tlb_range(ktl::u64 virt_start, ktl::u64 pages) {
  if (pages > kInvlpgLimit) {
    ferrite_arch_flush_tlb_all();
    return;
  }
  ktl::u64 page = virt_start & ~(kPage - 1);
  for (ktl::u64 i = 0; i < pages; ++i) arch::x86_64::invlpg(page + i * kPage);
}

extern "C" void ferrite_arch_activate_root(ktl::u64 root_phys) {
  ktl::check((root_phys & ~kRootMask) == 0,
             "activate_root: the root table must be a page-aligned physical address");
  arch::x86_64::write_cr3(root_phys);
}

extern "C" ktl::u64 ferrite_arch_active_root() { return arch::x86_64::read_cr3() & kRootMask; }
