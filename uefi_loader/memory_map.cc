module;

#include <ktl/macros.h>

module loader.memory_map;

import ktl;
import boot.info;

namespace loader {

using boot::MemoryKind;

namespace {
constexpr u64 kPage = 4096;
constexpr u64 kEfiMemoryRuntime = u64{1} << 63;
// Where every interval is cut off: the end of the last page whose end is representable (the last
// page of the 64-bit space cannot be described by a base and a size).
constexpr u64 kTop = ~(kPage - 1);

// Insertion sort + dedupe in place; the arrays are a few hundred entries.
usize sort_unique(ktl::Span<u64> v, usize n) {
  for (usize i = 1; i < n; ++i) {
    u64 x = v[i];
    usize j = i;
    while (j > 0 && v[j - 1] > x) {
      v[j] = v[j - 1];
      --j;
    }
    v[j] = x;
  }
  usize m = 0;
  for (usize i = 0; i < n; ++i) {
    if (m == 0 || v[m - 1] != v[i]) v[m++] = v[i];
  }
  return m;
}

struct Interval {
  u64 lo;
  u64 hi;
  MemoryKind kind;
};

// Firmware ranges are page-granular by specification; if one is not, usable memory shrinks
// inwards and anything else grows outwards, so nothing reserved is ever handed out.
// Every interval ends at kTop at the latest; rounding up past it saturates there.
Interval firmware_interval(const FirmwareRange& r) {
  MemoryKind kind = classify_efi_type(r.efi_type, r.attribute);
  u64 size = r.pages > (~u64{0} / kPage) ? ~u64{0} : r.pages * kPage;
  u64 end = ktl::checked_add(r.base, size).overflow ? kTop : r.base + size;
  if (kind == MemoryKind::Usable || kind == MemoryKind::LoaderReclaimable) {
    // A base inside the last page rounds up past 2^64: nothing of it is usable (the wrapped value
    // would have made everything from 0 usable).
    auto lo = ktl::checked_align_up(r.base, kPage);
    if (lo.overflow) return {kTop, kTop, kind};
    u64 hi = ktl::align_down(end, kPage);
    return {lo.value, hi < lo.value ? lo.value : hi, kind};
  }
  auto hi = ktl::checked_align_up(end, kPage);
  return {ktl::align_down(r.base, kPage), hi.overflow ? kTop : hi.value, kind};
}

Interval placement_interval(const Placement& p) {
  auto end = ktl::checked_add(p.base, p.size);
  // An end that rounds up past 2^64 saturates like an end that overflows (the wrapped value
  // would have dropped the placement).
  auto hi = ktl::checked_align_up(end.value, kPage);
  return {ktl::align_down(p.base, kPage), end.overflow || hi.overflow ? kTop : hi.value, p.kind};
}

}  // namespace

MemoryKind classify_efi_type(u32 efi_type, u64 attribute) {
  if ((attribute & kEfiMemoryRuntime) != 0) return MemoryKind::RuntimeServices;
  switch (efi_type) {
    case 1:  // LoaderCode
    case 2:  // LoaderData
      return MemoryKind::LoaderReclaimable;
    case 3:  // BootServicesCode
    case 4:  // BootServicesData
    case 7:  // ConventionalMemory
      return MemoryKind::Usable;
    case 5:  // RuntimeServicesCode
    case 6:  // RuntimeServicesData
      return MemoryKind::RuntimeServices;
    case 8: return MemoryKind::Bad;              // UnusableMemory
    case 9: return MemoryKind::AcpiReclaimable;  // ACPIReclaimMemory
    case 10: return MemoryKind::AcpiNvs;         // ACPIMemoryNVS
    case 11:                                     // MemoryMappedIO
    case 12:                                     // MemoryMappedIOPortSpace
      return MemoryKind::Mmio;
    default:  // Reserved, PalCode, Persistent, Unaccepted and anything newer
      return MemoryKind::Reserved;
  }
}

u32 kind_priority(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::Usable: return 0;
    case MemoryKind::LoaderReclaimable: return 1;
    case MemoryKind::BootInfo: return 2;
    case MemoryKind::PageTables: return 3;
    case MemoryKind::KernelStack: return 4;
    case MemoryKind::KernelImage: return 5;
    case MemoryKind::Ramdisk: return 6;
    case MemoryKind::AcpiReclaimable: return 7;
    case MemoryKind::AcpiNvs: return 8;
    case MemoryKind::RuntimeServices: return 9;
    case MemoryKind::Mmio: return 10;
    case MemoryKind::Framebuffer: return 11;
    case MemoryKind::Reserved: return 12;
    case MemoryKind::Bad: return 13;
  }
  return 12;
}

ktl::Result<usize, MapError> normalise_memory_map(ktl::Span<const FirmwareRange> firmware,
                                                  ktl::Span<const Placement> placements,
                                                  ktl::Span<u64> scratch,
                                                  ktl::Span<boot::MemoryMapEntry> out) {
  if (scratch.size() < scratch_entries_needed(firmware.size(), placements.size())) {
    return ktl::Err(MapError::ScratchTooSmall);
  }
  // 1. All boundaries.
  usize n = 0;
  auto add_bounds = [&](Interval iv) {
    if (iv.hi <= iv.lo) return;
    scratch[n++] = iv.lo;
    scratch[n++] = iv.hi;
  };
  for (const FirmwareRange& r : firmware) add_bounds(firmware_interval(r));
  for (const Placement& p : placements) add_bounds(placement_interval(p));
  n = sort_unique(scratch, n);

  // 2. The winning kind of each elementary interval; 3. merge while emitting.
  usize count = 0;
  for (usize i = 0; i + 1 < n; ++i) {
    u64 lo = scratch[i];
    u64 hi = scratch[i + 1];
    bool covered = false;
    MemoryKind best = MemoryKind::Usable;
    auto consider = [&](Interval iv) {
      if (iv.lo <= lo && hi <= iv.hi && iv.hi > iv.lo) {
        if (!covered || kind_priority(iv.kind) > kind_priority(best)) best = iv.kind;
        covered = true;
      }
    };
    for (const FirmwareRange& r : firmware) consider(firmware_interval(r));
    for (const Placement& p : placements) consider(placement_interval(p));
    if (!covered) continue;  // a hole: neither RAM nor anything else
    if (count > 0) {
      boot::MemoryMapEntry& last = out[count - 1];
      if (last.kind == best && last.base + last.size == lo) {
        last.size += hi - lo;
        continue;
      }
    }
    if (count == out.size()) return ktl::Err(MapError::OutputTooSmall);
    out[count++] = boot::MemoryMapEntry{lo, hi - lo, best, 0};
  }
  return count;
}

}  // namespace loader
