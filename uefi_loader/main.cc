// The Ferrite UEFI loader: BOOTX64.EFI / BOOTAA64.EFI.
//
// x86_64: reads \ferrite\kernel.elf (and optionally \ferrite\cmdline.txt) from the volume it was
// loaded from, validates the ELF, loads its segments, builds fresh page tables (identity map of
// RAM, direct map of all physical memory, the kernel in the top 2 GiB with per-segment
// permissions, a stack with an unmapped guard page), exits boot services and jumps to the kernel
// with a boot::BootInfo. Every failure before ExitBootServices prints a clear message and returns
// an error status to the firmware, which then tries its next boot option.
//
// aarch64: prints its banner and returns EFI_UNSUPPORTED (the aarch64 kernel is a later roadmap
// item).
#include <ktl/macros.h>

import ktl;
import efi;
import boot.info;
import loader.elf;
import loader.memory_map;
#if defined(__x86_64__)
import loader.x86_64_tables;
import arch.x86_64.cpu;
#endif

namespace {

using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

constexpr const char* kVersion = "0.1.0";
#if defined(__x86_64__)
constexpr const char* kArch = "x86_64";
#else
constexpr const char* kArch = "aarch64";
#endif

// Where a panic report goes; cleared once boot services are gone.
efi::SimpleTextOutput* g_panic_console = nullptr;

struct Loader {
  efi::Handle image;
  efi::SystemTable* st;
  efi::Console con;
  efi::BootServices bs;
};

// Reports a failed step and returns its status, which efi_main hands back to the firmware.
efi::Status fail(Loader& l, const char* what, efi::Status status) {
  ktl::format_to(l.con, "ferrite-loader: error: {}: {}\n", what, efi::to_string(status));
  return status;
}

#if defined(__x86_64__)

efi::Result<efi::File> open_boot_volume(Loader& l) {
  auto* loaded = TRY(l.bs.handle_protocol<efi::LoadedImage>(l.image));
  auto* fs = TRY(l.bs.handle_protocol<efi::SimpleFileSystem>(loaded->device_handle));
  efi::FileProtocol* root = nullptr;
  TRY(efi::check(fs->open_volume(fs, &root)));
  return efi::File(root);
}

constexpr const efi::Char16* kKernelPath = u"\\ferrite\\kernel.elf";
constexpr const char* kKernelName = "\\ferrite\\kernel.elf";
constexpr const efi::Char16* kCmdlinePath = u"\\ferrite\\cmdline.txt";
constexpr u64 kMaxKernelSize = u64{64} << 20;
constexpr u64 kMaxCmdlineSize = 4095;
constexpr u64 kPage = 4096;
constexpr u64 kStackPages = 16;  // 64 KiB boot stack
constexpr u64 kMapSlack = 32;    // descriptors the map may grow by before ExitBootServices

u8* phys_ptr(u64 phys) { return reinterpret_cast<u8*>(static_cast<ktl::uptr>(phys)); }
ktl::Span<u8> phys_bytes(u64 phys, u64 size) { return ktl::Span<u8>::from_raw(phys_ptr(phys), size); }
u64 pages_for(u64 bytes) { return ktl::align_up(bytes, kPage) / kPage; }

// Page-table frames come from one contiguous LoaderData block, so the hand-off map can mark
// exactly the used part as page tables.
class PoolFrames final : public loader::x86_64::FrameSource {
 public:
  PoolFrames(u64 base, u64 frames) : base_(base), frames_(frames) {}
  u64 allocate_zeroed_frame() override {
    if (used_ == frames_) return 0;
    u64 frame = base_ + used_ * kPage;
    ++used_;
    ktl::fill_bytes(phys_bytes(frame, kPage), 0);
    return frame;
  }
  [[nodiscard]] u64 base() const { return base_; }
  [[nodiscard]] u64 used_bytes() const { return used_ * kPage; }

