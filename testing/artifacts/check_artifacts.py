#!/usr/bin/env python3
"""Checks the formats of the cross-built artifacts by reading their headers directly.

  check_artifacts.py kernel-x86_64 FILE     freestanding x86_64 ELF executable in the higher half
  check_artifacts.py efi-x64 FILE           PE32+ EFI application for x64 (NX_COMPAT, no W+X section)
  check_artifacts.py efi-aa64 FILE          PE32+ EFI application for AArch64
  check_artifacts.py archive-aarch64 FILE   a static library of freestanding AArch64 ELF objects

Several checks may be given in one run; each prints what it verified.
"""

import struct
import sys

KERNEL_BASE = 0xFFFFFFFF80000000
EM_X86_64, EM_AARCH64 = 62, 183
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
PF_X, PF_W = 1, 2


class CheckError(Exception):
    pass


def require(cond, message):
    if not cond:
        raise CheckError(message)


def elf_header(data, what):
    require(len(data) >= 64 and data[:4] == b"\x7fELF", "%s: not an ELF file" % what)
    require(data[4] == 2, "%s: not ELF64" % what)
    require(data[5] == 1, "%s: not little-endian" % what)
    (e_type, e_machine, _, e_entry, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize, e_shnum,
     e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    return dict(type=e_type, machine=e_machine, entry=e_entry, phoff=e_phoff, phentsize=e_phentsize,
                phnum=e_phnum, shoff=e_shoff, shentsize=e_shentsize, shnum=e_shnum)


def check_kernel_x86_64(path):
    data = open(path, "rb").read()
    h = elf_header(data, path)
    require(h["type"] == 2, "kernel: not ET_EXEC (type %d)" % h["type"])
    require(h["machine"] == EM_X86_64, "kernel: machine %d is not x86_64" % h["machine"])
    require(h["entry"] >= KERNEL_BASE, "kernel: entry %#x is below the higher half" % h["entry"])
    loads = 0
    entry_in_text = False
    for i in range(h["phnum"]):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", data, h["phoff"] + i * h["phentsize"])
        require(p_type not in (PT_DYNAMIC, PT_INTERP), "kernel: has a dynamic section or interpreter")
        if p_type != PT_LOAD:
            continue
        loads += 1
        require(p_vaddr >= KERNEL_BASE, "kernel: PT_LOAD at %#x is below %#x" % (p_vaddr, KERNEL_BASE))
        require(p_vaddr % 4096 == 0, "kernel: PT_LOAD at %#x is not page aligned" % p_vaddr)
        require(not (p_flags & PF_W and p_flags & PF_X), "kernel: PT_LOAD at %#x is writable and executable" % p_vaddr)
        if p_flags & PF_X and p_vaddr <= h["entry"] < p_vaddr + p_memsz:
            entry_in_text = True
    require(loads > 0, "kernel: no PT_LOAD segments")
    require(entry_in_text, "kernel: entry point not inside an executable segment")
    print("ok: %s is a static x86_64 ELF executable, %d PT_LOAD segments all >= %#x, no W+X, entry %#x"
          % (path, loads, KERNEL_BASE, h["entry"]))


def check_efi(path, machine, name):
    data = open(path, "rb").read()
    require(data[:2] == b"MZ", "%s: no MZ header" % path)
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    require(data[pe:pe + 4] == b"PE\0\0", "%s: no PE signature" % path)
    f_machine, n_sections, _, _, _, opt_size, _ = struct.unpack_from("<HHIIIHH", data, pe + 4)
    require(f_machine == machine, "%s: machine %#x, expected %#x (%s)" % (path, f_machine, machine, name))
    opt = pe + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    require(magic == 0x20B, "%s: optional header magic %#x is not PE32+" % (path, magic))
    section_alignment = struct.unpack_from("<I", data, opt + 32)[0]
    subsystem, dll_characteristics = struct.unpack_from("<HH", data, opt + 68)
    require(subsystem == 10, "%s: subsystem %d is not EFI_APPLICATION (10)" % (path, subsystem))
    require(dll_characteristics & 0x100, "%s: NX_COMPAT is not set" % path)
    require(section_alignment % 4096 == 0, "%s: section alignment %#x is not 4 KiB" % (path, section_alignment))
    sections = opt + opt_size
    names = []
    for i in range(n_sections):
        raw = struct.unpack_from("<8sIIIIIIHHI", data, sections + 40 * i)
        sname = raw[0].rstrip(b"\0").decode()
        characteristics = raw[9]
        require(not (characteristics & 0x80000000 and characteristics & 0x20000000),
                "%s: section %s is writable and executable" % (path, sname))
        names.append(sname)
    print("ok: %s is a PE32+ EFI application for %s, NX_COMPAT, 4 KiB sections, no W+X (%s)"
          % (path, name, " ".join(names)))


def check_archive_aarch64(path):
    data = open(path, "rb").read()
    require(data[:8] == b"!<arch>\n", "%s: not an ar archive" % path)
    pos, objects = 8, 0
    while pos + 60 <= len(data):
        name = data[pos:pos + 16].decode().strip()
        size = int(data[pos + 48:pos + 58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        if not name.startswith("/") and body[:4] == b"\x7fELF":
            h = elf_header(body, "%s(%s)" % (path, name))
            require(h["machine"] == EM_AARCH64, "%s(%s): machine %d is not AArch64" % (path, name, h["machine"]))
            objects += 1
        pos += 60 + size + (size & 1)
    require(objects > 0, "%s: no ELF objects" % path)
    print("ok: %s holds %d AArch64 ELF64 objects" % (path, objects))


def main(argv):
    checks = {
        "kernel-x86_64": check_kernel_x86_64,
        "efi-x64": lambda p: check_efi(p, 0x8664, "x64"),
        "efi-aa64": lambda p: check_efi(p, 0xAA64, "AArch64"),
        "archive-aarch64": check_archive_aarch64,
    }
    if len(argv) < 3 or len(argv) % 2 == 0:
        print(__doc__)
        return 2
    try:
        for kind, path in zip(argv[1::2], argv[2::2]):
            checks[kind](path)
    except CheckError as e:
        print("FAIL: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
