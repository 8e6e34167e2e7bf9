// kernel.meminfo: boot map -> PMM map conversion and the meminfo summary (host and in-kernel).
#include <ktest/ktest.h>

import ktl;
import ktest;
import boot.info;
import mm.addr;
import mm.pmm;
import kernel.meminfo;

namespace {

using boot::MemoryKind;
using boot::MemoryMapEntry;
using ktl::u64;
using mm::PhysKind;

constexpr u64 kKiB = 1024;
constexpr u64 kMiB = 1024 * kKiB;

KTEST(MemInfo, EveryBootKindHasItsPmmKind) {
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::Usable), PhysKind::Usable);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::LoaderReclaimable), PhysKind::LoaderReclaimable);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::KernelImage), PhysKind::KernelImage);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::KernelStack), PhysKind::BootData);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::BootInfo), PhysKind::BootData);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::Ramdisk), PhysKind::BootData);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::PageTables), PhysKind::PageTables);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::AcpiReclaimable), PhysKind::Firmware);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::AcpiNvs), PhysKind::Firmware);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::RuntimeServices), PhysKind::Firmware);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::Mmio), PhysKind::Device);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::Framebuffer), PhysKind::Device);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::Reserved), PhysKind::Reserved);
  KEXPECT_EQ(kernel::phys_kind(MemoryKind::Bad), PhysKind::Bad);
}

// A small machine: low RAM, the loader's placements in the middle of high RAM, firmware and a
// framebuffer on top.
ktl::Array<MemoryMapEntry, 11> sample_map() {
  return {{
      {0x1000, 0x9f000, MemoryKind::Usable, 0},
      {0x100000, 7 * kMiB, MemoryKind::Usable, 0},
      {8 * kMiB, 1 * kMiB, MemoryKind::KernelImage, 0},
      {9 * kMiB, 64 * kKiB, MemoryKind::KernelStack, 0},  // stack, boot info, ramdisk: one BootData
      {9 * kMiB + 64 * kKiB, 8 * kKiB, MemoryKind::BootInfo, 0},
      {9 * kMiB + 72 * kKiB, 56 * kKiB, MemoryKind::Ramdisk, 0},
      {9 * kMiB + 128 * kKiB, 32 * kKiB, MemoryKind::PageTables, 0},
      {9 * kMiB + 160 * kKiB, 96 * kKiB, MemoryKind::LoaderReclaimable, 0},
      {10 * kMiB, 100 * kMiB, MemoryKind::Usable, 0},
      {110 * kMiB, 128 * kKiB, MemoryKind::AcpiReclaimable, 0},  // ACPI + runtime: one Firmware
      {110 * kMiB + 128 * kKiB, 64 * kKiB, MemoryKind::RuntimeServices, 0},
  }};
}

KTEST(MemInfo, ConversionMergesTouchingRegionsOfOneKind) {
  auto map = sample_map();
  auto out = kernel::make_map_array<16>();
  auto n = kernel::convert_memory_map(map.span(), out.span());
  KASSERT_OK(n);
  KASSERT_EQ(n.value(), 8u);
  auto at = [](u64 start, u64 end) {
    return mm::PhysRange::try_from(mm::PhysAddr::from(start), mm::PhysAddr::from(end)).value();
  };
  KEXPECT(out[0].range == at(0x1000, 0xa0000) && out[0].kind == PhysKind::Usable);
  KEXPECT(out[1].range == at(0x100000, 8 * kMiB) && out[1].kind == PhysKind::Usable);  // a gap before it
  KEXPECT(out[2].kind == PhysKind::KernelImage);
  KEXPECT(out[3].range == at(9 * kMiB, 9 * kMiB + 128 * kKiB) && out[3].kind == PhysKind::BootData);
  KEXPECT(out[4].kind == PhysKind::PageTables);
  KEXPECT(out[5].kind == PhysKind::LoaderReclaimable);
  KEXPECT(out[6].range == at(10 * kMiB, 110 * kMiB) && out[6].kind == PhysKind::Usable);
  KEXPECT(out[7].range == at(110 * kMiB, 110 * kMiB + 192 * kKiB) && out[7].kind == PhysKind::Firmware);
}

KTEST(MemInfo, ConversionKeepsNumaNodesApartAndReportsOverflow) {
  ktl::Array<MemoryMapEntry, 2> two_nodes{{
      {0x100000, 1 * kMiB, MemoryKind::Usable, 0},
      {0x200000, 1 * kMiB, MemoryKind::Usable, 1},
  }};
  auto out = kernel::make_map_array<2>();
  KEXPECT_EQ(KTRY(kernel::convert_memory_map(two_nodes.span(), out.span())), 2u);
  KEXPECT_EQ(out[1].node.value, 1u);
  auto small = kernel::make_map_array<1>();
  auto r = kernel::convert_memory_map(two_nodes.span(), small.span());
  KASSERT(r.is_err());
  KEXPECT_EQ(r.error(), kernel::ConvertError::TooManyEntries);
}

KTEST(MemInfo, SummaryAccountsForEveryByte) {
  auto map = sample_map();
  kernel::MemUse use;
  u64 usable = 0x9f000 + 7 * kMiB + 100 * kMiB;
  use.pmm.total_bytes = 0;  // not used: the map is the reference
  use.pmm.metadata_bytes = 16 * kKiB;
  use.pmm.used_bytes = 300 * kKiB;
  use.pmm.free_bytes = usable - use.pmm.used_bytes - use.pmm.metadata_bytes;
  use.kernel_table_bytes = 12 * kKiB;
  use.heap_slab_bytes = 200 * kKiB;
  use.heap_large_bytes = 64 * kKiB;
  use.heap_metadata_bytes = 8 * kKiB;
  use.frame_table_bytes = 8 * kKiB;
  kernel::MemInfo m = kernel::compute_meminfo(map.span(), use);
  KEXPECT_EQ(m.usable, usable);
  KEXPECT_EQ(m.total, usable + 1 * kMiB + 128 * kKiB + 32 * kKiB + 96 * kKiB + 192 * kKiB);
  KEXPECT_EQ(m.other, 8 * kKiB);  // 300 - 12 - 272 - 8
  KEXPECT(m.consistent());
  KEXPECT_EQ(m.kernel_total(),
             1 * kMiB + 128 * kKiB + 32 * kKiB + 12 * kKiB + 272 * kKiB + 8 * kKiB + 16 * kKiB + 8 * kKiB);

  ktl::InlineString<2048> text;
  kernel::write_meminfo(text, m);
  KEXPECT(text.view().contains("meminfo: total=111676K usable=110204K reserved=1472K regions=11\n"));
  KEXPECT(
      text.view().contains("meminfo: reserved: kernel-image=1024K boot-data=128K loader-reclaimable=96K "
                           "page-tables=32K firmware=192K "
                           "device=0K reserved=0K bad=0K\n"));
  KEXPECT(text.view().contains("meminfo: usable: free=109888K allocated=300K pmm-metadata=16K\n"));
  KEXPECT(
      text.view().contains("meminfo: kernel: image=1024K boot-data=128K page-tables=44K heap=272K "
                           "frame-table=8K pmm-metadata=16K other=8K total=1500K\n"));
  KEXPECT(text.view().contains("meminfo: page-tables: loader=32K kernel=12K\n"));
  KEXPECT(text.view().contains("meminfo: heap: slabs=200K large=64K metadata=8K\n"));

  // A PMM that lost track of a frame breaks the identities.
  use.pmm.free_bytes -= 4 * kKiB;
  KEXPECT(!kernel::compute_meminfo(map.span(), use).consistent());
}

}  // namespace