 private:
  u64 base_;
  u64 frames_;
  u64 used_ = 0;
};

// Where the boot-info block's parts live: one LoaderData allocation sized before the final
// GetMemoryMap, so nothing is allocated between that call and ExitBootServices.
struct BootBlock {
  u64 base = 0;
  u64 size = 0;
  boot::BootInfo* info = nullptr;
  ktl::Span<char> cmdline;
  ktl::Span<u8> raw_map;
  ktl::Span<loader::FirmwareRange> firmware;
  ktl::Span<u64> scratch;
  ktl::Span<boot::MemoryRegion> regions;
};

template <class T>
ktl::Span<T> carve(u64& cursor, usize count) {
  cursor = ktl::align_up<u64>(cursor, 16);
  auto span = ktl::Span<T>::from_raw(reinterpret_cast<T*>(static_cast<ktl::uptr>(cursor)), count);
  cursor += count * sizeof(T);
  return span;
}

struct MapInfo {
  usize size;
  usize descriptor_size;
};

efi::Result<MapInfo> query_map_size(const efi::BootServices& bs) {
  usize size = 0, key = 0, desc = 0;
  u32 version = 0;
  efi::Status s = bs.raw()->get_memory_map(&size, nullptr, &key, &desc, &version);
  if (s != efi::Status::BufferTooSmall) return ktl::Err(efi::is_error(s) ? s : efi::Status::DeviceError);
  if (desc < sizeof(efi::MemoryDescriptor)) return ktl::Err(efi::Status::IncompatibleVersion);
  return MapInfo{size, desc};
}

struct MapSnapshot {
  usize size;
  usize key;
  usize descriptor_size;
  u32 descriptor_version;
};

// Reads the firmware's map into `buffer`; allocates nothing.
efi::Result<MapSnapshot> read_map(const efi::BootServices& bs, ktl::Span<u8> buffer) {
  MapSnapshot m{buffer.size(), 0, 0, 0};
  TRY(efi::check(bs.raw()->get_memory_map(&m.size, reinterpret_cast<efi::MemoryDescriptor*>(buffer.data()),
                                          &m.key, &m.descriptor_size, &m.descriptor_version)));
  if (m.descriptor_size < sizeof(efi::MemoryDescriptor)) return ktl::Err(efi::Status::IncompatibleVersion);
  return m;
}

efi::MemoryDescriptor descriptor_at(ktl::Span<const u8> raw, usize stride, usize i) {
  efi::MemoryDescriptor d;
  ktl::copy_bytes(ktl::Span<u8>::from_raw(reinterpret_cast<u8*>(&d), sizeof d), raw.subspan(i * stride, sizeof d));
  return d;
}

// The end of the highest range that is RAM-like (not MMIO), at least 4 GiB so the low MMIO window
// (local APIC, I/O APIC, PCI BARs) is covered by the identity and direct maps.
u64 physical_top(ktl::Span<const u8> raw, usize stride, usize count) {
  u64 top = u64{4} << 30;
  for (usize i = 0; i < count; ++i) {
    efi::MemoryDescriptor d = descriptor_at(raw, stride, i);
    if (d.type == efi::MemoryType::MemoryMappedIo || d.type == efi::MemoryType::MemoryMappedIoPortSpace) continue;
    u64 end = d.physical_start + d.number_of_pages * kPage;
    if (end > top) top = end;
  }
  return ktl::align_up<u64>(top, u64{1} << 30);
}

[[noreturn]] void jump_to_kernel(u64 cr3, u64 stack_top, u64 entry, u64 boot_info_virt) {
  using namespace arch::x86_64;
  cli();
  // NX for the kernel's tables, and write protection for supervisor writes to read-only pages.
  wrmsr(msr::kEfer, rdmsr(msr::kEfer) | efer::kNxe);
  write_cr0(read_cr0() | cr0::kWp);
  // PAT: PA0..PA7 = WB, WT, UC-, UC, WB, WC, UC-, UC (index 5 is write-combining).
  wrmsr(msr::kPat, 0x0007'0106'0007'0406ull);
  __asm__ volatile(
      "mov %0, %%cr3\n\t"
      "mov %1, %%rsp\n\t"
      "xor %%ebp, %%ebp\n\t"
      "pushq $0\n\t"
      "jmp *%2\n\t"
      :
      : "r"(cr3), "r"(stack_top), "r"(entry), "D"(boot_info_virt)
      : "memory");
  __builtin_unreachable();
}

efi::Status boot_x86_64(Loader& l) {
  using loader::x86_64::Access;
  using loader::x86_64::Cache;

  // --- the kernel file --------------------------------------------------------------------------
  auto root_r = open_boot_volume(l);
  if (root_r.is_err()) return fail(l, "cannot open the volume the loader was started from", root_r.error());
  efi::File root = root_r.release_value();

  auto kernel_file = root.open(kKernelPath);
  if (kernel_file.is_err()) {
    ktl::InlineString<96> what;
    ktl::format_to(what, "cannot open the kernel {}", kKernelName);
    return fail(l, what.c_str(), kernel_file.error());
  }
  auto kernel_bytes_r = kernel_file.value().read_all(l.bs, kMaxKernelSize);
  if (kernel_bytes_r.is_err()) {
    ktl::InlineString<96> what;
    ktl::format_to(what, "cannot read the kernel {} (at most {} MiB)", kKernelName, kMaxKernelSize >> 20);
    return fail(l, what.c_str(), kernel_bytes_r.error());
  }
  efi::PoolBuffer kernel_bytes = kernel_bytes_r.release_value();

  loader::Constraints constraints{loader::Machine::X86_64, boot::layout::kKernelBase};
  auto image_r = loader::parse_kernel(ktl::Span<const u8>(kernel_bytes.bytes()), constraints);
  if (image_r.is_err()) {
    ktl::format_to(l.con, "ferrite-loader: error: invalid kernel {}: {}\n", kKernelName,
                   loader::to_string(image_r.error()));
    return fail(l, "refusing to boot an invalid kernel", efi::Status::LoadError);
  }
  const loader::KernelImage image = image_r.release_value();
  u64 image_size = image.highest_vaddr - image.lowest_vaddr;
  ktl::format_to(l.con, "ferrite-loader: kernel {}: {} bytes, {} segments, entry {:#x}\n", kKernelName,
                 kernel_bytes.size(), image.segment_count, image.entry);

  // --- the optional command line ------------------------------------------------------------------
  ktl::Array<char, kMaxCmdlineSize + 1> cmdline{};
  usize cmdline_size = 0;
  if (auto f = root.open(kCmdlinePath); f.is_ok()) {
    auto text = f.value().read_all(l.bs, kMaxCmdlineSize);
    if (text.is_err()) return fail(l, "cannot read \\ferrite\\cmdline.txt (at most 4095 bytes)", text.error());
    for (u8 c : text.value().bytes()) {
      if (c == '\r' || c == '\n' || c == 0) break;  // the first line only
      cmdline[cmdline_size++] = static_cast<char>(c);
    }
  } else if (f.error() != efi::Status::NotFound) {
    return fail(l, "cannot open \\ferrite\\cmdline.txt", f.error());
  }
  ktl::format_to(l.con, "ferrite-loader: command line: \"{}\"\n", ktl::StringView(cmdline.data(), cmdline_size));

  // --- load the segments ------------------------------------------------------------------------
  auto kernel_phys_r = l.bs.allocate_pages(pages_for(image_size));
  if (kernel_phys_r.is_err()) return fail(l, "cannot allocate memory for the kernel image", kernel_phys_r.error());
  u64 kernel_phys = kernel_phys_r.value();
  ktl::fill_bytes(phys_bytes(kernel_phys, image_size), 0);
  for (usize i = 0; i < image.segment_count; ++i) {
    const loader::Segment& s = image.segments[i];
    ktl::copy_bytes(phys_bytes(kernel_phys + (s.vaddr - image.lowest_vaddr), s.file_size),
                    ktl::Span<const u8>(kernel_bytes.bytes()).subspan(s.file_offset, s.file_size));
  }
  kernel_bytes = efi::PoolBuffer();  // the file copy is no longer needed

  auto stack_phys_r = l.bs.allocate_pages(kStackPages);
  if (stack_phys_r.is_err()) return fail(l, "cannot allocate the kernel stack", stack_phys_r.error());
  u64 stack_phys = stack_phys_r.value();
  // Stack virtual range: one unmapped guard page above the image, then the stack.
  u64 stack_bottom = image.highest_vaddr + kPage;
  u64 stack_top = stack_bottom + kStackPages * kPage;

  // --- size and allocate the boot-info block -----------------------------------------------------
  auto map_info = query_map_size(l.bs);
  if (map_info.is_err()) return fail(l, "GetMemoryMap (size query) failed", map_info.error());
  usize max_descriptors = map_info.value().size / map_info.value().descriptor_size + kMapSlack;
  constexpr usize kPlacements = 5;
  usize raw_map_bytes = max_descriptors * map_info.value().descriptor_size;
  usize out_entries = loader::output_entries_needed(max_descriptors, kPlacements);
  u64 block_bytes = 2 * kPage + raw_map_bytes + max_descriptors * sizeof(loader::FirmwareRange) +
                    loader::scratch_entries_needed(max_descriptors, kPlacements) * sizeof(u64) +
                    out_entries * sizeof(boot::MemoryRegion) + 64;
  auto block_r = l.bs.allocate_pages(pages_for(block_bytes));
  if (block_r.is_err()) return fail(l, "cannot allocate the boot information block", block_r.error());
  BootBlock block;
  block.base = block_r.value();
  block.size = pages_for(block_bytes) * kPage;
  ktl::fill_bytes(phys_bytes(block.base, block.size), 0);
  u64 cursor = block.base;
  block.info = reinterpret_cast<boot::BootInfo*>(phys_ptr(cursor));
  cursor += kPage;
  block.cmdline = carve<char>(cursor, kPage);
  block.raw_map = carve<u8>(cursor, raw_map_bytes);
  block.firmware = carve<loader::FirmwareRange>(cursor, max_descriptors);
  block.scratch = carve<u64>(cursor, loader::scratch_entries_needed(max_descriptors, kPlacements));
  block.regions = carve<boot::MemoryRegion>(cursor, out_entries);
  for (usize i = 0; i < cmdline_size; ++i) block.cmdline[i] = cmdline[i];

  // --- page tables -----------------------------------------------------------------------------------
  auto snapshot = read_map(l.bs, block.raw_map);
  if (snapshot.is_err()) return fail(l, "GetMemoryMap failed", snapshot.error());
  u64 top = physical_top(block.raw_map, snapshot.value().descriptor_size,
                         snapshot.value().size / snapshot.value().descriptor_size);
  bool gigabyte_pages = (arch::x86_64::cpuid(0x8000'0001).edx & (1u << 26)) != 0;
  u64 gib = top >> 30;
  // Worst case with 2 MiB pages: one PD per GiB for each of the two maps, plus PDPTs, plus the
  // kernel's and the stack's tables.
  u64 pool_frames = 2 * (gib + gib / 512 + 2) + 16;
  auto pool_r = l.bs.allocate_pages(pool_frames);
  if (pool_r.is_err()) return fail(l, "cannot allocate page-table memory", pool_r.error());
  PoolFrames frames(pool_r.value(), pool_frames);
  loader::x86_64::TableBuilder tables(frames);
  tables.set_gigabyte_pages(gigabyte_pages);
  auto map_or_fail = [&](const char* what, ktl::Result<void, loader::x86_64::TableError> r) -> bool {
    if (r.is_ok()) return true;
    ktl::format_to(l.con, "ferrite-loader: error: building page tables ({}): {}\n", what,
                   loader::x86_64::to_string(r.error()));
    return false;
  };
  if (!map_or_fail("root", tables.init())) return fail(l, "page tables", efi::Status::OutOfResources);
  // The two pages around the hand-off code first, executable, so the instructions after the CR3
  // switch can run; everything else in the identity map is NX.
  u64 trampoline = ktl::align_down<u64>(reinterpret_cast<ktl::uptr>(&jump_to_kernel), kPage);
  bool ok = map_or_fail("trampoline", tables.map(trampoline, trampoline, 2 * kPage, Access::ReadExecute,
                                                 Cache::WriteBack, false, false)) &&
            map_or_fail("identity map", tables.map(0, 0, top, Access::ReadWrite, Cache::WriteBack, true, false)) &&
            map_or_fail("direct map", tables.map(boot::layout::kDirectMapBase, 0, top, Access::ReadWrite,
                                                 Cache::WriteBack, true, true)) &&
            map_or_fail("stack", tables.map(stack_bottom, stack_phys, kStackPages * kPage, Access::ReadWrite,
                                            Cache::WriteBack, false, true));
  for (usize i = 0; ok && i < image.segment_count; ++i) {
    const loader::Segment& s = image.segments[i];
    u64 lo = ktl::align_down(s.vaddr, kPage);
    u64 hi = ktl::align_up(s.end(), kPage);
    Access access = s.executable() ? Access::ReadExecute : s.writable() ? Access::ReadWrite : Access::ReadOnly;
    ok = map_or_fail("kernel segment", tables.map(lo, kernel_phys + (lo - image.lowest_vaddr), hi - lo, access,
                                                  Cache::WriteBack, false, true));
  }
  if (!ok) return fail(l, "page tables", efi::Status::OutOfResources);
  tables.install_recursive_slot(boot::layout::kRecursiveSlot);

  ktl::format_to(l.con, "ferrite-loader: page tables: {} frames, identity + direct map of {} GiB ({} pages)\n",
                 frames.used_bytes() / kPage, gib, gigabyte_pages ? "1 GiB" : "2 MiB");
  ktl::format_to(l.con, "ferrite-loader: exiting boot services and starting the kernel\n");

  // --- ExitBootServices: nothing may allocate or print between the final GetMemoryMap and it -----
  MapSnapshot final_map{};
  bool exited = false;
  for (int attempt = 0; attempt < 8 && !exited; ++attempt) {
    auto m = read_map(l.bs, block.raw_map);
    if (m.is_err()) return attempt == 0 ? fail(l, "GetMemoryMap failed", m.error()) : m.error();
    final_map = m.value();
    efi::Status s = l.bs.raw()->exit_boot_services(l.image, final_map.key);
    if (s == efi::Status::Success) exited = true;
    else if (s != efi::Status::InvalidParameter) return attempt == 0 ? fail(l, "ExitBootServices failed", s) : s;
  }
  if (!exited) {
    // Boot services may be half gone after a failed attempt: reset rather than return into them.
    l.st->runtime_services->reset_system(efi::ResetType::Cold, efi::Status::Aborted, 0, nullptr);
    arch::x86_64::halt_forever();
  }
  arch::x86_64::cli();
  g_panic_console = nullptr;

  // --- the hand-off map and boot info (no firmware calls from here on) --------------------------
  usize count = final_map.size / final_map.descriptor_size;
  for (usize i = 0; i < count; ++i) {
    efi::MemoryDescriptor d = descriptor_at(block.raw_map, final_map.descriptor_size, i);
    block.firmware[i] = loader::FirmwareRange{d.physical_start, d.number_of_pages, ktl::to_underlying(d.type),
                                              d.attribute};
  }
  const loader::Placement placements[kPlacements] = {
      {kernel_phys, image_size, boot::MemoryKind::KernelImage},
      {stack_phys, kStackPages * kPage, boot::MemoryKind::KernelStack},
      {frames.base(), frames.used_bytes(), boot::MemoryKind::PageTables},
      {block.base, block.size, boot::MemoryKind::BootInfo},
      {0, 0, boot::MemoryKind::Reserved},  // FIXME(issue 3): framebuffer, ramdisk
  };
  auto regions = loader::normalise_memory_map(block.firmware.first(count), ktl::Span<const loader::Placement>(placements),
                                              block.scratch, block.regions);
  if (regions.is_err()) arch::x86_64::halt_forever();  // sized above; cannot happen

  boot::BootInfo& info = *block.info;
  info.magic = boot::kMagic;
  info.version = boot::kVersion;
  info.size = sizeof(boot::BootInfo);
  info.memory_map = reinterpret_cast<ktl::uptr>(block.regions.data());
  info.memory_map_count = regions.value();
  info.kernel_phys_base = kernel_phys;
  info.kernel_phys_size = image_size;
  info.kernel_virt_base = image.lowest_vaddr;
  info.page_table_root = tables.root();
  info.stack_virt_top = stack_top;
  info.stack_size = kStackPages * kPage;
  info.direct_map_base = boot::layout::kDirectMapBase;
  info.command_line = reinterpret_cast<ktl::uptr>(block.cmdline.data());
  info.command_line_size = cmdline_size;
  info.efi_system_table = reinterpret_cast<ktl::uptr>(l.st);
  info.efi_memory_map = reinterpret_cast<ktl::uptr>(block.raw_map.data());
  info.efi_memory_map_size = final_map.size;
  info.efi_descriptor_size = static_cast<u32>(final_map.descriptor_size);
  info.efi_descriptor_version = final_map.descriptor_version;
  info.loader_ticks_at_handoff = arch::x86_64::rdtsc();

  jump_to_kernel(tables.root(), stack_top, image.entry,
                 boot::layout::kDirectMapBase + reinterpret_cast<ktl::uptr>(block.info));
}

#endif  // __x86_64__

efi::Status run(Loader& l) {
  ktl::format_to(l.con, "\nFerrite UEFI loader {} ({})\n", kVersion, kArch);
  if (auto w = l.bs.disable_watchdog(); w.is_err()) {
    ktl::format_to(l.con, "ferrite-loader: warning: cannot disable the watchdog: {}\n", efi::to_string(w.error()));
  }
#if defined(__x86_64__)
  return boot_x86_64(l);
#else
  ktl::format_to(l.con, "ferrite-loader: the aarch64 kernel hand-off is not implemented yet (roadmap: aarch64)\n");
  return fail(l, "no kernel to start on aarch64", efi::Status::Unsupported);
#endif
}

}  // namespace

extern "C" efi::Status efi_main(efi::Handle image, efi::SystemTable* st) {
  g_panic_console = st->con_out;
  Loader l{image, st, efi::Console(st->con_out), efi::BootServices(st->boot_services)};
  return run(l);
}

// ktl.log's hook: shared code's messages go to the console while boot services last.
extern "C" void ferrite_log_write(int, const char* text, ktl::usize length) {
  efi::Console con(g_panic_console);
  con.write(ktl::StringView(text, length));
  con.write("\n");
}

// The environment hook ktl needs: a panic in the loader prints and stops (before ExitBootServices
// ConOut still works; after it nothing can be printed and the CPU halts).
extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line, const char*) {
  efi::Console con(g_panic_console);
  ktl::format_to(con, "ferrite-loader: PANIC: {} at {}:{}\n", message, file, line);
  for (;;) {
#if defined(__x86_64__)
    __asm__ volatile("cli; hlt");
#else
    __asm__ volatile("wfi");
#endif
  }
}
