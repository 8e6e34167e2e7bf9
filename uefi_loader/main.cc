// The Ferrite UEFI loader: BOOTX64.EFI / BOOTAA64.EFI.
//
// Both: print the banner and the firmware's Secure Boot state (loader.secure_boot).
//
// x86_64: reads \ferrite\kernel.elf (and optionally \ferrite\cmdline.txt and \ferrite\initrd.img)
// from the volume it was loaded from, validates the ELF and checks its SHA-256 against the digest
// built into the loader, finds the ACPI RSDP and SMBIOS entry point (checksums validated), picks a
// GOP mode, loads the segments, builds fresh page tables (see loader.x86_64_tables), exits boot
// services and jumps to the kernel with a boot::BootInfo, its own GDT and an empty IDT. Every
// failure before ExitBootServices prints a clear message and returns an error status to the
// firmware, which then reports it and tries its next boot option.
//
// aarch64: prints its banner and returns EFI_UNSUPPORTED (the aarch64 kernel is a later roadmap
// item).
#include <ktl/macros.h>

import ktl;
import efi;
import boot.info;
import loader.elf;
import loader.memory_map;
import loader.secure_boot;
#if defined(__x86_64__)
import loader.firmware_tables;
import loader.framebuffer;
import loader.kernel_digest;
import ktl.sha256;
import loader.x86_64_tables;
import arch.x86_64.cpu;
import mm.paging.x86;
#endif

namespace {

using ktl::u16;
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
  efi::RuntimeServices rs;
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
constexpr const char* kCmdlineName = "\\ferrite\\cmdline.txt";
constexpr const efi::Char16* kRamdiskPath = u"\\ferrite\\initrd.img";
constexpr const char* kRamdiskName = "\\ferrite\\initrd.img";
constexpr u64 kMaxKernelSize = u64{64} << 20;
constexpr u64 kMaxCmdlineSize = 4095;
constexpr u64 kMaxRamdiskSize = u64{1} << 30;
constexpr u64 kPage = 4096;
constexpr u64 kStackPages = boot::layout::kBootStackPages;
constexpr u64 kMapSlack = 32;  // descriptors the map may grow by before ExitBootServices
constexpr u32 kApicBaseMsr = 0x1b;
constexpr u64 kIoApicDefault = 0xfec0'0000;
constexpr u16 kKernelCodeSelector = 0x08;
constexpr u16 kKernelDataSelector = 0x10;

KTL_UNSAFE_BUFFER_BEGIN  // boot services run identity-mapped: a physical address is a pointer
u8* phys_ptr(u64 phys) { return reinterpret_cast<u8*>(static_cast<ktl::uptr>(phys)); }
ktl::Span<u8> phys_bytes(u64 phys, u64 size) { return ktl::Span<u8>::from_raw(phys_ptr(phys), size); }
KTL_UNSAFE_BUFFER_END
u64 pages_for(u64 bytes) { return ktl::align_up(bytes, kPage) / kPage; }

// Page-table frames come from one contiguous LoaderData block, so the hand-off map can mark
// exactly the used part as page tables. Runs identity-mapped: a frame's address is a pointer.
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
  ktl::Span<u64> table(u64 phys) override {
    KTL_UNSAFE_BUFFER_BEGIN  // frames this pool handed out: 512 entries, identity-mapped
    return ktl::Span<u64>::from_raw(reinterpret_cast<u64*>(static_cast<ktl::uptr>(phys)), 512);
    KTL_UNSAFE_BUFFER_END
  }
  [[nodiscard]] u64 base() const { return base_; }
  [[nodiscard]] u64 used_bytes() const { return used_ * kPage; }

 private:
  u64 base_;
  u64 frames_;
  u64 used_ = 0;
};

// Where the boot-info block's parts live: one LoaderData allocation sized before the final
// GetMemoryMap, so nothing is allocated between that call and ExitBootServices. The same buffers
// first hold the snapshot the page tables are planned from, then the final map.
struct BootBlock {
  u64 base = 0;
  u64 size = 0;
  boot::BootInfo* info = nullptr;
  ktl::Span<u64> gdt;
  ktl::Span<char> cmdline;
  ktl::Span<u8> raw_map;
  ktl::Span<loader::FirmwareRange> firmware;
  ktl::Span<u64> scratch;
  ktl::Span<boot::MemoryMapEntry> regions;
};

template <class T>
ktl::Span<T> carve(u64& cursor, usize count) {
  cursor = ktl::align_up<u64>(cursor, 16);
  KTL_UNSAFE_BUFFER_BEGIN  // cursor stays inside the boot block the caller allocated for these
  auto span = ktl::Span<T>::from_raw(reinterpret_cast<T*>(static_cast<ktl::uptr>(cursor)), count);
  KTL_UNSAFE_BUFFER_END
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
  KTL_UNSAFE_BUFFER_BEGIN  // buffer.size() bytes, the size passed to the firmware
  TRY(efi::check(bs.raw()->get_memory_map(&m.size, reinterpret_cast<efi::MemoryDescriptor*>(buffer.data()),
                                          &m.key, &m.descriptor_size, &m.descriptor_version)));
  KTL_UNSAFE_BUFFER_END
  if (m.descriptor_size < sizeof(efi::MemoryDescriptor)) return ktl::Err(efi::Status::IncompatibleVersion);
  return m;
}

