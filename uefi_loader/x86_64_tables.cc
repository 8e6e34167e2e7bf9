module;

#include <ktl/macros.h>

module loader.x86_64_tables;

import ktl;

namespace loader::x86_64 {

namespace {
constexpr u64 k4K = u64{1} << 12;
constexpr u64 k2M = u64{1} << 21;
constexpr u64 k1G = u64{1} << 30;

// The loader runs identity-mapped: a table's physical address is a valid pointer to it.
ktl::Span<u64> table_at(u64 phys) {
  return ktl::Span<u64>::from_raw(reinterpret_cast<u64*>(static_cast<ktl::uptr>(phys)), 512);
}
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
  if (access != Access::ReadExecute) bits |= kNoExecute;
  if (global) bits |= kGlobal;
  // PAT layout programmed by the loader: index 0 = WB, 1 = WT, 2 = UC-, 3 = UC, 4 = WB, 5 = WC.
  switch (cache) {
    case Cache::WriteBack: break;
    case Cache::Uncached: bits |= kCacheDisable | kWriteThrough; break;
    case Cache::WriteCombining: bits |= kWriteThrough | (huge ? kPatLarge : kPat4K); break;
  }
  if (huge) bits |= kHuge;
  return bits;
}

ktl::Result<void, TableError> TableBuilder::map(u64 virt, u64 phys, u64 size, Access access,
                                                Cache cache, bool allow_huge, bool global) {
  if (!ktl::is_aligned(virt, k4K) || !ktl::is_aligned(phys, k4K) || !ktl::is_aligned(size, k4K)) {
    return ktl::Err(TableError::Misaligned);
  }
  if (ktl::checked_add(virt, size).overflow && virt + size != 0) return ktl::Err(TableError::AddressOverflow);

  u64 done = 0;
  while (done < size) {
    u64 v = virt + done;
    u64 p = phys + done;
    u64 left = size - done;
    ktl::Span<u64> pml4 = table_at(root_);
    u64& l4e = pml4[(v >> 39) & 511];
    TRY(ensure_table(l4e));
    ktl::Span<u64> pdpt = table_at(l4e & kAddrMask);
    u64& l3e = pdpt[(v >> 30) & 511];

    if (allow_huge && gigabyte_pages_ && (l3e & kPresent) == 0 && ktl::is_aligned(v, k1G) &&
        ktl::is_aligned(p, k1G) && left >= k1G) {
      l3e = p | leaf_bits(access, cache, true, global);
      done += k1G;
      continue;
    }
    if ((l3e & kPresent) != 0 && (l3e & kHuge) != 0) {  // already mapped by a 1 GiB page
      done += k1G - (v & (k1G - 1));
      continue;
    }
    TRY(ensure_table(l3e));
    ktl::Span<u64> pd = table_at(l3e & kAddrMask);
    u64& l2e = pd[(v >> 21) & 511];
    if (allow_huge && (l2e & kPresent) == 0 && ktl::is_aligned(v, k2M) && ktl::is_aligned(p, k2M) &&
        left >= k2M) {
      l2e = p | leaf_bits(access, cache, true, global);
      done += k2M;
      continue;
    }
    if ((l2e & kPresent) != 0 && (l2e & kHuge) != 0) {
      done += k2M - (v & (k2M - 1));
      continue;
    }
    TRY(ensure_table(l2e));
    ktl::Span<u64> pt = table_at(l2e & kAddrMask);
    u64& l1e = pt[(v >> 12) & 511];
    if ((l1e & kPresent) == 0) l1e = p | leaf_bits(access, cache, false, global);
    done += k4K;
  }
  return ktl::ok();
}

void TableBuilder::install_recursive_slot(usize slot) {
  table_at(root_)[slot] = root_ | kPresent | kWritable | kNoExecute;
}

}  // namespace loader::x86_64
