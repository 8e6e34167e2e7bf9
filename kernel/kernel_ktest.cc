// In-kernel tests of the machine state the kernel sets up: descriptor tables, trap dispatch and
// IST stacks, CPU protections, page-table permissions, the mm.arch TLB hooks and the embedded
// symbol table. They run only in the kernel (test=<filter>), never on the host.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import boot.info;
import mm.addr;
import mm.arch;
import mm.paging;
import kernel.panic;
import kernel.symbols;
import arch.x86_64.cpu;
import arch.x86_64.gdt;
import arch.x86_64.idt;
import arch.x86_64.features;

extern "C" [[noreturn]] void kernel_entry(const boot::BootInfo* info);

namespace {

using namespace arch::x86_64;
using ktl::u64;

using Format = mm::paging::X86_64;

// The active tables (CR3) through the direct map, with the engine's lock-free walk.
ktl::Optional<mm::Translation> translate(u64 va) {
  KTL_UNSAFE_BUFFER_BEGIN  // the loader maps all of physical memory at kDirectMapBase
  mm::PhysWindow window(mm::PhysAddr::zero(), boot::layout::kDirectMapSize,
                        reinterpret_cast<ktl::u8*>(static_cast<ktl::uptr>(boot::layout::kDirectMapBase)));
  KTL_UNSAFE_BUFFER_END
  auto root = mm::PhysAddr::unchecked(read_cr3() & Format::kAddrMask);
  return mm::paging::translate<Format>(window, root, mm::VirtAddr::from(va));
}

KTEST(X86Descriptors, GdtTssAndIdtAreLoaded) {
  DescriptorTablePointer gdt = sgdt();
  KEXPECT_EQ(gdt.base, gdt_base());
  KEXPECT_EQ(gdt.limit, 7u * 8 - 1);
  KEXPECT_EQ(str(), selector::kTss);
  KEXPECT_EQ(read_cs(), selector::kKernelCode);
  DescriptorTablePointer idt = sidt();
  KEXPECT_EQ(idt.base, idt_base());
  KEXPECT_EQ(idt.limit, 256u * 16 - 1);
  KEXPECT_EQ(ist_slot_of(vector::kDoubleFault), 1u);
  KEXPECT_EQ(ist_slot_of(vector::kNmi), 2u);
  KEXPECT_EQ(ist_slot_of(vector::kMachineCheck), 3u);
  KEXPECT_EQ(ist_slot_of(vector::kPageFault), 0u);
}

struct TrapRecord {
  u64 count;
  u64 vector;
  u64 frame_address;
  u64 rip;
};
TrapRecord g_trap{};

void record_trap(TrapFrame& f) {
  ++g_trap.count;
  g_trap.vector = f.vector;
  g_trap.frame_address = ktl::address_of(&f);
  g_trap.rip = f.rip;
}

KTEST(X86Traps, BreakpointReachesHandlerAndReturns) {
  g_trap = {};
  TrapHandler old = set_trap_handler(vector::kBreakpoint, &record_trap);
  __asm__ volatile("int3" ::: "memory");
  set_trap_handler(vector::kBreakpoint, old);
  KEXPECT_EQ(g_trap.count, 1u);
  KEXPECT_EQ(g_trap.vector, 3u);
  // The breakpoint ran on the current (boot) stack: no IST for #BP.
  KEXPECT(!ist_stack(IstSlot::Nmi).contains(g_trap.frame_address));
}

KTEST(X86Traps, NmiAndMachineCheckGatesSwitchToTheirIstStacks) {
  g_trap = {};
  TrapHandler old = set_trap_handler(vector::kNmi, &record_trap);
  __asm__ volatile("int $2" ::: "memory");
  set_trap_handler(vector::kNmi, old);
  KEXPECT_EQ(g_trap.count, 1u);
  KEXPECT(ist_stack(IstSlot::Nmi).contains(g_trap.frame_address, sizeof(TrapFrame)));

  g_trap = {};
  old = set_trap_handler(vector::kMachineCheck, &record_trap);
  __asm__ volatile("int $18" ::: "memory");
  set_trap_handler(vector::kMachineCheck, old);
  KEXPECT_EQ(g_trap.vector, 18u);
  KEXPECT(ist_stack(IstSlot::MachineCheck).contains(g_trap.frame_address, sizeof(TrapFrame)));
}

KTEST(X86Cpu, ProtectionsMatchCpuid) {
  CpuFeatures f = detect_features();
  Protections p = current_protections();
  KEXPECT(p.wp);
  KEXPECT_EQ(p.nxe, f.nx);
  KEXPECT_EQ(p.smep, f.smep);
  KEXPECT_EQ(p.smap, f.smap);
  KEXPECT_EQ(p.umip, f.umip);
  KEXPECT_EQ(p.pge, f.pge);
}

const u64 g_rodata_word = 42;
u64 g_data_word = 7;

KTEST(X86Paging, KernelSegmentsHaveTheirPermissions) {
  auto text = translate(ktl::address_of(&kernel_entry));
  KASSERT(text.has_value());
  KEXPECT(!text->flags.writable());
  KEXPECT(text->flags.executable());
  auto ro = translate(ktl::address_of(&g_rodata_word));
  KASSERT(ro.has_value());
  KEXPECT(!ro->flags.writable());
  KEXPECT(!ro->flags.executable());
  auto rw = translate(ktl::address_of(&g_data_word));
  KASSERT(rw.has_value());
  KEXPECT(rw->flags.writable());
  KEXPECT(!rw->flags.executable());
  KEXPECT(!translate(0x0000'0bad'0000'0000ull).has_value());
}

// Two page-aligned pages of the kernel image (4 KiB mappings). A test points A's page-table
// entry at B's frame, flushes, and checks that A now reads B's contents; then restores.
alignas(4096) volatile u64 g_page_a[512];
alignas(4096) volatile u64 g_page_b[512];

struct Remap {
  volatile u64* entry;
  u64 saved;
};
// Edits A's leaf entry through the recursive window (PML4[kRecursiveSlot]).
Remap point_a_at_b() {
  g_page_a[0] = 0xaaaa;
  g_page_b[0] = 0xbbbb;
  auto a = translate(ktl::address_of(&g_page_a[0]));
  auto b = translate(ktl::address_of(&g_page_b[0]));
  ktl::check(a.has_value() && b.has_value() && a->page_size == 4096, "test pages must be 4 KiB mappings");
  auto view = mm::RecursiveView<Format>::at_slot(boot::layout::kRecursiveSlot).release_value();
  volatile u64* entry = view.entry_address(0, mm::VirtAddr::of(&g_page_a[0])).as_ptr<volatile u64>();
  (void)g_page_a[0];  // make sure the old translation is cached
  u64 saved = *entry;
  *entry = (saved & ~Format::kAddrMask) | b->frame.value();
  return {entry, saved};
}

KTEST(X86Tlb, FlushRangeInvalidatesOnePage) {
  Remap r = point_a_at_b();
  mm::arch::flush_tlb(mm::VirtAddr::of(&g_page_a[0]), 1);
  u64 seen = g_page_a[0];
  *r.entry = r.saved;
  mm::arch::flush_tlb(mm::VirtAddr::of(&g_page_a[0]), 1);
  u64 after = g_page_a[0];
  KEXPECT_EQ(seen, 0xbbbbu);
  KEXPECT_EQ(after, 0xaaaau);
}

KTEST(X86Tlb, FlushAllInvalidatesGlobalEntries) {
  auto a = translate(ktl::address_of(&g_page_a[0]));
  KASSERT(a.has_value());
  KEXPECT(a->flags.global());  // the loader maps the kernel global; with CR4.PGE a CR3 reload keeps it
  Remap r = point_a_at_b();
  mm::arch::flush_tlb_all();
  u64 seen = g_page_a[0];
  *r.entry = r.saved;
  mm::arch::flush_tlb_all();
  u64 after = g_page_a[0];
  KEXPECT_EQ(seen, 0xbbbbu);
  KEXPECT_EQ(after, 0xaaaau);
}

KTEST(X86Tlb, ActivateRootRoundTrip) {
  mm::PhysAddr root = mm::arch::active_root();
  KEXPECT_EQ(root.value(), read_cr3() & Format::kAddrMask);
  mm::arch::activate(root);
  KEXPECT_EQ(mm::arch::active_root().value(), root.value());
}

KTEST(KernelSymbols, OwnFunctionsResolve) {
  const ksym::SymbolTable& t = kpanic::symbols();
  KASSERT(!t.empty());
  u64 entry = ktl::address_of(&kernel_entry);
  auto s = t.lookup(entry);
  KASSERT(s.has_value());
  KEXPECT_EQ(s->name, ktl::StringView("kernel_entry"));
  KEXPECT_EQ(s->offset, 0u);
  KEXPECT_EQ(t.address_of("kernel_entry").value_or(0), entry);
  auto inside = t.lookup(ktl::address_of(&record_trap) + 1);
  KASSERT(inside.has_value());
  KEXPECT(inside->name.contains("record_trap"));
}

[[gnu::noinline]] void backtrace_probe_function(ktl::FormatSink& out) {
  kpanic::print_backtrace(out, read_rbp());
}

KTEST(KernelSymbols, BacktraceNamesCallers) {
  ktl::InlineString<4096> out;
  backtrace_probe_function(out);
  // Frame #0 is the probe's caller (this test body), then ktest::run_all ... kernel_entry.
  KEXPECT(out.view().contains("KernelSymbols"));
  KEXPECT(out.view().contains("run_all"));
  KEXPECT(out.view().contains("kernel_entry"));
  KEXPECT(out.view().contains("end of chain"));
}

// Fails on purpose: `test=KtestSelfCheck.DISABLED_DeliberateFailure` must end the run with 35
// (testing/kernel:ktest_failure_test). DISABLED_ keeps it out of `test=all`.
KTEST(KtestSelfCheck, DISABLED_DeliberateFailure) { KEXPECT_EQ(1 + 1, 3); }

}  // namespace
