module;

#include <ktl/macros.h>

module kernel.boot_check;

import ktl;
import boot.info;
import mm.addr;
import mm.paging.x86;

namespace kernel {

namespace {
constexpr u64 kPage = 4096;

// [P:0x... - P:0x...) kind
struct EntryText {
  const boot::MemoryMapEntry& r;
};
void format_value(ktl::FormatSink& sink, const EntryText& t, const ktl::FormatSpec&) {
  auto end = ktl::checked_add(t.r.base, t.r.size);
  ktl::format_to(sink, "[{:#018x} - ", t.r.base);
  if (end.overflow) {
    sink.write("(overflows)");
  } else {
    ktl::format_to(sink, "{:#018x}", end.value);
  }
  ktl::format_to(sink, ") {} ({})", boot::to_string(t.r.kind), ktl::to_underlying(t.r.kind));
}
}  // namespace

void format_value(ktl::FormatSink& sink, const HeaderError& e, const ktl::FormatSpec&) {
  switch (e.problem) {
    case HeaderProblem::Missing: sink.write("no boot information (null pointer)"); break;
    case HeaderProblem::BadMagic:
      ktl::format_to(sink, "bad magic {:#018x} (expected {:#018x}): not a Ferrite boot information block",
                     e.found, e.expected);
      break;
    case HeaderProblem::VersionMismatch:
      ktl::format_to(sink, "boot protocol version {} does not match this kernel's version {}", e.found,
                     e.expected);
      break;
    case HeaderProblem::SizeMismatch:
      ktl::format_to(sink, "boot information size {} does not match this kernel's size {}", e.found,
                     e.expected);
      break;
    case HeaderProblem::CommandLineTooLong:
      ktl::format_to(sink, "command line of {} bytes exceeds the limit of {}", e.found, e.expected);
      break;
    case HeaderProblem::DirectMapMismatch:
      ktl::format_to(sink, "direct map at {:#018x}, but the boot protocol fixes it at {:#018x}", e.found,
                     e.expected);
      break;
    case HeaderProblem::PatMismatch:
      ktl::format_to(sink,
                     "the loader programmed IA32_PAT {:#018x}, but the kernel's page tables assume {:#018x}",
                     e.found, e.expected);
      break;
  }
}

ktl::Result<void, HeaderError> check_header(const boot::BootInfo* info) {
  if (info == nullptr) return ktl::Err(HeaderError{HeaderProblem::Missing, 0, 0});
  if (info->magic != boot::kMagic)
    return ktl::Err(HeaderError{HeaderProblem::BadMagic, info->magic, boot::kMagic});
  if (info->version != boot::kVersion) {
    return ktl::Err(HeaderError{HeaderProblem::VersionMismatch, info->version, boot::kVersion});
  }
  if (info->size != sizeof(boot::BootInfo)) {
    return ktl::Err(HeaderError{HeaderProblem::SizeMismatch, info->size, sizeof(boot::BootInfo)});
  }
  if (info->command_line_size > kMaxCommandLine) {
    return ktl::Err(HeaderError{HeaderProblem::CommandLineTooLong, info->command_line_size, kMaxCommandLine});
  }
  if (info->direct_map_base != boot::layout::kDirectMapBase) {
    return ktl::Err(
        HeaderError{HeaderProblem::DirectMapMismatch, info->direct_map_base, boot::layout::kDirectMapBase});
  }
  if (info->pat != mm::paging::x86::kPat) {
    return ktl::Err(HeaderError{HeaderProblem::PatMismatch, info->pat, mm::paging::x86::kPat});
  }
  return ktl::ok();
}

void format_value(ktl::FormatSink& sink, const MapError& e, const ktl::FormatSpec&) {
  switch (e.problem) {
    case MapProblem::Missing: sink.write("the memory map is missing (no address or no entries)"); return;
    case MapProblem::TooLarge:
      ktl::format_to(sink, "the memory map has {} entries, more than the limit of {}", e.count,
                     kMaxMapEntries);
      return;
    case MapProblem::NoUsableMemory: sink.write("the memory map has no usable memory"); return;
    default: break;
  }
  ktl::format_to(sink, "memory map entry {} {} ", e.index, EntryText{e.entry});
  switch (e.problem) {
    case MapProblem::ZeroSize: sink.write("is empty (size 0)"); break;
    case MapProblem::Unaligned: sink.write("is not aligned to 4 KiB"); break;
    case MapProblem::Overflows:
      sink.write("has an absurd size: it ends beyond the 52-bit physical address space");
      break;
    case MapProblem::UnknownKind: sink.write("has an unknown kind"); break;
    case MapProblem::Unsorted:
      ktl::format_to(sink, "is out of order: it starts below entry {} {}", e.index - 1,
                     EntryText{e.previous});
      break;
    case MapProblem::Overlap:
      ktl::format_to(sink, "overlaps entry {} {}", e.index - 1, EntryText{e.previous});
      break;
    default: break;
  }
}

bool is_known_kind(boot::MemoryKind k) {
  auto v = ktl::to_underlying(k);
  return v >= ktl::to_underlying(boot::MemoryKind::Usable) &&
         v <= ktl::to_underlying(boot::MemoryKind::Ramdisk);
}

ktl::Result<MapSummary, MapError> check_memory_map(ktl::Span<const boot::MemoryMapEntry> map) {
  auto error = [&](MapProblem p, usize i) {
    MapError e{p, i, map[i], i > 0 ? map[i - 1] : boot::MemoryMapEntry{}, map.size()};
    return ktl::Err(e);
  };
  if (map.empty()) return ktl::Err(MapError{MapProblem::Missing, 0, {}, {}, 0});
  if (map.size() > kMaxMapEntries) return ktl::Err(MapError{MapProblem::TooLarge, 0, {}, {}, map.size()});
  MapSummary s;
  for (usize i = 0; i < map.size(); ++i) {
    const boot::MemoryMapEntry& r = map[i];
    if (r.size == 0) return error(MapProblem::ZeroSize, i);
    auto end = ktl::checked_add(r.base, r.size);
    if (end.overflow || end.value > mm::PhysAddr::kLimit) return error(MapProblem::Overflows, i);
    if (!ktl::is_aligned(r.base, kPage) || !ktl::is_aligned(r.size, kPage))
      return error(MapProblem::Unaligned, i);
    if (!is_known_kind(r.kind)) return error(MapProblem::UnknownKind, i);
    if (i > 0) {
      const boot::MemoryMapEntry& prev = map[i - 1];
      if (r.base < prev.base) return error(MapProblem::Unsorted, i);
      if (r.base < prev.base + prev.size) return error(MapProblem::Overlap, i);
    }
    s.bytes_by_kind[ktl::to_underlying(r.kind)] += r.size;
    if (r.kind == boot::MemoryKind::Usable) s.usable_bytes += r.size;
    s.highest_address = end.value;
  }
  s.regions = map.size();
  if (s.usable_bytes == 0) return ktl::Err(MapError{MapProblem::NoUsableMemory, 0, {}, {}, map.size()});
  return s;
}

}  // namespace kernel