efi::MemoryDescriptor descriptor_at(ktl::Span<const u8> raw, usize stride, usize i) {
  efi::MemoryDescriptor d;
  ktl::copy_bytes(ktl::writable_bytes_of(d), raw.subspan(i * stride, sizeof d));
  return d;
}

// Decodes `count` raw descriptors into block.firmware.
void decode_map(BootBlock& block, const MapSnapshot& m) {
  usize count = m.size / m.descriptor_size;
  for (usize i = 0; i < count; ++i) {
    efi::MemoryDescriptor d = descriptor_at(block.raw_map, m.descriptor_size, i);
    block.firmware[i] =
        loader::FirmwareRange{d.physical_start, d.number_of_pages, ktl::to_underlying(d.type), d.attribute};
  }
}

// --- firmware tables ------------------------------------------------------------------------------

struct FirmwareTables {
  u64 rsdp = 0;
  u32 acpi_revision = 0;
  u64 smbios = 0;
  u32 smbios_major = 0;
  u32 smbios_minor = 0;
};

// Copies up to `max` bytes of a firmware structure at `phys` into `out` (firmware tables live in
// identity-mapped memory while boot services run), in two steps: the fixed prefix, then the length
// the structure declares.
template <class LengthFn>
ktl::Span<const u8> read_structure(u64 phys, usize prefix, LengthFn length_of, ktl::Span<u8> out) {
  if (phys == 0) return {};
  ktl::copy_bytes(out.first(prefix), phys_bytes(phys, prefix));
  usize length = length_of(ktl::Span<const u8>(out.first(prefix)));
  if (length == 0 || length > out.size()) return ktl::Span<const u8>(out.first(prefix));
  ktl::copy_bytes(out.first(length), phys_bytes(phys, length));
  return ktl::Span<const u8>(out.first(length));
}

FirmwareTables find_firmware_tables(Loader& l) {
  FirmwareTables t;
  u64 acpi1 = 0;
  ktl::Array<u8, 256> buffer{};
  bool smbios3_valid = false;
  for (const efi::ConfigurationTable& entry : efi::configuration_tables(*l.st)) {
    u64 addr = ktl::address_of(entry.vendor_table);
    if (entry.vendor_guid == efi::kAcpi20TableGuid && t.rsdp == 0) {
      auto r = loader::validate_rsdp(
          read_structure(addr, loader::kRsdpV1Length + 4, loader::rsdp_length, buffer.span()));
      if (r.is_ok()) {
        t.rsdp = addr;
        t.acpi_revision = r.value().revision;
      } else {
        ktl::format_to(l.con, "ferrite-loader: warning: ACPI 2.0 RSDP at {:#x} rejected: {}\n", addr,
                       loader::to_string(r.error()));
      }
    } else if (entry.vendor_guid == efi::kAcpi10TableGuid && acpi1 == 0) {
      auto r = loader::validate_rsdp(
          read_structure(addr, loader::kRsdpV1Length, loader::rsdp_length, buffer.span()));
      if (r.is_ok()) {
        acpi1 = addr;
      } else {
        ktl::format_to(l.con, "ferrite-loader: warning: ACPI 1.0 RSDP at {:#x} rejected: {}\n", addr,
                       loader::to_string(r.error()));
      }
    } else if (entry.vendor_guid == efi::kSmbios3TableGuid && !smbios3_valid) {
      auto r = loader::validate_smbios3(
          read_structure(addr, loader::kSmbiosPrefixLength, loader::smbios3_length, buffer.span()));
      if (r.is_ok()) {
        smbios3_valid = true;
        t.smbios = addr;
        t.smbios_major = r.value().major;
        t.smbios_minor = r.value().minor;
      } else {
        ktl::format_to(l.con, "ferrite-loader: warning: SMBIOS 3 entry point at {:#x} rejected: {}\n", addr,
                       loader::to_string(r.error()));
      }
    } else if (entry.vendor_guid == efi::kSmbiosTableGuid && t.smbios == 0) {
      auto r = loader::validate_smbios2(
          read_structure(addr, loader::kSmbiosPrefixLength, loader::smbios2_length, buffer.span()));
      if (r.is_ok()) {
        t.smbios = addr;
        t.smbios_major = r.value().major;
        t.smbios_minor = r.value().minor;
      } else {
        ktl::format_to(l.con, "ferrite-loader: warning: SMBIOS 2 entry point at {:#x} rejected: {}\n", addr,
                       loader::to_string(r.error()));
      }
    }
  }
  if (t.rsdp == 0 && acpi1 != 0) {
    t.rsdp = acpi1;
    t.acpi_revision = 0;
  }
  if (t.rsdp != 0) {
    ktl::format_to(l.con, "ferrite-loader: ACPI {} RSDP at {:#x} (checksums valid)\n",
                   t.acpi_revision >= 2 ? "2.0+" : "1.0", t.rsdp);
  } else {
    ktl::format_to(l.con, "ferrite-loader: warning: no valid ACPI RSDP\n");
  }
  if (t.smbios != 0) {
    ktl::format_to(l.con, "ferrite-loader: SMBIOS {}.{} entry point at {:#x} (checksums valid)\n",
                   t.smbios_major, t.smbios_minor, t.smbios);
  } else {
    ktl::format_to(l.con, "ferrite-loader: warning: no valid SMBIOS entry point\n");
  }
  return t;
}

// --- framebuffer ----------------------------------------------------------------------------------

constexpr usize kMaxGopModes = 256;

