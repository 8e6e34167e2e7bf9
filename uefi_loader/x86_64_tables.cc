module;

#include <ktl/macros.h>

module loader.x86_64_tables;

import ktl;
import boot.info;
import mm.paging.x86;

namespace loader::x86_64 {

namespace {
using namespace mm::paging::x86;
constexpr u64 k4K = u64{1} << 12;
constexpr u64 k2M = u64{1} << 21;
constexpr u64 k1G = u64{1} << 30;
}  // namespace

ktl::Result<void, TableError> TableBuilder::init() {
  root_ = frames_.allocate_zeroed_frame();
  if (root_ == 0) return ktl::Err(TableError::OutOfMemory);
  table_frames_ = 1;
  return ktl::ok();
}

ktl::Result<void, TableError> TableBuilder::ensure_table(u64& entry) {
  if ((entry & kPresent) == 0) {
    u64 frame = frames_.allocate_zeroed_frame();
    if (frame == 0) return ktl::Err(TableError::OutOfMemory);
    ++table_frames_;
    // Intermediate entries are permissive; the leaf decides (W, NX and U are ANDed/ORed down).
    entry = frame | kPresent | kWritable;
  }
  return ktl::ok();
}

u64 TableBuilder::leaf_bits(Access access, Cache cache, bool huge, bool global) const {
  u64 bits = kPresent;
  if (access == Access::ReadWrite) bits |= kWritable;
  if (access != Access::ReadExecute && no_execute_) bits |= kNoExecute;
  if (global) bits |= kGlobal;
  // Indices into the PAT the loader programs (kPat).
  u64 pat = cache == Cache::WriteBack  ? kPatWriteBack
            : cache == Cache::Uncached ? kPatUncached
                                       : kPatWriteCombining;
  bits |= pat_bits(pat, huge ? LeafSize::Large : LeafSize::Page4K);
  if (huge) bits |= kPageSize;
  return bits;
}

ktl::Result<void, TableError> TableBuilder::map(u64 virt, u64 phys, u64 size, Access access, Cache cache,
                                                bool allow_huge, bool global) {
  if (!ktl::is_aligned(virt, k4K) || !ktl::is_aligned(phys, k4K) || !ktl::is_aligned(size, k4K)) {
    return ktl::Err(TableError::Misaligned);
  }
  if (ktl::checked_add(virt, size).overflow && virt + size != 0) return ktl::Err(TableError::AddressOverflow);

  u64 done = 0;
  while (done < size) {
    u64 v = virt + done;
    u64 p = phys + done;
    u64 left = size - done;
    ktl::Span<u64> pml4 = frames_.table(root_);
    u64& l4e = pml4[(v >> 39) & 511];
    TRY(ensure_table(l4e));
    ktl::Span<u64> pdpt = frames_.table(l4e & kAddrMask);
    u64& l3e = pdpt[(v >> 30) & 511];

    if (allow_huge && gigabyte_pages_ && (l3e & kPresent) == 0 && ktl::is_aligned(v, k1G) &&
        ktl::is_aligned(p, k1G) && left >= k1G) {
      l3e = p | leaf_bits(access, cache, true, global);
      done += k1G;
      continue;
    }
    if ((l3e & kPresent) != 0 && (l3e & kPageSize) != 0) {  // already mapped by a 1 GiB page
      done += k1G - (v & (k1G - 1));
      continue;
    }
    TRY(ensure_table(l3e));
    ktl::Span<u64> pd = frames_.table(l3e & kAddrMask);
    u64& l2e = pd[(v >> 21) & 511];
    if (allow_huge && (l2e & kPresent) == 0 && ktl::is_aligned(v, k2M) && ktl::is_aligned(p, k2M) &&
        left >= k2M) {
      l2e = p | leaf_bits(access, cache, true, global);
      done += k2M;
      continue;
    }
    if ((l2e & kPresent) != 0 && (l2e & kPageSize) != 0) {
      done += k2M - (v & (k2M - 1));
      continue;
    }
    TRY(ensure_table(l2e));
    ktl::Span<u64> pt = frames_.table(l2e & kAddrMask);
    u64& l1e = pt[(v >> 12) & 511];
    if ((l1e & kPresent) == 0) l1e = p | leaf_bits(access, cache, false, global);
    done += k4K;
  }
  return ktl::ok();
}

void TableBuilder::install_recursive_slot(usize slot) {
  frames_.table(root_)[slot] = root_ | kPresent | kWritable | (no_execute_ ? kNoExecute : 0);
}

bool identity_mapped(boot::MemoryKind kind) {
  switch (kind) {
    case boot::MemoryKind::Usable:
    case boot::MemoryKind::LoaderReclaimable:
    case boot::MemoryKind::KernelImage:
    case boot::MemoryKind::KernelStack:
    case boot::MemoryKind::PageTables:
    case boot::MemoryKind::BootInfo:
    case boot::MemoryKind::Ramdisk:
    case boot::MemoryKind::AcpiReclaimable:
    case boot::MemoryKind::AcpiNvs:
    case boot::MemoryKind::RuntimeServices: return true;
    case boot::MemoryKind::Mmio:
    case boot::MemoryKind::Framebuffer:
    case boot::MemoryKind::Reserved:
    case boot::MemoryKind::Bad: return false;
  }
  return false;
}

ktl::Optional<Cache> direct_map_cache(boot::MemoryKind kind) {
  if (identity_mapped(kind)) return Cache::WriteBack;
  switch (kind) {
    case boot::MemoryKind::Framebuffer: return Cache::WriteCombining;
    case boot::MemoryKind::Mmio:
    case boot::MemoryKind::Reserved: return Cache::Uncached;
    default: return ktl::nullopt;  // bad memory: never touched, not even speculatively
  }
}

namespace {

// Calls fn(base, size, cache) for maximal runs of physically adjacent regions that share a cache
// type in the selected map (so large pages can span firmware entries of different kinds).
template <class Select, class Fn>
void for_each_run(ktl::Span<const boot::MemoryMapEntry> regions, Select select, Fn fn) {
  u64 run_base = 0, run_end = 0;
  ktl::Optional<Cache> run_cache;
  for (const boot::MemoryMapEntry& r : regions) {
    ktl::Optional<Cache> c = select(r.kind);
    bool extends = run_cache && c && *run_cache == *c && r.base == run_end;
    if (!extends) {
      if (run_cache) fn(run_base, run_end - run_base, *run_cache);
      run_cache = c;
      run_base = r.base;
    }
    run_end = r.base + r.size;
  }
  if (run_cache) fn(run_base, run_end - run_base, *run_cache);
}

ktl::Optional<Cache> identity_select(boot::MemoryKind kind) {
  if (identity_mapped(kind)) return Cache::WriteBack;
  return ktl::nullopt;
}

// Tables one mapping of `size` bytes can need without 1 GiB pages: PDPTs, PDs and the two
// partial page tables at its ends, plus one PT per 2 MiB when large pages are not allowed.
u64 frames_for(u64 size, bool huge) {
  u64 frames = size / (u64{512} << 30) + 2 + size / k1G + 2 + 2;
  if (!huge) frames += size / k2M;
  return frames;
}

}  // namespace

u64 frames_needed(const AddressSpaceSpec& spec) {
  u64 frames = 1 + 4;  // PML4, trampoline tables
  for_each_run(spec.physical, identity_select,
               [&](u64, u64 size, Cache) { frames += frames_for(size, true); });
  for_each_run(spec.physical, direct_map_cache,
               [&](u64, u64 size, Cache) { frames += frames_for(size, true); });
  for (const SegmentMapping& s : spec.kernel) frames += frames_for(s.size, false);
  frames += frames_for(spec.stack_size, false);
  return frames;
}

ktl::Result<void, TableError> build_address_space(TableBuilder& t, const AddressSpaceSpec& spec) {
  // The trampoline first, with 4 KiB precision: everything else in the identity map is NX.
  if (spec.trampoline_page != 0) {
    TRY(t.map(spec.trampoline_page, spec.trampoline_page, k4K, Access::ReadExecute, Cache::WriteBack, false,
              false));
  }
  ktl::Result<void, TableError> status = ktl::ok();
  for_each_run(spec.physical, identity_select, [&](u64 base, u64 size, Cache) {
    if (status.is_err()) return;
    // The null page stays unmapped, so a null dereference faults from the first instruction on.
    if (base == 0) {
      if (size <= k4K) return;
      base += k4K;
      size -= k4K;
    }
    status = t.map(base, base, size, Access::ReadWrite, Cache::WriteBack, true, false);
  });
  TRY(status);
  for_each_run(spec.physical, direct_map_cache, [&](u64 base, u64 size, Cache cache) {
    if (status.is_err()) return;
    status = t.map(spec.direct_map_base + base, base, size, Access::ReadWrite, cache, true, true);
  });
  TRY(status);
  for (const SegmentMapping& s : spec.kernel)
    TRY(t.map(s.virt, s.phys, s.size, s.access, Cache::WriteBack, false, true));
  TRY(t.map(spec.stack_virt_bottom, spec.stack_phys, spec.stack_size, Access::ReadWrite, Cache::WriteBack,
            false, true));
  t.install_recursive_slot(spec.recursive_slot);
  return ktl::ok();
}

}  // namespace loader::x86_64
