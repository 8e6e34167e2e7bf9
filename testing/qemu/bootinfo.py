"""boot::BootInfo (kernel/boot/boot_info.cppm, version 2) read from guest memory.

The offsets are the static_asserted ones in boot_info.cppm; keep both in step (a version or size
mismatch makes parse() fail loudly rather than misread).
"""
import struct

MAGIC = 0x314F464E49544F42  # "BOTINFO1"
VERSION = 2
SIZE = 288

KINDS = {1: "usable", 2: "loader-reclaimable", 3: "kernel-image", 4: "kernel-stack", 5: "page-tables",
         6: "boot-info", 7: "acpi-reclaimable", 8: "acpi-nvs", 9: "runtime-services", 10: "mmio",
         11: "framebuffer", 12: "reserved", 13: "bad", 14: "ramdisk"}

_FIELDS = [  # (name, offset, struct format)
    ("magic", 0, "Q"), ("version", 8, "I"), ("size", 12, "I"), ("memory_map", 16, "Q"),
    ("memory_map_count", 24, "Q"), ("kernel_phys_base", 32, "Q"), ("kernel_phys_size", 40, "Q"),
    ("kernel_virt_base", 48, "Q"), ("page_table_root", 56, "Q"), ("stack_virt_top", 64, "Q"),
    ("stack_size", 72, "Q"), ("direct_map_base", 80, "Q"), ("command_line", 88, "Q"),
    ("command_line_size", 96, "Q"), ("ramdisk_base", 104, "Q"), ("ramdisk_size", 112, "Q"),
    ("acpi_rsdp", 120, "Q"), ("acpi_revision", 128, "I"), ("smbios_major", 132, "I"),
    ("smbios_entry", 136, "Q"), ("efi_system_table", 144, "Q"), ("efi_memory_map", 152, "Q"),
    ("efi_memory_map_size", 160, "Q"), ("efi_descriptor_size", 168, "I"),
    ("efi_descriptor_version", 172, "I"),
    ("fb_base", 176, "Q"), ("fb_size", 184, "Q"), ("fb_width", 192, "I"), ("fb_height", 196, "I"),
    ("fb_pitch", 200, "I"), ("fb_format", 204, "I"),
    ("kernel_sha256_verified", 224, "Q"), ("loader_ticks_at_handoff", 232, "Q"),
    ("kernel_sha256", 240, "32s"), ("pat", 272, "Q"), ("flags", 280, "Q"),
]


class BootInfoError(ValueError):
    pass


def parse(data):
    """A dict of the fields of the BootInfo at the start of `data` (at least SIZE bytes)."""
    if len(data) < SIZE:
        raise BootInfoError("need %d bytes, got %d" % (SIZE, len(data)))
    info = {name: struct.unpack_from("<" + fmt, data, off)[0] for name, off, fmt in _FIELDS}
    if info["magic"] != MAGIC:
        raise BootInfoError("bad magic %#x" % info["magic"])
    if info["version"] != VERSION or info["size"] != SIZE:
        raise BootInfoError("BootInfo version %d size %d; this reader knows version %d size %d"
                            % (info["version"], info["size"], VERSION, SIZE))
    return info


def memory_map(read_phys, info):
    """[(base, size, kind name)] of the normalised map."""
    count = info["memory_map_count"]
    raw = read_phys(info["memory_map"], 24 * count)
    out = []
    for i in range(count):
        base, size, kind, _numa = struct.unpack_from("<QQII", raw, 24 * i)
        out.append((base, size, KINDS.get(kind, "unknown(%d)" % kind)))
    return out