// The modes of `gop` and the index of the one to use. If QueryMode reports EFI_NOT_STARTED the
// GOP has no mode yet; SetMode(0) starts it (Limine does the same).
ktl::Optional<boot::Framebuffer> setup_gop(Loader& l, efi::GraphicsOutput* gop) {
  if (gop->mode == nullptr) return ktl::nullopt;
  if (auto probe = l.bs.query_mode(gop, gop->mode->mode);
      probe.is_err() && probe.error() == efi::Status::NotStarted) {
    (void)gop->set_mode(gop, 0);
  }
  ktl::Array<loader::GopMode, kMaxGopModes> modes{};
  usize count = 0;
  for (u32 m = 0; m < gop->mode->max_mode && count < kMaxGopModes; ++m) {
    auto info = l.bs.query_mode(gop, m);
    if (info.is_err()) continue;
    const efi::GraphicsOutputModeInformation& i = info.value();
    modes[count++] = loader::GopMode{m,
                                     i.horizontal_resolution,
                                     i.vertical_resolution,
                                     ktl::to_underlying(i.pixel_format),
                                     i.pixel_information.red_mask,
                                     i.pixel_information.green_mask,
                                     i.pixel_information.blue_mask,
                                     i.pixel_information.reserved_mask,
                                     i.pixels_per_scan_line};
  }
  auto all = ktl::Span<const loader::GopMode>(modes.span()).first(count);
  auto chosen = loader::choose_mode(all, gop->mode->mode);
  if (!chosen) {
    ktl::format_to(
        l.con, "ferrite-loader: warning: none of the {} GOP modes has a usable linear framebuffer\n", count);
    return ktl::nullopt;
  }
  const loader::GopMode& mode = all[*chosen];
  if (mode.number != gop->mode->mode) {
    if (auto s = efi::check(gop->set_mode(gop, mode.number)); s.is_err()) {
      ktl::format_to(l.con, "ferrite-loader: warning: GOP SetMode({}) failed: {}\n", mode.number,
                     efi::to_string(s.error()));
      return ktl::nullopt;
    }
  }
  auto fb = loader::describe(mode, gop->mode->frame_buffer_base, gop->mode->frame_buffer_size);
  if (!fb) {
    ktl::format_to(l.con, "ferrite-loader: warning: GOP mode {} reports a framebuffer too small for it\n",
                   mode.number);
    return ktl::nullopt;
  }
  constexpr const char* kFormats[] = {"none", "RGBX8", "BGRX8", "bitmask"};
  ktl::format_to(
      l.con, "ferrite-loader: framebuffer {}x{} {} pitch {} ({} KiB at {:#x}), GOP mode {} of {}\n",
      fb->width, fb->height, ktl::Span<const char* const>(kFormats)[ktl::to_underlying(fb->format)],
      fb->pitch, fb->size >> 10, fb->base, mode.number, gop->mode->max_mode);
  return fb;
}

ktl::Optional<boot::Framebuffer> find_framebuffer(Loader& l) {
  // The console's GOP first (the screen the user looks at), then any GOP.
  if (auto gop = l.bs.handle_protocol<efi::GraphicsOutput>(l.st->console_out_handle); gop.is_ok()) {
    if (auto fb = setup_gop(l, gop.value())) return fb;
  }
  if (auto handles = l.bs.locate_handles<efi::GraphicsOutput>(); handles.is_ok()) {
    usize n = handles.value().size() / sizeof(efi::Handle);
    for (usize i = 0; i < n; ++i) {
      efi::Handle h = nullptr;
      ktl::copy_bytes(ktl::writable_bytes_of(h),
                      ktl::Span<const u8>(handles.value().bytes()).subspan(i * sizeof h, sizeof h));
      if (auto gop = l.bs.handle_protocol<efi::GraphicsOutput>(h); gop.is_ok()) {
        if (auto fb = setup_gop(l, gop.value())) return fb;
      }
    }
  }
  ktl::format_to(l.con, "ferrite-loader: no GOP framebuffer; the kernel gets none (serial only)\n");
  return ktl::nullopt;
}

// --- hand-off -------------------------------------------------------------------------------------

struct [[gnu::packed]] DescriptorPointer {
  u16 limit;
  u64 base;
};
static_assert(sizeof(DescriptorPointer) == 10);

// What ferrite_handoff reads (through rcx, the Microsoft x64 first argument) before switching CR3.
struct HandoffState {
  u64 cr3;
  u64 stack_top;
  u64 entry;
  u64 boot_info;
  DescriptorPointer gdtr;
  u8 pad[6];
  DescriptorPointer idtr;
};
static_assert(__builtin_offsetof(HandoffState, gdtr) == 32 && __builtin_offsetof(HandoffState, idtr) == 48);

}  // namespace

