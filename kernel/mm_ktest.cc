// In-kernel tests of the kernel's own memory management (kernel.memory): the PMM built from the
// boot map, the adopted and active kernel address space, the recursive window cross-checked with
// the direct-map walk, the heap mapped through the page tables, the IST guard pages and the
// meminfo totals. They run only in the kernel (test=KernelMm or test=all).
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import boot.info;
import mm.addr;
import mm.arch;
import mm.address_space;
import mm.heap;
import mm.paging;
import mm.pmm;
import kernel.log;
import kernel.meminfo;
import kernel.memory;
import kernel.vmview;
import arch.x86_64.cpu;
import arch.x86_64.gdt;

extern "C" [[noreturn]] void kernel_entry(const boot::BootInfo* info);

namespace {

using ktl::u64;
using ktl::usize;
using mm::PhysAddr;
using mm::VirtAddr;
using Format = mm::paging::X86_64;
namespace memory = kernel::memory;

u64 g_data_word = 1;
const u64 g_rodata_word = 2;

KTEST(KernelMm, PmmIsTheGlobalOneAndAddsUp) {
  KEXPECT(mm::global_pmm() == &memory::pmm());
  KEXPECT(memory::pmm().check_invariants());
  kernel::MemInfo m = memory::meminfo();
  KEXPECT(m.consistent());
  mm::MemStats s = memory::pmm().stats();
  KEXPECT_EQ(s.total_bytes, m.total);
  KEXPECT_EQ(s.reserved_bytes, m.reserved);
  KEXPECT_EQ(s.free_bytes + s.used_bytes + s.metadata_bytes, m.usable);
  KEXPECT_LT(0u, m.heap());
  KEXPECT_LT(0u, m.by_kind[kernel::index_of(mm::PhysKind::KernelImage)]);
  // The kernel's image is reserved, never handed out.
  auto text = memory::kernel_space().translate(VirtAddr::from(ktl::address_of(&kernel_entry)));
  KASSERT(text.has_value());
  KEXPECT_EQ(memory::pmm().state_of(mm::Frame4K::containing(text->phys)), mm::FrameState::Reserved);
}

KTEST(KernelMm, AddressSpaceIsTheLoadersAndActive) {
  mm::KernelAddressSpace& space = memory::kernel_space();
  KEXPECT(space.kind() == mm::SpaceKind::Kernel);
  KEXPECT(space.is_active());
  KEXPECT_EQ(space.root().value(), arch::x86_64::read_cr3() & Format::kAddrMask);
  KEXPECT_EQ(memory::pmm().state_of(mm::Frame4K::containing(space.root())), mm::FrameState::Reserved);
  // The address space's (locked) translate agrees with the lock-free walk from CR3 that the panic
  // path and the framebuffer check use, on the kernel's own image.
  auto cr3 = PhysAddr::unchecked(arch::x86_64::read_cr3() & Format::kAddrMask);
  for (u64 va : ktl::Array<u64, 3>{{ktl::address_of(&kernel_entry), ktl::address_of(&g_data_word),
                                    ktl::address_of(&g_rodata_word)}}) {
    auto mine = space.translate(VirtAddr::from(va));
    auto lock_free = mm::paging::translate<Format>(memory::window(), cr3, VirtAddr::from(va));
    if (!KEXPECT(mine.has_value())) continue;
    KEXPECT_EQ(mine, lock_free);
  }
}

// The seed's recursive mapping: PML4[510] points at the PML4, so the tables are readable at
// fixed virtual addresses. Every translation read through that window equals the engine's walk
// through the direct map.
KTEST(KernelMm, RecursiveWindowMatchesTheDirectMapWalk) {
  mm::KernelAddressSpace& space = memory::kernel_space();
  auto view = KTRY(mm::RecursiveView<Format>::at_slot(boot::layout::kRecursiveSlot));
  mm::ActiveWindowMemory active;
  {
    ktl::LockGuard guard(space.lock());
    KEXPECT_EQ(space.tables().recursive_slot().value_or(0), boot::layout::kRecursiveSlot);
  }
  // The root itself, seen through the window, is the root seen through the direct map.
  VirtAddr root_va = view.table_address(Format::kLevels - 1, VirtAddr::zero());
  KEXPECT_EQ(root_va.value(), 0xffff'ff7f'bfdf'e000ull);
  auto through_direct = memory::window().array<u64>(space.root(), 512);
  usize differ = 0;
  for (usize i = 0; i < 512; ++i) {
    differ += active.read<u64>(root_va + i * sizeof(u64)).value_or(0) != through_direct[i] ? 1 : 0;
  }
  KEXPECT_EQ(differ, 0u);
  u64 self = active.read<u64>(root_va + boot::layout::kRecursiveSlot * sizeof(u64)).value_or(0);
  KEXPECT_EQ(self & Format::kAddrMask, space.root().value());

  int local = 0;
  void* small = mm::kmalloc(48);
  void* large = mm::kmalloc(200 * 1024);
  KASSERT(small != nullptr && large != nullptr);
  u64 heap_page = ktl::address_of(large);
  arch::x86_64::StackRange nmi = arch::x86_64::ist_stack(arch::x86_64::IstSlot::Nmi);
  ktl::Array<u64, 12> samples{{
      ktl::address_of(&kernel_entry),           // kernel text (loader's 4 KiB pages)
      ktl::address_of(&g_data_word),            // kernel data
      ktl::address_of(&local),                  // the boot stack
      ktl::address_of(small),                   // a slab object in the direct map
      heap_page + 4096 + 123,                   // a large allocation in the large-object area
      heap_page + 200 * 1024 + 4096,            // its guard page (unmapped)
      nmi.bottom + 8,                           // a mapped IST stack
      nmi.bottom - 8,                           // its guard page
      boot::layout::kDirectMapBase + 0x100000,  // low RAM in the direct map
      0x100000,                                 // the identity map
      0,                                        // the null page
      0x0000'0bad'0000'0000ull,                 // nothing
  }};
  usize mapped = 0;
  for (u64 va : samples) {
    auto recursive = view.translate(active, VirtAddr::from(va));
    auto direct = space.translate(VirtAddr::from(va));
    KEXPECT_EQ(recursive, direct);
    mapped += direct.has_value() ? 1 : 0;
  }
  KEXPECT_EQ(mapped, 8u);
  mm::kfree(large);
  mm::kfree(small);
}

// Every leaf of the active tables, as kernel.vmview lists them, is what the engine translates,
// through the direct map and through the recursive window.
KTEST(KernelMm, MappingListAgreesWithTheEngine) {
  mm::KernelAddressSpace& space = memory::kernel_space();
  auto view = KTRY(mm::RecursiveView<Format>::at_slot(boot::layout::kRecursiveSlot));
  mm::ActiveWindowMemory active;
  ktl::LockGuard guard(space.lock());
  const mm::KernelPageTable& tables = space.tables();
  u64 leaves = 0, mismatches = 0;
  ktl::Optional<ktl::u32> self;
  kernel::vmview::for_each_leaf<Format>(
      memory::window(), tables.root(),
      [&](const kernel::vmview::Range& leaf) {
        ++leaves;
        for (u64 offset : ktl::Array<u64, 2>{{0, leaf.size - 1}}) {
          auto t = tables.translate(leaf.va + offset);
          bool same = t.has_value() && t->page == leaf.va && t->frame == leaf.pa &&
                      t->page_size == leaf.size && t->flags == leaf.flags &&
                      view.translate(active, leaf.va + offset) == t;
          if (!same && mismatches++ < 4) {
            ktest_ctx.fail(__FILE__, __LINE__, "leaf {} {} {:#x} {}: engine says {}", leaf.va, leaf.pa,
                           leaf.size, leaf.flags, t);
          }
        }
      },
      [&](ktl::u32 slot) { self = slot; });
  KEXPECT_LT(100u, leaves);
  KEXPECT_EQ(mismatches, 0u);
  KEXPECT_EQ(self.value_or(0), boot::layout::kRecursiveSlot);
}

KTEST(KernelMm, LargeHeapObjectsAreMappedAndUnmapped) {
  mm::Heap& heap = memory::heap();
  mm::KernelAddressSpace& space = memory::kernel_space();
  // Frames are free, or the heap's (slabs, mapped, metadata), or page tables: the sum stays put.
  auto balance = [&] {
    kernel::MemInfo m = memory::meminfo();
    return m.free + m.heap() + m.kernel_tables;
  };
  u64 balance_before = balance();
  u64 large_before = heap.stats().large_frames;
  u64 mappings_before = space.live_mappings();
  constexpr usize kBytes = 300 * 1024;
  auto* p = static_cast<ktl::u8*>(mm::kmalloc(kBytes));
  KASSERT(p != nullptr);
  // One Mapping of the kernel address space owns the object (kept in the heap's record).
  KEXPECT_EQ(space.live_mappings(), mappings_before + 1);
  VirtAddr start = VirtAddr::of(p);
  KEXPECT(heap.large_objects().contains(p));
  KEXPECT_LE(memory::layout::kHeapBase, start.value());
  KEXPECT_LT(start.value(), memory::layout::kHeapBase + memory::layout::kHeapBytes);
  u64 pages = (kBytes + 4095) / 4096;
  for (u64 i = 0; i < pages; ++i) {
    auto t = space.translate(start + i * 4096);
    if (!KEXPECT(t.has_value())) break;
    KEXPECT(t->flags.writable() && !t->flags.executable() && !t->flags.user() && t->flags.global());
    KEXPECT_EQ(memory::pmm().state_of(mm::Frame4K::containing(t->frame)), mm::FrameState::Allocated);
  }
  KEXPECT(!space.translate(start + pages * 4096).has_value());  // the guard page
  KTL_UNSAFE_BUFFER_BEGIN  // the mapping just made holds kBytes bytes at p
  auto bytes = ktl::Span<ktl::u8>::from_raw(p, kBytes);
  KTL_UNSAFE_BUFFER_END
  for (usize i = 0; i < kBytes; i += 4096) bytes[i] = static_cast<ktl::u8>(i >> 12);
  bool kept = true;
  for (usize i = 0; i < kBytes; i += 4096) kept = kept && bytes[i] == static_cast<ktl::u8>(i >> 12);
  KEXPECT(kept);
  mm::kfree(p);
  KEXPECT_EQ(space.live_mappings(), mappings_before);
  KEXPECT(!space.translate(start).has_value());
  KEXPECT(!space.translate(start + (pages - 1) * 4096).has_value());
  KEXPECT_EQ(balance(), balance_before);
  KEXPECT_EQ(heap.stats().large_frames, large_before);
}

KTEST(KernelMm, IstStacksHaveGuardPages) {
  mm::KernelAddressSpace& space = memory::kernel_space();
  for (auto slot :
       ktl::Array<arch::x86_64::IstSlot, 3>{{arch::x86_64::IstSlot::DoubleFault, arch::x86_64::IstSlot::Nmi,
                                             arch::x86_64::IstSlot::MachineCheck}}) {
    arch::x86_64::StackRange r = arch::x86_64::ist_stack(slot);
    KEXPECT(r.bottom != arch::x86_64::early_ist_stack(slot).bottom);
    KEXPECT_LE(memory::layout::kStackBase, r.bottom);
    KEXPECT_EQ(r.top - r.bottom, arch::x86_64::kIstStackSize);
    auto bottom = space.translate(VirtAddr::from(r.bottom));
    auto top = space.translate(VirtAddr::from(r.top - 1));
    KASSERT(bottom.has_value() && top.has_value());
    KEXPECT(bottom->flags.writable() && !bottom->flags.executable());
    KEXPECT(!space.translate(VirtAddr::from(r.bottom - 1)).has_value());  // guard below
    KEXPECT(!space.translate(VirtAddr::from(r.top)).has_value());         // and above
  }
}

KTEST(KernelMm, KernelDataLivesOnTheHeap) {
  // The log's replay buffer moved from its 8 KiB static ring to the heap.
  KEXPECT_LT(klog::kHistoryBytes, klog::history_capacity());
  KEXPECT_LT(0u, memory::heap().slab().live_objects());
}

}  // namespace
