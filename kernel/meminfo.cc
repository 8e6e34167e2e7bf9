module;

#include <ktl/macros.h>

module kernel.meminfo;

import ktl;
import boot.info;
import mm.addr;
import mm.pmm;

namespace kernel {

ktl::Result<usize, ConvertError> convert_memory_map(ktl::Span<const boot::MemoryMapEntry> map,
                                                    ktl::Span<mm::PhysMapEntry> out) {
  usize n = 0;
  for (const boot::MemoryMapEntry& r : map) {
    auto range = mm::PhysRange::with_size(mm::PhysAddr::unchecked(r.base), r.size);
    if (range.is_err() || r.size == 0) return ktl::Err(ConvertError::BadEntry);
    mm::PhysKind kind = phys_kind(r.kind);
    mm::NodeId node{r.numa_node};
    if (n > 0) {
      mm::PhysMapEntry& last = out[n - 1];
      if (last.kind == kind && last.node == node && last.range.end() == range.value().start()) {
        last.range = mm::PhysRange::try_from(last.range.start(), range.value().end()).value();
        continue;
      }
    }
    if (n == out.size()) return ktl::Err(ConvertError::TooManyEntries);
    out[n++] = mm::PhysMapEntry{range.value(), kind, node};
  }
  return n;
}

bool MemInfo::consistent() const {
  u64 reserved_sum = 0;
  for (usize k = 0; k < kPhysKinds; ++k) {
    if (k != index_of(mm::PhysKind::Usable)) reserved_sum += by_kind[k];
  }
  return total == usable + reserved && reserved == reserved_sum &&
         usable == by_kind[index_of(mm::PhysKind::Usable)] && usable == free + allocated + pmm_metadata &&
         allocated == kernel_tables + heap() + frame_table + other &&
         loader_tables == by_kind[index_of(mm::PhysKind::PageTables)];
}

MemInfo compute_meminfo(ktl::Span<const boot::MemoryMapEntry> map, const MemUse& use) {
  MemInfo m;
  m.regions = map.size();
  for (const boot::MemoryMapEntry& r : map) {
    m.total += r.size;
    m.by_kind[index_of(phys_kind(r.kind))] += r.size;
  }
  m.usable = m.by_kind[index_of(mm::PhysKind::Usable)];
  m.reserved = m.total - m.usable;
  m.free = use.pmm.free_bytes;
  m.allocated = use.pmm.used_bytes;
  m.pmm_metadata = use.pmm.metadata_bytes;
  m.loader_tables = m.by_kind[index_of(mm::PhysKind::PageTables)];
  m.kernel_tables = use.kernel_table_bytes;
  m.heap_slabs = use.heap_slab_bytes;
  m.heap_large = use.heap_large_bytes;
  m.heap_metadata = use.heap_metadata_bytes;
  m.frame_table = use.frame_table_bytes;
  u64 accounted = m.kernel_tables + m.heap() + m.frame_table;
  // Whatever else the kernel allocated; never negative unless the inputs disagree (then the
  // identities fail and the boot test reports it).
  m.other = m.allocated >= accounted ? m.allocated - accounted : 0;
  return m;
}

void write_meminfo(ktl::FormatSink& out, const MemInfo& m) {
  auto k = [](u64 bytes) { return bytes >> 10; };
  auto of = [&](mm::PhysKind kind) { return k(m.by_kind[index_of(kind)]); };
  ktl::format_to(out, "meminfo: total={}K usable={}K reserved={}K regions={}\n", k(m.total), k(m.usable),
                 k(m.reserved), m.regions);
  ktl::format_to(out, "meminfo: reserved:");
  for (usize i = 0; i < kPhysKinds; ++i) {
    auto kind = static_cast<mm::PhysKind>(i);
    if (kind == mm::PhysKind::Usable) continue;
    ktl::format_to(out, " {}={}K", mm::to_string(kind), of(kind));
  }
  ktl::format_to(out, "\n");
  ktl::format_to(out, "meminfo: usable: free={}K allocated={}K pmm-metadata={}K\n", k(m.free), k(m.allocated),
                 k(m.pmm_metadata));
  ktl::format_to(out,
                 "meminfo: kernel: image={}K boot-data={}K page-tables={}K heap={}K frame-table={}K "
                 "pmm-metadata={}K other={}K total={}K\n",
                 of(mm::PhysKind::KernelImage), of(mm::PhysKind::BootData), k(m.page_tables()), k(m.heap()),
                 k(m.frame_table), k(m.pmm_metadata), k(m.other), k(m.kernel_total()));
  ktl::format_to(out, "meminfo: page-tables: loader={}K kernel={}K\n", k(m.loader_tables),
                 k(m.kernel_tables));
  ktl::format_to(out, "meminfo: heap: slabs={}K large={}K metadata={}K\n", k(m.heap_slabs), k(m.heap_large),
                 k(m.heap_metadata));
}

}  // namespace kernel
