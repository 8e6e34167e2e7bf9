// kernel.meminfo: from the loader's memory map to the PMM's, and the boot-time memory summary.
//
//  * convert_memory_map(): boot::MemoryMapEntry (the loader's kinds) -> mm::PhysMapEntry (the PMM's):
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
//      meminfo: kernel: image=K boot-data=K page-tables=K heap=K frame-table=K pmm-metadata=K other=K
//               total=K                                          (one line)
//      meminfo: page-tables: loader=K kernel=K
//      meminfo: heap: slabs=K large=K metadata=K
//
//    All values in KiB ("K"). "kernel" is what the kernel itself occupies: its image, the boot data
//    it runs on, every page table, the heap, the frame table, the PMM's bitmaps, and "other" frames
//    it allocated (stacks, test memory). Identities: total = usable + reserved; reserved = the sum of
//    its kinds; usable = free + allocated + pmm-metadata; allocated = kernel page tables + heap +
//    frame-table + other.
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

[[nodiscard]] constexpr mm::PhysKind phys_kind(boot::MemoryKind k) {
  switch (k) {
    case boot::MemoryKind::Usable: return mm::PhysKind::Usable;
    case boot::MemoryKind::LoaderReclaimable: return mm::PhysKind::LoaderReclaimable;
    case boot::MemoryKind::KernelImage: return mm::PhysKind::KernelImage;
    case boot::MemoryKind::KernelStack:
    case boot::MemoryKind::BootInfo:
    case boot::MemoryKind::Ramdisk: return mm::PhysKind::BootData;
    case boot::MemoryKind::PageTables: return mm::PhysKind::PageTables;
    case boot::MemoryKind::AcpiReclaimable:
    case boot::MemoryKind::AcpiNvs:
    case boot::MemoryKind::RuntimeServices: return mm::PhysKind::Firmware;
    case boot::MemoryKind::Mmio:
    case boot::MemoryKind::Framebuffer: return mm::PhysKind::Device;
    case boot::MemoryKind::Reserved: return mm::PhysKind::Reserved;
    case boot::MemoryKind::Bad: return mm::PhysKind::Bad;
  }
  return mm::PhysKind::Reserved;  // unreachable for a validated map (kernel.boot_check)
}

inline constexpr usize kPhysKinds = 9;  // mm::PhysKind values 0..8
[[nodiscard]] constexpr usize index_of(mm::PhysKind k) { return static_cast<usize>(ktl::to_underlying(k)); }

enum class ConvertError : ktl::u32 {
  TooManyEntries,  // the converted map does not fit the output
  BadEntry,        // an entry whose range is not a valid physical range (unvalidated input)
};
[[nodiscard]] constexpr const char* to_string(ConvertError e) {
  switch (e) {
    case ConvertError::TooManyEntries: return "too many memory regions for the PMM's map";
    case ConvertError::BadEntry: return "a memory region is not a valid physical range";
  }
  return "unknown conversion error";
}

// mm::PhysMapEntry has no default value; storage for converted maps starts out filled with this.
inline constexpr mm::PhysMapEntry kNoMapEntry{
    mm::PhysRange::try_from(mm::PhysAddr::zero(), mm::PhysAddr::zero()).value(), mm::PhysKind::Reserved,
    mm::NodeId{0}};
namespace detail {
template <class T, T... I>
struct Sequence {};
template <usize... I>
constexpr ktl::Array<mm::PhysMapEntry, sizeof...(I)> filled_map(Sequence<usize, I...>) {
  return {{(static_cast<void>(I), kNoMapEntry)...}};
}
}  // namespace detail
// An array of N kNoMapEntry entries (constant-initialised, so it can be a static).
template <usize N>
[[nodiscard]] constexpr ktl::Array<mm::PhysMapEntry, N> make_map_array() {
  return detail::filled_map(__make_integer_seq<detail::Sequence, usize, N>{});
}

// Converts `map` (validated by kernel.boot_check: sorted, disjoint, page aligned) into `out` and
// returns how many entries were written.
[[nodiscard]] ktl::Result<usize, ConvertError> convert_memory_map(ktl::Span<const boot::MemoryMapEntry> map,
                                                                  ktl::Span<mm::PhysMapEntry> out);

// What the PMM and the kernel's allocators report, for the summary.
struct MemUse {
  mm::MemStats pmm;            // Pmm::stats()
  u64 kernel_table_bytes = 0;  // page-table frames the kernel allocated (beyond the loader's)
  u64 heap_slab_bytes = 0;     // mm::HeapStats, in bytes
  u64 heap_large_bytes = 0;
  u64 heap_metadata_bytes = 0;
  u64 frame_table_bytes = 0;  // mm::FrameTable::metadata_frames, in bytes
};

struct MemInfo {
  usize regions = 0;  // of the loader's map
  u64 total = 0;      // every byte the map describes
  u64 usable = 0;
  u64 reserved = 0;
  ktl::Array<u64, kPhysKinds> by_kind{};  // bytes per mm::PhysKind
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
  u64 frame_table = 0;  // the per-frame descriptors (mm::FrameTable)
  u64 other = 0;        // allocated frames that are neither page tables, heap nor frame table

  [[nodiscard]] inline u64 heap() const { return heap_slabs + heap_large + heap_metadata; }
  [[nodiscard]] inline u64 page_tables() const { return loader_tables + kernel_tables; }
  [[nodiscard]] inline u64 kernel_total() const {
    return by_kind[index_of(mm::PhysKind::KernelImage)] + by_kind[index_of(mm::PhysKind::BootData)] +
           page_tables() + heap() + frame_table + pmm_metadata + other;
  }
  // The identities in the module comment.
  [[nodiscard]] bool consistent() const;
};

// Totals of `map` by converted kind, with the PMM's and the allocators' view of the usable part.
[[nodiscard]] MemInfo compute_meminfo(ktl::Span<const boot::MemoryMapEntry> map, const MemUse& use);

// Writes the "meminfo: ..." lines (each ended by '\n').
void write_meminfo(ktl::FormatSink& out, const MemInfo& m);

}  // namespace kernel
