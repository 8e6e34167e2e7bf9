// The x86_64 implementation of mm.arch (every hook declared in mm/base/arch.cppm).
//
// TLB and activation: local CPU only, invlpg / CR4.PGE toggle / CR3. FIXME(smp): shootdowns.
// Pinning masks interrupts on this CPU (an interrupt handler that allocates cannot interleave with
// the code it interrupted, and the code cannot migrate); unpinning restores the interrupt flag as
// it was, so pins nest. FIXME(smp): ferrite_arch_cpu_id from the per-CPU area once other CPUs run.
#include <ktl/macros.h>

import ktl;
import mm.arch;
import arch.x86_64.cpu;

namespace {
// Beyond this many pages one full flush is cheaper than a run of invlpg.
constexpr ktl::u64 kInvlpgLimit = 64;
constexpr ktl::u64 kPage = 4096;
constexpr ktl::u64 kRootMask = 0x000f'ffff'ffff'f000ull;
constexpr ktl::u64 kInterruptFlag = ktl::u64{1} << 9;
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

extern "C" ktl::u64 ferrite_arch_cpu_pin() {
  ktl::u64 flags = arch::x86_64::read_rflags();
  arch::x86_64::cli();
  return flags;
}

extern "C" void ferrite_arch_cpu_unpin(ktl::u64 saved) {
  if ((saved & kInterruptFlag) != 0) arch::x86_64::sti();
}

extern "C" ktl::u32 ferrite_arch_cpu_id() { return 0; }
