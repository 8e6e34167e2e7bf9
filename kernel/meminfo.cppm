// kernel.meminfo: from the loader's memory map to the PMM's, and the boot-time memory summary.
//
//  * convert_memory_map(): boot::MemoryRegion (the loader's kinds) -> mm::PhysRegion (the PMM's):
//      Usable -> Usable, KernelImage -> KernelImage, KernelStack/BootInfo/Ramdisk -> BootData,
//      LoaderReclaimable -> LoaderReclaimable, PageTables -> PageTables,
//      AcpiReclaimable/AcpiNvs/RuntimeServices -> Firmware, Mmio/Framebuffer -> Device,
//      Reserved -> Reserved, Bad -> Bad.
//    Neighbours that touch and convert to the same kind (and node) become one region.
//  * MemInfo: where every byte of the map went (the "meminfo:" lines the kernel logs at boot and
//    testing/qemu/boot_test.py --check-meminfo re-adds):
//
//      meminfo: total=K usable=K reserved=K regions=N
//      meminfo: reserved: kernel-image=K boot-data=K loader-reclaimable=K page-tables=K firmware=K
//               device=K reserved=K bad=K                       (one line; every reserved byte)
//      meminfo: usable: free=K allocated=K pmm-metadata=K        (every usable byte)
//      meminfo: kernel: image=K boot-data=K page-tables=K heap=K pmm-metadata=K other=K total=K
//      meminfo: page-tables: loader=K kernel=K
//      meminfo: heap: slabs=K large=K metadata=K
//
//    All values in KiB ("K"). "kernel" is what the kernel itself occupies: its image, the boot data
//    it runs on, every page table, the heap, the PMM's bitmaps, and "other" frames it allocated
//    (stacks, test memory). Identities: total = usable + reserved; reserved = the sum of its kinds;
//    usable = free + allocated + pmm-metadata; allocated = kernel page tables + heap + other.
//
// Pure functions over values: host tests in meminfo_test.cc.
module;

#include <ktl/macros.h>

export module kernel.meminfo;

import ktl;
import boot.info;
import mm.addr;
import mm.pmm;

export namespace kernel {

using ktl::u64;
using ktl::usize;

[[nodiscard]] constexpr mm::RegionKind region_kind(boot::MemoryKind k) {
  switch (k) {
    case boot::MemoryKind::Usable: return mm::RegionKind::Usable;
    case boot::MemoryKind::LoaderReclaimable: return mm::RegionKind::LoaderReclaimable;
    case boot::MemoryKind::KernelImage: return mm::RegionKind::KernelImage;
    case boot::MemoryKind::KernelStack:
    case boot::MemoryKind::BootInfo:
    case boot::MemoryKind::Ramdisk: return mm::RegionKind::BootData;
    case boot::MemoryKind::PageTables: return mm::RegionKind::PageTables;
    case boot::MemoryKind::AcpiReclaimable:
    case boot::MemoryKind::AcpiNvs:
    case boot::MemoryKind::RuntimeServices: return mm::RegionKind::Firmware;
    case boot::MemoryKind::Mmio:
    case boot::MemoryKind::Framebuffer: return mm::RegionKind::Device;
    case boot::MemoryKind::Reserved: return mm::RegionKind::Reserved;
    case boot::MemoryKind::Bad: return mm::RegionKind::Bad;
  }
  return mm::RegionKind::Reserved;  // unreachable for a validated map (kernel.boot_check)
}

inline constexpr usize kRegionKinds = 9;  // mm::RegionKind values 0..8
[[nodiscard]] constexpr usize index_of(mm::RegionKind k) { return static_cast<usize>(ktl::to_underlying(k)); }

enum class ConvertError : ktl::u32 {
  TooManyRegions,  // the converted map does not fit the output
  BadRegion,       // an entry whose range is not a valid physical range (unvalidated input)
};
[[nodiscard]] constexpr const char* to_string(ConvertError e) {
  switch (e) {
    case ConvertError::TooManyRegions: return "too many memory regions for the PMM's map";
    case ConvertError::BadRegion: return "a memory region is not a valid physical range";
  }
  return "unknown conversion error";
}

// mm::PhysRegion has no default value; storage for converted maps starts out filled with this.
inline constexpr mm::PhysRegion kNoRegion{
    mm::PhysRange::try_from(mm::PhysAddr::zero(), mm::PhysAddr::zero()).value(), mm::RegionKind::Reserved,
    mm::NodeId{0}};
namespace detail {
template <class T, T... I>
struct Sequence {};
template <usize... I>
constexpr ktl::Array<mm::PhysRegion, sizeof...(I)> filled_regions(Sequence<usize, I...>) {
  return {{(static_cast<void>(I), kNoRegion)...}};
}
}  // namespace detail
// An array of N kNoRegion entries (constant-initialised, so it can be a static).
template <usize N>
[[nodiscard]] constexpr ktl::Array<mm::PhysRegion, N> make_region_array() {
  return detail::filled_regions(__make_integer_seq<detail::Sequence, usize, N>{});
}

// Converts `map` (validated by kernel.boot_check: sorted, disjoint, page aligned) into `out` and
// returns how many entries were written.
[[nodiscard]] ktl::Result<usize, ConvertError> convert_memory_map(ktl::Span<const boot::MemoryRegion> map,
                                                                  ktl::Span<mm::PhysRegion> out);

// What the PMM and the kernel's allocators report, for the summary.
struct MemUse {
  mm::MemStats pmm;            // Pmm::stats()
  u64 kernel_table_bytes = 0;  // page-table frames the kernel allocated (beyond the loader's)
  u64 heap_slab_bytes = 0;     // mm::HeapStats, in bytes
  u64 heap_large_bytes = 0;
  u64 heap_metadata_bytes = 0;
};

struct MemInfo {
  usize regions = 0;  // of the loader's map
  u64 total = 0;      // every byte the map describes
  u64 usable = 0;
  u64 reserved = 0;
  ktl::Array<u64, kRegionKinds> by_kind{};  // bytes per mm::RegionKind
  // usable = free + allocated + pmm_metadata
  u64 free = 0;
  u64 allocated = 0;
  u64 pmm_metadata = 0;
  // the kernel's share
  u64 loader_tables = 0;
  u64 kernel_tables = 0;
  u64 heap_slabs = 0;
  u64 heap_large = 0;
  u64 heap_metadata = 0;
  u64 other = 0;  // allocated frames that are neither page tables nor heap

  [[nodiscard]] inline u64 heap() const { return heap_slabs + heap_large + heap_metadata; }
  [[nodiscard]] inline u64 page_tables() const { return loader_tables + kernel_tables; }
  [[nodiscard]] inline u64 kernel_total() const {
    return by_kind[index_of(mm::RegionKind::KernelImage)] + by_kind[index_of(mm::RegionKind::BootData)] +
           page_tables() + heap() + pmm_metadata + other;
  }
  // The identities in the module comment.
  [[nodiscard]] bool consistent() const;
};

// Totals of `map` by converted kind, with the PMM's and the allocators' view of the usable part.
[[nodiscard]] MemInfo compute_meminfo(ktl::Span<const boot::MemoryRegion> map, const MemUse& use);

// Writes the "meminfo: ..." lines (each ended by '\n').
void write_meminfo(ktl::FormatSink& out, const MemInfo& m);

}  // namespace kernel
