// boot.info: the versioned hand-off structure from the UEFI loader to the kernel.
//
// The loader and the kernel are built separately (PE32+ and ELF, different ABIs) but from this one
// definition, so the layout is fixed by static_asserts rather than by hoping both compilers agree.
// Every field is a fixed-width integer; addresses are physical unless the name says `virt`.
// The kernel rejects a structure whose magic, version or size it does not know.
export module boot.info;

import ktl;

export namespace boot {

using ktl::u32;
using ktl::u64;

inline constexpr u64 kMagic = 0x31'4f'46'4e'49'54'4f'42ull;  // "BOTINFO1" as little-endian bytes
// Version history:
//   1  initial layout (240 bytes)
//   2  + kernel_sha256, pat, flags (288 bytes); the framebuffer, ACPI, SMBIOS and ramdisk fields
//      are now filled in; the identity and direct maps cover RAM (+ MMIO/framebuffer in the
//      direct map) instead of everything below max(4 GiB, top of RAM)
inline constexpr u32 kVersion = 2;

// The kernel's virtual layout, decided here because the loader builds it.
namespace layout {
// All physical memory, mapped at a fixed offset (PML4 slot 256 on x86_64).
inline constexpr u64 kDirectMapBase = 0xffff'8000'0000'0000ull;
inline constexpr u64 kDirectMapSize = u64{1} << 46;  // 64 TiB
// PML4 slot 510 is the recursive self-reference.
inline constexpr u32 kRecursiveSlot = 510;
// The kernel image lives in the top 2 GiB (-mcmodel=kernel), linked at this address.
inline constexpr u64 kKernelBase = 0xffff'ffff'8000'0000ull;
// The boot stack the loader maps right above the image's page-rounded end, after one unmapped
// guard page (so the image must end at least this much plus a page below 2^64).
inline constexpr u64 kBootStackPages = 16;  // 64 KiB
}  // namespace layout

// Kinds of memory in the normalised map. Everything the loader placed is marked, so the kernel
// never hands out memory that is still in use.
enum class MemoryKind : u32 {
  Usable = 1,             // free RAM
  LoaderReclaimable = 2,  // loader data the kernel may free once it has consumed the boot info
  KernelImage = 3,        // the kernel's loaded segments
  KernelStack = 4,        // the boot stack the kernel runs on
  PageTables = 5,         // the tables the loader built (the kernel adopts them)
  BootInfo = 6,           // this structure, the memory map, command line, initrd copy
  AcpiReclaimable = 7,    // ACPI tables: reclaimable after the kernel parsed them
  AcpiNvs = 8,            // must be preserved
  RuntimeServices = 9,    // UEFI runtime code and data
  Mmio = 10,              // memory-mapped I/O the firmware reported
  Framebuffer = 11,       // the GOP framebuffer
  Reserved = 12,          // anything else the firmware reserved, or did not explain
  Bad = 13,               // unusable (firmware-reported errors)
  Ramdisk = 14,           // the initial ramdisk
};

[[nodiscard]] constexpr const char* to_string(MemoryKind k) {
  switch (k) {
    case MemoryKind::Usable: return "usable";
    case MemoryKind::LoaderReclaimable: return "loader-reclaimable";
    case MemoryKind::KernelImage: return "kernel-image";
    case MemoryKind::KernelStack: return "kernel-stack";
    case MemoryKind::PageTables: return "page-tables";
    case MemoryKind::BootInfo: return "boot-info";
    case MemoryKind::AcpiReclaimable: return "acpi-reclaimable";
    case MemoryKind::AcpiNvs: return "acpi-nvs";
    case MemoryKind::RuntimeServices: return "runtime-services";
    case MemoryKind::Mmio: return "mmio";
    case MemoryKind::Framebuffer: return "framebuffer";
    case MemoryKind::Reserved: return "reserved";
    case MemoryKind::Bad: return "bad";
    case MemoryKind::Ramdisk: return "ramdisk";
  }
  return "unknown";
}

// One entry of the normalised map: page aligned, sorted by base, non-overlapping, adjacent entries
// of the same kind merged, no empty entries.
struct MemoryMapEntry {
  u64 base;
  u64 size;
  MemoryKind kind;
  u32 numa_node;  // 0 until the kernel parses SRAT; kept here so the format need not change
};
static_assert(sizeof(MemoryMapEntry) == 24);

enum class PixelFormat : u32 {
  None = 0,  // no framebuffer
  Rgbx8 = 1,
  Bgrx8 = 2,
  Bitmask = 3,
};

struct Framebuffer {
  u64 base;  // physical
  u64 size;
  u32 width;
  u32 height;
  u32 pitch;  // bytes per scan line (pixels-per-scan-line * 4)
  PixelFormat format;
  u32 red_mask;
  u32 green_mask;
  u32 blue_mask;
  u32 reserved_mask;
};
static_assert(sizeof(Framebuffer) == 48);

struct BootInfo {
  u64 magic;
  u32 version;
  u32 size;  // sizeof(BootInfo) as the loader saw it