// The last loader code to run, alone at the start of its own page: that page is the only
// executable page of the new identity map (the page tables map it read-execute). It loads the GDT
// (its base is a direct-map address: readable only after the CR3 switch, when the segment
// registers are reloaded) and an empty IDT (any exception now triple-faults instead of jumping
// into freed firmware code), switches to the new tables, reloads every segment register, moves to
// the kernel stack with a zero return address, clears the other registers and far-returns into
// the kernel with CS = kKernelCodeSelector and rdi = the boot info (SysV first argument).
extern "C" [[noreturn]] void ferrite_handoff(const void* state);  // a HandoffState
__asm__(R"(
  .section .text$ferrite_handoff,"xr"
  .p2align 12
  .globl ferrite_handoff
ferrite_handoff:
  cli
  lgdt 32(%rcx)
  lidt 48(%rcx)
  mov 0(%rcx), %rax
  mov 8(%rcx), %rsi
  mov 16(%rcx), %rdx
  mov 24(%rcx), %rdi
  mov %rax, %cr3
  mov $0x10, %eax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov %ax, %fs
  mov %ax, %gs
  mov %rsi, %rsp
  pushq $0
  pushq $0x08
  pushq %rdx
  xor %eax, %eax
  xor %ebx, %ebx
  xor %ecx, %ecx
  xor %edx, %edx
  xor %esi, %esi
  xor %ebp, %ebp
  xor %r8d, %r8d
  xor %r9d, %r9d
  xor %r10d, %r10d
  xor %r11d, %r11d
  xor %r12d, %r12d
  xor %r13d, %r13d
  xor %r14d, %r14d
  xor %r15d, %r15d
  lretq
  .globl ferrite_handoff_end
ferrite_handoff_end:
  .text
)");
extern "C" char ferrite_handoff_end[];

namespace {

static_assert(kKernelCodeSelector == 0x08 && kKernelDataSelector == 0x10, "ferrite_handoff hard-codes them");

// --- PAT/CPU setup and the jump ---------------------------------------------------------------------

struct CpuFeatures {
  bool no_execute;
  bool gigabyte_pages;
};

// Refuses 5-level paging and reads NX and 1 GiB page support (CPUID 0x80000001 EDX bits 20, 26).
efi::Result<CpuFeatures> check_cpu(Loader& l) {
  if ((arch::x86_64::read_cr4() & arch::x86_64::cr4::kLa57) != 0) {
    return ktl::Err(
        fail(l, "the firmware runs with 5-level paging (CR4.LA57); this loader builds 4-level tables",
             efi::Status::Unsupported));
  }
  const u32 ext_features =
      arch::x86_64::cpuid(0x8000'0000).eax >= 0x8000'0001 ? arch::x86_64::cpuid(0x8000'0001).edx : 0;
  const CpuFeatures cpu{(ext_features & (1u << 20)) != 0, (ext_features & (1u << 26)) != 0};
  if (!cpu.no_execute) {
    ktl::format_to(l.con, "ferrite-loader: warning: this CPU has no NX bit; data will be executable\n");
  }
  return cpu;
}

[[noreturn]] void jump_to_kernel(const HandoffState& state, const CpuFeatures& cpu) {
  using namespace arch::x86_64;
  cli();
  // Mask both 8259 PICs: nothing may interrupt the kernel before it has an IDT.
  outb(0x21, 0xff);
  outb(0xa1, 0xff);
  // NX for the new tables (bit 63 is reserved without it), write protection for supervisor
  // writes to read-only pages, and the PAT layout the tables use (reported in BootInfo::pat).
  if (cpu.no_execute) wrmsr(msr::kEfer, rdmsr(msr::kEfer) | efer::kNxe);
  write_cr0(read_cr0() | cr0::kWp);
  wrmsr(msr::kPat, mm::paging::x86::kPat);
  ferrite_handoff(&state);
}

// What the loader does with the files on the ESP that no signature covers (the command line and
// the ramdisk): with Secure Boot on (or its state unknown), ignore them, so that whoever can write
// the disk cannot choose what a signed loader and its verified kernel do (a test mode, a ramdisk).
enum class UnsignedFiles : u8 { Read, Ignore };

[[nodiscard]] constexpr UnsignedFiles unsigned_files_policy(loader::SecureBoot state) {
  return state == loader::SecureBoot::Disabled ? UnsignedFiles::Read : UnsignedFiles::Ignore;
}

// --- the files ----------------------------------------------------------------------------------------

struct KernelFile {
  efi::PoolBuffer bytes;
  loader::KernelImage image;
  ktl::Sha256Digest digest;
};

// Reads and validates the kernel: structure first (the parser is built for hostile input, so every
// broken file gets its own message), then the digest: only the exact kernel this loader was built
// with may run.
efi::Result<KernelFile> read_kernel(Loader& l, efi::File& root) {
  auto kernel_file = root.open(kKernelPath);
  if (kernel_file.is_err()) {
    ktl::InlineString<96> what;
    ktl::format_to(what, "cannot open the kernel {}", kKernelName);
    return ktl::Err(fail(l, what.c_str(), kernel_file.error()));
  }
  auto bytes = kernel_file.value().read_all(l.bs, kMaxKernelSize);
  if (bytes.is_err()) {
    ktl::InlineString<96> what;
    ktl::format_to(what, "cannot read the kernel {} (at most {} MiB)", kKernelName, kMaxKernelSize >> 20);
    return ktl::Err(fail(l, what.c_str(), bytes.error()));
  }
  KernelFile k{bytes.release_value(), {}, {}};
  const ktl::Span<const u8> file(k.bytes.bytes());
  // Above the image: one guard page, then the boot stack.
  const loader::Constraints constraints{loader::Machine::X86_64, boot::layout::kKernelBase, kPage,
                                        (kStackPages + 1) * kPage};
  auto image = loader::parse_kernel(file, constraints);
  if (image.is_err()) {
    ktl::format_to(l.con, "ferrite-loader: error: invalid kernel {}: {}\n", kKernelName,
                   loader::to_string(image.error()));
    return ktl::Err(fail(l, "refusing to boot an invalid kernel", efi::Status::LoadError));
  }
  k.image = image.release_value();
  k.digest = ktl::sha256(file);
  if (k.digest != loader::kKernelSha256) {
    ktl::format_to(l.con,
                   "ferrite-loader: error: kernel {} does not match the SHA-256 built into this loader\n"
                   "ferrite-loader:   expected {} ({} bytes)\n"
                   "ferrite-loader:   found    {} ({} bytes)\n",
                   kKernelName, loader::kKernelSha256, loader::kKernelFileSize, k.digest, file.size());
    return ktl::Err(
        fail(l, "refusing to boot a kernel this loader was not built with", efi::Status::SecurityViolation));
  }
  ktl::format_to(l.con,
                 "ferrite-loader: kernel {}: {} bytes, {} segments, entry {:#x}, sha256 {} (verified)\n",
                 kKernelName, k.bytes.size(), k.image.segment_count, k.image.entry, k.digest);
  return k;
}

struct Extras {
  ktl::Array<char, kMaxCmdlineSize + 1> cmdline{};
  usize cmdline_size = 0;
  u64 ramdisk_phys = 0;
  u64 ramdisk_size = 0;
};

// The optional command line (its first line) and ramdisk, unless Secure Boot says to ignore them.
efi::Result<void> read_extras(Loader& l, efi::File& root, UnsignedFiles unsigned_files, Extras& x) {
  if (auto f = root.open(kCmdlinePath); f.is_ok() && unsigned_files == UnsignedFiles::Ignore) {
    ktl::format_to(l.con, "ferrite-loader: Secure Boot: ignoring {} (no signature covers it)\n",
                   kCmdlineName);
  } else if (f.is_ok()) {
    auto text = f.value().read_all(l.bs, kMaxCmdlineSize);
    if (text.is_err())
      return ktl::Err(fail(l, "cannot read \\ferrite\\cmdline.txt (at most 4095 bytes)", text.error()));
    for (u8 c : text.value().bytes()) {
      if (c == '\r' || c == '\n' || c == 0) break;  // the first line only
      x.cmdline[x.cmdline_size++] = static_cast<char>(c);
    }
  } else if (f.error() != efi::Status::NotFound) {
    return ktl::Err(fail(l, "cannot open \\ferrite\\cmdline.txt", f.error()));
  }
  ktl::format_to(l.con, "ferrite-loader: command line: \"{}\"\n",
                 ktl::StringView(ktl::Span<const char>(x.cmdline).first(x.cmdline_size)));

  if (auto f = root.open(kRamdiskPath); f.is_ok() && unsigned_files == UnsignedFiles::Ignore) {
    ktl::format_to(l.con, "ferrite-loader: Secure Boot: ignoring {} (no signature covers it)\n",
                   kRamdiskName);
  } else if (f.is_ok()) {
    auto size = f.value().size(l.bs);
    if (size.is_err())
      return ktl::Err(fail(l, "cannot read the size of \\ferrite\\initrd.img", size.error()));
    if (size.value() > kMaxRamdiskSize) {
      return ktl::Err(
          fail(l, "the ramdisk \\ferrite\\initrd.img is larger than 1 GiB", efi::Status::BadBufferSize));
    }
    x.ramdisk_size = size.value();
    if (x.ramdisk_size > 0) {
      auto pages = l.bs.allocate_pages(pages_for(x.ramdisk_size));
      if (pages.is_err()) return ktl::Err(fail(l, "cannot allocate memory for the ramdisk", pages.error()));
      x.ramdisk_phys = pages.value();
      if (auto r = f.value().read_into(phys_bytes(x.ramdisk_phys, x.ramdisk_size)); r.is_err()) {
        return ktl::Err(fail(l, "cannot read the ramdisk \\ferrite\\initrd.img", r.error()));
      }
    }
    ktl::format_to(l.con, "ferrite-loader: ramdisk {}: {} bytes at {:#x}\n", kRamdiskName, x.ramdisk_size,
                   x.ramdisk_phys);
  } else if (f.error() != efi::Status::NotFound) {
    return ktl::Err(fail(l, "cannot open \\ferrite\\initrd.img", f.error()));
  }
  return ktl::ok();
}

// --- placement of the kernel and its stack --------------------------------------------------------------

struct Placed {
  u64 kernel_phys = 0;
  u64 image_size = 0;
  ktl::Array<loader::x86_64::SegmentMapping, loader::kMaxSegments> segments{};
  u64 stack_phys = 0;
  u64 guard_page = 0;  // one unmapped page above the image, then the stack
  u64 stack_bottom = 0;
  u64 stack_top = 0;
};

// Copies the segments into fresh pages (the file copy is freed) and allocates the boot stack.
efi::Result<Placed> place_kernel(Loader& l, KernelFile& k) {
  using loader::x86_64::Access;
  const loader::KernelImage& image = k.image;
  Placed p;
  p.image_size = image.highest_vaddr - image.lowest_vaddr;
  auto kernel_phys = l.bs.allocate_pages(pages_for(p.image_size));
  if (kernel_phys.is_err())
    return ktl::Err(fail(l, "cannot allocate memory for the kernel image", kernel_phys.error()));
  p.kernel_phys = kernel_phys.value();
  ktl::fill_bytes(phys_bytes(p.kernel_phys, p.image_size), 0);
  const ktl::Span<const u8> file(k.bytes.bytes());
  for (usize i = 0; i < image.segment_count; ++i) {
    const loader::Segment& s = image.segments[i];
    ktl::copy_bytes(phys_bytes(p.kernel_phys + (s.vaddr - image.lowest_vaddr), s.file_size),
                    file.subspan(s.file_offset, s.file_size));
    u64 lo = ktl::align_down(s.vaddr, kPage);
    u64 hi = ktl::align_up(s.end(), kPage);
    Access access = s.executable() ? Access::ReadExecute
                    : s.writable() ? Access::ReadWrite
                                   : Access::ReadOnly;
    p.segments[i] = {lo, p.kernel_phys + (lo - image.lowest_vaddr), hi - lo, access};
  }
  k.bytes = efi::PoolBuffer();  // the file copy is no longer needed

  auto stack_phys = l.bs.allocate_pages(kStackPages);
  if (stack_phys.is_err()) return ktl::Err(fail(l, "cannot allocate the kernel stack", stack_phys.error()));
  p.stack_phys = stack_phys.value();
  // No wrap: parse_kernel checked the room above the image.
  p.guard_page = image.highest_vaddr;
  p.stack_bottom = p.guard_page + kPage;
  p.stack_top = p.stack_bottom + kStackPages * kPage;
  return p;
}

// --- the boot-info block and the memory map ------------------------------------------------------------

constexpr usize kPlacements = 8;

// Sizes and allocates the block (before the final GetMemoryMap, so nothing is allocated between
// that call and ExitBootServices) and carves it into its parts; copies the command line and
// writes the GDT.
efi::Result<BootBlock> allocate_boot_block(Loader& l, const Extras& x) {
  auto map_info = query_map_size(l.bs);
  if (map_info.is_err()) return ktl::Err(fail(l, "GetMemoryMap (size query) failed", map_info.error()));
  usize max_descriptors = map_info.value().size / map_info.value().descriptor_size + kMapSlack;
  usize raw_map_bytes = max_descriptors * map_info.value().descriptor_size;
  usize out_entries = loader::output_entries_needed(max_descriptors, kPlacements);
  u64 block_bytes = 3 * kPage + raw_map_bytes + max_descriptors * sizeof(loader::FirmwareRange) +
                    loader::scratch_entries_needed(max_descriptors, kPlacements) * sizeof(u64) +
                    out_entries * sizeof(boot::MemoryMapEntry) + 128;
  auto block_r = l.bs.allocate_pages(pages_for(block_bytes));
  if (block_r.is_err())
    return ktl::Err(fail(l, "cannot allocate the boot information block", block_r.error()));
  BootBlock block;
  block.base = block_r.value();
  block.size = pages_for(block_bytes) * kPage;
  ktl::fill_bytes(phys_bytes(block.base, block.size), 0);
  u64 cursor = block.base;
  KTL_UNSAFE_BUFFER_BEGIN  // the boot block starts with a page for the BootInfo, zeroed above
  block.info = reinterpret_cast<boot::BootInfo*>(phys_ptr(cursor));
  KTL_UNSAFE_BUFFER_END
  cursor += kPage;
  block.gdt = carve<u64>(cursor, 3);
  block.cmdline = carve<char>(cursor, kPage);
  block.raw_map = carve<u8>(cursor, raw_map_bytes);
  block.firmware = carve<loader::FirmwareRange>(cursor, max_descriptors);
  block.scratch = carve<u64>(cursor, loader::scratch_entries_needed(max_descriptors, kPlacements));
  block.regions = carve<boot::MemoryMapEntry>(cursor, out_entries);
  for (usize i = 0; i < x.cmdline_size; ++i) block.cmdline[i] = x.cmdline[i];
  // Null, 64-bit kernel code (DPL 0, present, L), kernel data (writable, present).
  block.gdt[0] = 0;
  block.gdt[1] = 0x00af'9a00'0000'ffffull;
  block.gdt[2] = 0x00cf'9200'0000'ffffull;
  return block;
}

// The firmware's map (already read into block.raw_map, `m`) normalised into block.regions with
// `placements` marked; returns the number of regions.
ktl::Result<usize, loader::MapError> normalise(BootBlock& block, const MapSnapshot& m,
                                               ktl::Span<const loader::Placement> placements) {
  decode_map(block, m);
  return loader::normalise_memory_map(block.firmware.first(m.size / m.descriptor_size), placements,
                                      block.scratch, block.regions);
}

// --- page tables ---------------------------------------------------------------------------------------

struct Tables {
  u64 root;
  u64 pool_base;  // the frames came from one block: the hand-off map marks its used part
  u64 used_bytes;
};

// Plans the tables from a snapshot of the map (with `placements` marked), allocates their pool and
// builds them.
efi::Result<Tables> build_page_tables(Loader& l, BootBlock& block, const Placed& p,
                                      const loader::KernelImage& image,
                                      ktl::Span<const loader::Placement> placements, const CpuFeatures& cpu) {
  auto snapshot = read_map(l.bs, block.raw_map);
  if (snapshot.is_err()) return ktl::Err(fail(l, "GetMemoryMap failed", snapshot.error()));
  auto physical = normalise(block, snapshot.value(), placements);
  if (physical.is_err()) return ktl::Err(fail(l, "normalising the memory map", efi::Status::BufferTooSmall));

  const u64 trampoline = ktl::address_of(&ferrite_handoff);
  if (!ktl::is_aligned(trampoline, kPage) || ktl::address_of(&ferrite_handoff_end[0]) - trampoline > kPage) {
    return ktl::Err(
        fail(l, "the hand-off trampoline is not alone in one page (build problem)", efi::Status::LoadError));
  }
  loader::x86_64::AddressSpaceSpec spec{
      ktl::Span<const boot::MemoryMapEntry>(block.regions.first(physical.value())),
      boot::layout::kDirectMapBase,
      trampoline,
      ktl::Span<const loader::x86_64::SegmentMapping>(p.segments.span()).first(image.segment_count),
      p.stack_bottom,
      p.stack_phys,
      kStackPages * kPage,
      boot::layout::kRecursiveSlot};
  u64 pool_frames = loader::x86_64::frames_needed(spec);
  auto pool = l.bs.allocate_pages(pool_frames);
  if (pool.is_err()) return ktl::Err(fail(l, "cannot allocate page-table memory", pool.error()));
  PoolFrames frames(pool.value(), pool_frames);
  loader::x86_64::TableBuilder tables(frames);
  tables.set_gigabyte_pages(cpu.gigabyte_pages);
  tables.set_no_execute(cpu.no_execute);
  auto built = tables.init();
  if (built.is_ok()) built = loader::x86_64::build_address_space(tables, spec);
  if (built.is_err()) {
    ktl::format_to(l.con, "ferrite-loader: error: building page tables: {}\n",
                   loader::x86_64::to_string(built.error()));
    return ktl::Err(fail(l, "page tables", efi::Status::OutOfResources));
  }
  ktl::format_to(
      l.con, "ferrite-loader: page tables: {} frames ({} pages), identity map of RAM, direct map at {:#x}\n",
      frames.used_bytes() / kPage, cpu.gigabyte_pages ? "1 GiB" : "2 MiB", boot::layout::kDirectMapBase);
  return Tables{tables.root(), frames.base(), frames.used_bytes()};
}

// --- hand-off ------------------------------------------------------------------------------------------

// ExitBootServices, retried while the map key goes stale; nothing may allocate or print between the
// final GetMemoryMap and it. Returns the final map (in block.raw_map).
efi::Result<MapSnapshot> exit_boot_services(Loader& l, BootBlock& block) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto m = read_map(l.bs, block.raw_map);
    if (m.is_err()) return ktl::Err(attempt == 0 ? fail(l, "GetMemoryMap failed", m.error()) : m.error());
    efi::Status s = l.bs.raw()->exit_boot_services(l.image, m.value().key);
    if (s == efi::Status::Success) return m.value();
    if (s != efi::Status::InvalidParameter)
      return ktl::Err(attempt == 0 ? fail(l, "ExitBootServices failed", s) : s);
  }
  // Boot services may be half gone after a failed attempt: reset rather than return into them.
  l.st->runtime_services->reset_system(efi::ResetType::Cold, efi::Status::Aborted, 0, nullptr);
  arch::x86_64::halt_forever();
}

void fill_boot_info(boot::BootInfo& info, Loader& l, const BootBlock& block, const MapSnapshot& final_map,
                    usize regions, const KernelFile& k, const Placed& p, const Extras& x, u64 root,
                    const FirmwareTables& tables_found, const ktl::Optional<boot::Framebuffer>& framebuffer,
                    const CpuFeatures& cpu) {
  info.magic = boot::kMagic;
  info.version = boot::kVersion;
  info.size = sizeof(boot::BootInfo);
  info.memory_map = ktl::address_of(block.regions.data());
  info.memory_map_count = regions;
  info.kernel_phys_base = p.kernel_phys;
  info.kernel_phys_size = p.image_size;
  info.kernel_virt_base = k.image.lowest_vaddr;
  info.page_table_root = root;
  info.stack_virt_top = p.stack_top;
  info.stack_size = kStackPages * kPage;
  info.direct_map_base = boot::layout::kDirectMapBase;
  info.command_line = ktl::address_of(block.cmdline.data());
  info.command_line_size = x.cmdline_size;
  info.ramdisk_base = x.ramdisk_phys;
  info.ramdisk_size = x.ramdisk_size;
  info.acpi_rsdp = tables_found.rsdp;
  info.acpi_revision = tables_found.acpi_revision;
  info.smbios_major = tables_found.smbios_major;
  info.smbios_entry = tables_found.smbios;
  info.efi_system_table = ktl::address_of(l.st);
  info.efi_memory_map = ktl::address_of(block.raw_map.data());
  info.efi_memory_map_size = final_map.size;
  info.efi_descriptor_size = static_cast<u32>(final_map.descriptor_size);
  info.efi_descriptor_version = final_map.descriptor_version;
  if (framebuffer) info.framebuffer = *framebuffer;
  info.kernel_sha256_verified = 1;
  for (usize i = 0; i < 32; ++i) ktl::Span<u8>(info.kernel_sha256)[i] = k.digest.bytes[i];
  info.pat = mm::paging::x86::kPat;  // what jump_to_kernel programs
  info.flags = (cpu.no_execute ? boot::kFlagNoExecute : 0) |
               (cpu.gigabyte_pages ? boot::kFlagGigabytePages : 0) | boot::kFlagWriteCombining;
  info.loader_ticks_at_handoff = arch::x86_64::rdtsc();
}

efi::Result<void> boot_x86_64(Loader& l, UnsignedFiles unsigned_files) {
  const CpuFeatures cpu = TRY(check_cpu(l));
  auto root_r = open_boot_volume(l);
  if (root_r.is_err())
    return ktl::Err(fail(l, "cannot open the volume the loader was started from", root_r.error()));
  efi::File root = root_r.release_value();
  KernelFile kernel = TRY(read_kernel(l, root));
  Extras extras;
  TRY(read_extras(l, root, unsigned_files, extras));
  // Chosen now: modes cannot change after exit.
  const FirmwareTables tables_found = find_firmware_tables(l);
  const ktl::Optional<boot::Framebuffer> framebuffer = find_framebuffer(l);
  Placed placed = TRY(place_kernel(l, kernel));
  BootBlock block = TRY(allocate_boot_block(l, extras));

  // The MMIO the kernel needs before it can map devices itself: the local APIC (where
  // IA32_APIC_BASE says) and the I/O APIC at its architectural default. Firmware maps rarely list
  // them, so they are added as MMIO (direct map, uncached; also in the hand-off map).
  const u64 local_apic = arch::x86_64::rdmsr(kApicBaseMsr) & 0x000f'ffff'ffff'f000ull;
  const loader::Placement plan_placements[] = {
      {framebuffer ? framebuffer->base : 0, framebuffer ? framebuffer->size : 0,
       boot::MemoryKind::Framebuffer},
      {local_apic, kPage, boot::MemoryKind::Mmio},
      {kIoApicDefault, kPage, boot::MemoryKind::Mmio},
  };
  const Tables tables = TRY(build_page_tables(l, block, placed, kernel.image,
                                              ktl::Span<const loader::Placement>(plan_placements), cpu));
  ktl::format_to(l.con, "ferrite-loader: boot info at {:#x}, stack {:#x}-{:#x}, guard page {:#x}\n",
                 block.base, placed.stack_bottom, placed.stack_top, placed.guard_page);
  ktl::format_to(l.con, "ferrite-loader: exiting boot services and starting the kernel\n");

  const MapSnapshot final_map = TRY(exit_boot_services(l, block));
  arch::x86_64::cli();
  g_panic_console = nullptr;

  // The hand-off map and boot info (no firmware calls from here on).
  const loader::Placement placements[kPlacements] = {
      {placed.kernel_phys, placed.image_size, boot::MemoryKind::KernelImage},
      {placed.stack_phys, kStackPages * kPage, boot::MemoryKind::KernelStack},
      {tables.pool_base, tables.used_bytes, boot::MemoryKind::PageTables},
      {block.base, block.size, boot::MemoryKind::BootInfo},
      {extras.ramdisk_phys, extras.ramdisk_size, boot::MemoryKind::Ramdisk},
      plan_placements[0],
      plan_placements[1],
      plan_placements[2],
  };
  auto regions = normalise(block, final_map, ktl::Span<const loader::Placement>(placements));
  if (regions.is_err()) arch::x86_64::halt_forever();  // sized above; cannot happen
  fill_boot_info(*block.info, l, block, final_map, regions.value(), kernel, placed, extras, tables.root,
                 tables_found, framebuffer, cpu);

  HandoffState state{};
  state.cr3 = tables.root;
  state.stack_top = placed.stack_top;
  state.entry = kernel.image.entry;
  state.boot_info = boot::layout::kDirectMapBase + ktl::address_of(block.info);
  state.gdtr = {static_cast<u16>(3 * sizeof(u64) - 1),
                boot::layout::kDirectMapBase + ktl::address_of(block.gdt.data())};
  state.idtr = {0, 0};
  jump_to_kernel(state, cpu);
}

#endif  // __x86_64__

loader::SecureBootState secure_boot_state(const Loader& l) {
  return loader::decode_secure_boot(l.rs.get_byte_variable(u"SecureBoot", efi::kGlobalVariableGuid),
                                    l.rs.get_byte_variable(u"SetupMode", efi::kGlobalVariableGuid));
}

efi::Status run(Loader& l) {
  ktl::format_to(l.con, "\nFerrite UEFI loader {} ({})\n", kVersion, kArch);
  if (auto w = l.bs.disable_watchdog(); w.is_err()) {
    ktl::format_to(l.con, "ferrite-loader: warning: cannot disable the watchdog: {}\n",
                   efi::to_string(w.error()));
  }
  // With Secure Boot on, the firmware has already verified this loader's signature; on x86_64 the
  // kernel digest check extends that to the kernel, and the unsigned files are ignored.
  const loader::SecureBootState secure_boot = secure_boot_state(l);
  ktl::format_to(l.con, "ferrite-loader: Secure Boot {}\n", secure_boot);
#if defined(__x86_64__)
  return boot_x86_64(l, unsigned_files_policy(secure_boot.state)).error();  // returns only on failure
#else
  ktl::format_to(l.con,
                 "ferrite-loader: the aarch64 kernel hand-off is not implemented yet (roadmap: aarch64)\n");
  return fail(l, "no kernel to start on aarch64", efi::Status::Unsupported);
#endif
}

}  // namespace

extern "C" efi::Status efi_main(efi::Handle image, efi::SystemTable* st) {
  g_panic_console = st->con_out;
  Loader l{image, st, efi::Console(st->con_out), efi::BootServices(st->boot_services),
           efi::RuntimeServices(st->runtime_services)};
  return run(l);
}

// ktl.log's hook: shared code's messages go to the console while boot services last.
extern "C" void ferrite_log_write(int, const char* text, ktl::usize length) {
  efi::Console con(g_panic_console);
  KTL_UNSAFE_BUFFER_BEGIN  // ktl.log passes `length` characters at `text`
  con.write(ktl::StringView::from_raw(text, length));
  KTL_UNSAFE_BUFFER_END
  con.write("\n");
}

// The environment hook ktl needs: a panic in the loader prints and stops (before ExitBootServices
// ConOut still works; after it nothing can be printed and the CPU halts).
extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line,
                                           const char*) {
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