  u64 memory_map;  // physical address of MemoryMapEntry[memory_map_count]
  u64 memory_map_count;

  u64 kernel_phys_base;  // lowest physical address of the loaded image
  u64 kernel_phys_size;
  u64 kernel_virt_base;  // the lowest linked address
  u64 page_table_root;   // physical address of the PML4 / TTBR1 table
  u64 stack_virt_top;    // the boot stack (a guard page sits below its bottom)
  u64 stack_size;
  u64 direct_map_base;  // virt = phys + direct_map_base for every physical address

  u64 command_line;       // physical address of a NUL-terminated ASCII string (0 if none)
  u64 command_line_size;  // without the NUL
  u64 ramdisk_base;       // physical (0 if none)
  u64 ramdisk_size;

  u64 acpi_rsdp;         // physical; 0 if the firmware had none
  u32 acpi_revision;     // 0 = ACPI 1.0 RSDP, 2 = ACPI 2.0+ XSDP
  u32 smbios_major;      // 2 or 3, 0 if none
  u64 smbios_entry;      // physical address of the entry point structure
  u64 efi_system_table;  // physical, for runtime services later
  u64 efi_memory_map;    // the raw firmware map (descriptors of efi_descriptor_size bytes)
  u64 efi_memory_map_size;
  u32 efi_descriptor_size;
  u32 efi_descriptor_version;

  Framebuffer framebuffer;

  u64 kernel_sha256_verified;   // 1 if the loader checked the kernel against its embedded digest
  u64 loader_ticks_at_handoff;  // TSC / CNTVCT at the jump (boot-time measurements)

  // --- version 2 ---
  ktl::u8 kernel_sha256[32];  // the digest the loader checked the kernel file against
  u64 pat;                    // IA32_PAT as programmed; must be mm::paging::x86::kPat
  u64 flags;                  // kFlag* below
};
static_assert(sizeof(BootInfo) == 288);
// Every offset is part of the ABI (testing/qemu/bootinfo.py reads the structure from outside).
static_assert(__builtin_offsetof(BootInfo, memory_map) == 16);
static_assert(__builtin_offsetof(BootInfo, kernel_phys_base) == 32);
static_assert(__builtin_offsetof(BootInfo, page_table_root) == 56);
static_assert(__builtin_offsetof(BootInfo, direct_map_base) == 80);
static_assert(__builtin_offsetof(BootInfo, command_line) == 88);
static_assert(__builtin_offsetof(BootInfo, ramdisk_base) == 104);
static_assert(__builtin_offsetof(BootInfo, acpi_rsdp) == 120);
static_assert(__builtin_offsetof(BootInfo, smbios_entry) == 136);
static_assert(__builtin_offsetof(BootInfo, efi_memory_map) == 152);
static_assert(__builtin_offsetof(BootInfo, efi_descriptor_size) == 168);
static_assert(__builtin_offsetof(BootInfo, framebuffer) == 176);
static_assert(__builtin_offsetof(BootInfo, kernel_sha256_verified) == 224);
static_assert(__builtin_offsetof(BootInfo, kernel_sha256) == 240);
static_assert(__builtin_offsetof(BootInfo, pat) == 272);
static_assert(__builtin_offsetof(BootInfo, flags) == 280);

// BootInfo::flags.
inline constexpr u64 kFlagNoExecute = u64{1} << 0;       // EFER.NXE is set; page-table bit 63 means NX
inline constexpr u64 kFlagGigabytePages = u64{1} << 1;   // the CPU has 1 GiB pages (the loader used them)
inline constexpr u64 kFlagWriteCombining = u64{1} << 2;  // PAT entry 5 is WC (the framebuffer uses it)

}  // namespace boot
