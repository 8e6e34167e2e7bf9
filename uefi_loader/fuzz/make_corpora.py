#!/usr/bin/env python3
"""Writes the seed corpora of the loader's fuzzers (elf_corpus/, memory_map_corpus/,
firmware_tables_corpus/ next to this file): small hand-made valid inputs and broken variants of
them (truncated, mutated, hostile values). Deterministic; rerun after changing it and commit the
files:

    python3 uefi_loader/fuzz/make_corpora.py

Inputs the fuzzers found problems with are kept as regression seeds (named regress_*).
"""

import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# --- elf_corpus: kernel ELF files (the fuzzer's input is the file itself) --------------------------

KBASE = 0xFFFF_FFFF_8000_0000
PT_LOAD, PT_NOTE, PT_GNU_STACK = 1, 4, 0x6474E551
X, W, R = 1, 2, 4
X86_64, AARCH64 = 62, 183
CODE = bytes([0xFA, 0xF4, 0xEB, 0xFD]) * 4  # cli; hlt; jmp $-1


def elf(segments, entry, machine=X86_64, ident=None, etype=2, version=1, ehsize=64, phentsize=56,
        phoff=None, phnum=None):
    """segments: (type, flags, vaddr, memsz, data[, offset]) laid out after the program headers."""
    headers = 64 + 56 * len(segments)
    body = b""
    phdrs = b""
    for seg in segments:
        ptype, flags, vaddr, memsz, data = seg[:5]
        offset = seg[5] if len(seg) > 5 else headers + len(body)
        filesz = len(data) if len(seg) <= 6 else seg[6]
        phdrs += struct.pack("<IIQQQQQQ", ptype, flags, offset, vaddr, vaddr, filesz, memsz, 0x1000)
        body += data
    ident = ident if ident is not None else bytes([0x7F, ord("E"), ord("L"), ord("F"), 2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", etype, machine, version, entry,
                                 64 if phoff is None else phoff, 0, 0, ehsize, phentsize,
                                 len(segments) if phnum is None else phnum, 0, 0, 0)
    return header + phdrs + body


def text(vaddr=KBASE, data=CODE, memsz=None):
    return (PT_LOAD, R | X, vaddr, len(data) if memsz is None else memsz, data)


def elf_seeds():
    s = {}
    s["valid_minimal"] = elf([text()], KBASE)
    three = [text(), (PT_LOAD, R, KBASE + 0x1000, 16, b"rodata-rodata-ro"),
             (PT_LOAD, R | W, KBASE + 0x2000, 0x3000, struct.pack("<Q", 0x1122334455667788))]
    s["valid_text_rodata_bss"] = elf(three, KBASE + 4)
    s["valid_other_headers"] = elf([(PT_NOTE, R, 0, 8, b"GNU\0note"), (PT_GNU_STACK, R | W, 0, 0, b""),
                                    (PT_LOAD, R | W | X, 0x1000, 0, b""), text()], KBASE + 2)
    s["valid_aarch64"] = elf([(PT_LOAD, R | X, KBASE, 8, bytes([0x5F, 0x20, 0x03, 0xD5]) * 2)], KBASE,
                             machine=AARCH64)
    s["valid_unsorted"] = elf([(PT_LOAD, R | W, KBASE + 0x5000, 0x1000, b"data"), text(KBASE + 0x2000)],
                              KBASE + 0x2000)
    s["valid_16_segments"] = elf([text()] + [(PT_LOAD, R, KBASE + 0x1000 * i, 0x1000, b"")
                                             for i in range(1, 16)], KBASE)
    # A well-formed ELF whose image ends one page below 2^64: refused since parse_kernel asks for
    # room above the image (guard page + boot stack), so it probes NoRoomAbove.
    s["valid_last_page"] = elf([text(0xFFFF_FFFF_FFFF_E000, memsz=0x1000)], 0xFFFF_FFFF_FFFF_EFFF)
    s["valid_entry_last_byte"] = elf([text(memsz=0x2000)], KBASE + 0x1FFF)

    base = s["valid_text_rodata_bss"]
    for cut in (0, 16, 63, 64, 100, 64 + 56 * 3 - 1, len(base) - 1):
        s["truncated_%d" % cut] = base[:cut]
    s["wx"] = elf([(PT_LOAD, R | W | X, KBASE, 16, CODE)], KBASE)
    s["overlap_same_vaddr"] = elf([text(), (PT_LOAD, R | W, KBASE, 16, CODE)], KBASE)
    s["overlap_shared_page"] = elf([text(memsz=0x1001), (PT_LOAD, R | W, KBASE + 0x1000, 8, b"")], KBASE)
    s["misaligned"] = elf([text(KBASE + 0x10)], KBASE + 0x10)
    s["below_kernel_base"] = elf([text(0x40_0000)], 0x40_0000)
    s["entry_in_data"] = elf([text(), (PT_LOAD, R | W, KBASE + 0x1000, 16, CODE)], KBASE + 0x1000)
    s["entry_past_end"] = elf([text()], KBASE + len(CODE))
    s["filesz_over_memsz"] = elf([(PT_LOAD, R | X, KBASE, 8, CODE)], KBASE)
    s["offset_outside_file"] = elf([(PT_LOAD, R | X, KBASE, 16, b"", 0x10000, 16)], KBASE)
    s["offset_wraps"] = elf([(PT_LOAD, R | X, KBASE, 16, b"", 2**64 - 4, 16)], KBASE)
    s["memsz_wraps"] = elf([text(memsz=2**64 - 1)], KBASE)
    s["end_in_last_page"] = elf([text(0xFFFF_FFFF_FFFF_F000, memsz=0x10)], 0xFFFF_FFFF_FFFF_F000)
    s["seventeen_segments"] = elf([text()] + [(PT_LOAD, R, KBASE + 0x1000 * i, 0x1000, b"")
                                              for i in range(1, 17)], KBASE)
    s["phnum_huge"] = elf([text()], KBASE, phnum=0xFFFF)
    s["phoff_wraps"] = elf([text()], KBASE, phoff=2**64 - 8)
    s["no_load"] = elf([(PT_NOTE, R, 0, 8, b"GNU\0note")], KBASE)
    s["bad_magic"] = b"\x7fELG" + s["valid_minimal"][4:]
    s["elf32"] = s["valid_minimal"][:4] + b"\x01" + s["valid_minimal"][5:]
    s["big_endian"] = s["valid_minimal"][:5] + b"\x02" + s["valid_minimal"][6:]
    s["version_0"] = elf([text()], KBASE, version=0)
    s["et_dyn"] = elf([text()], KBASE, etype=3)
    s["bad_ehsize"] = elf([text()], KBASE, ehsize=52)
    return s


# --- memory_map_corpus: header, then 18-byte records (see memory_map_fuzz.cc) -----------------------

CONV, LDATA, LCODE, BSCODE, BSDATA, RTCODE, RTDATA, RSVD = 7, 2, 1, 3, 4, 5, 6, 0
UNUSABLE, ACPI, NVS, MMIO = 8, 9, 10, 11
RUNTIME_CTL = 0x20
# Placement kinds (boot::MemoryKind) are written as kind - 1 (the fuzzer adds 1).
KERNEL, STACK, TABLES, BOOTINFO, RAMDISK, FRAMEBUFFER, K_MMIO = 3, 4, 5, 6, 14, 11, 10


def rec(kind, base, length, ctl=0):
    return struct.pack("<BBQQ", kind & 0xFF, ctl, base & (2**64 - 1), length & (2**64 - 1))


def place(kind, base, size):
    return rec(kind - 1, base, size)


def mmap(placements, firmware, flags=0, shrink=0):
    return bytes([len(placements) | flags, shrink]) + b"".join(placements) + b"".join(firmware)


def memory_map_seeds():
    s = {}
    ovmf = [rec(BSCODE, 0x0, 1), rec(CONV, 0x1000, 0x9F), rec(CONV, 0x100000, 0x700),
            rec(ACPI, 0x800000, 0x8), rec(CONV, 0x808000, 0x3), rec(NVS, 0x80B000, 0x1),
            rec(CONV, 0x80C000, 0x4), rec(NVS, 0x810000, 0xF0), rec(CONV, 0x900000, 0x1D000),
            rec(LDATA, 0x1D900000, 0x200), rec(LCODE, 0x1DB00000, 0x40), rec(BSDATA, 0x1DB40000, 0x300),
            rec(RTDATA, 0x1DE40000, 0x100, RUNTIME_CTL), rec(RTCODE, 0x1DF40000, 0x80, RUNTIME_CTL),
            rec(RSVD, 0x1DFC0000, 0x40), rec(ACPI, 0x1F77D000, 0x1), rec(CONV, 0x1F77E000, 0x882),
            rec(MMIO, 0xFFC00000, 0x400, RUNTIME_CTL), rec(RSVD, 0xFD00000000, 0x300000)]
    loader = [place(KERNEL, 0x1D900000, 0x265000), place(STACK, 0x1DB80000, 0x10000),
              place(TABLES, 0x1DA00000, 0x13000), place(BOOTINFO, 0x1DB00000, 0x5000),
              place(FRAMEBUFFER, 0xC0000000, 0x3E8000), place(K_MMIO, 0xFEE00000, 0x1000),
              place(K_MMIO, 0xFEC00000, 0x1000)]
    s["ovmf_like"] = mmap(loader, ovmf)
    s["ovmf_like_short_output"] = mmap(loader, ovmf, flags=8, shrink=9)
    s["ovmf_like_short_scratch"] = mmap(loader, ovmf, flags=16, shrink=11)
    s["firmware_only"] = mmap([], ovmf[:8])
    s["placements_only"] = mmap(loader[:3], [])
    s["empty"] = b""
    s["overlaps"] = mmap([place(KERNEL, 0x204000, 0x2000)],
                         [rec(CONV, 0x0, 256), rec(RSVD, 0x80000, 16), rec(NVS, 0xA0000, 8),
                          rec(LDATA, 0x200000, 64), rec(CONV, 0x200000, 64), rec(CONV, 0x0, 256),
                          rec(ACPI, 0xFF000, 0x200)])
    s["unsorted_zero_length"] = mmap([], [rec(CONV, 0x110000, 16), rec(RSVD, 0x0, 1), rec(CONV, 0x50000, 0),
                                          rec(BSDATA, 0x100000, 16), rec(CONV, 0x1000, 0x9F),
                                          rec(RSVD, 0x300000, 0)])
    s["unaligned"] = mmap([place(RAMDISK, 0x3000123, 0x1FFF)],
                          [rec(CONV, 0x1800, 2), rec(RSVD, 0x10800, 1), rec(CONV, 0x3000000, 16),
                           rec(ACPI, 0x3004FFF, 1)])
    top = 2**64
    s["wrap_at_2_64"] = mmap([place(K_MMIO, top - 0x1800, 0x1000), place(KERNEL, top - 0x10, 0x100)],
                             [rec(CONV, top - 0x3000, 0x10), rec(RSVD, top - 0x800, 4), rec(CONV, 0x100000, 16),
                              rec(MMIO, top - 0x10000, 2**52), rec(CONV, top - 0x5000, 2**64 - 1)])
    s["huge_page_counts"] = mmap([], [rec(CONV, 0x1000, 2**52), rec(RSVD, 0x2000, 2**52 - 1),
                                      rec(CONV, 0x0, 2**64 - 1), rec(UNUSABLE, 0x5000, 1)])
    s["unknown_types_and_attributes"] = mmap([], [rec(99, 0x0, 16), rec(15, 0x10000, 16), rec(14, 0x20000, 16),
                                                  rec(CONV, 0x30000, 16, RUNTIME_CTL),
                                                  rec(CONV, 0x40000, 16 | (0x7F << 56), 0x40 | 0x08),
                                                  rec(255, 0x50000, 1), rec(MMIO + 1, 0x60000, 1)])
    s["regress_usable_in_last_page"] = mmap([], [rec(CONV, top - 0xFFF, 0), rec(RSVD, 0x100000, 1)])
    s["regress_placement_below_last_page"] = mmap([place(KERNEL, top - 0x1800, 0x1000)], [])
    rng = random.Random(1)
    for n in range(3):
        recs = [rec(rng.randrange(16), rng.randrange(2**16) * 0x1000, rng.randrange(64), rng.randrange(0x80))
                for _ in range(40)]
        pl = [rec(rng.randrange(14), rng.randrange(2**16) * 0x1000, rng.randrange(2**20), rng.randrange(0x80))
              for _ in range(rng.randrange(8))]
        s["random_%d" % n] = mmap(pl, recs, flags=rng.choice([0, 8, 16, 24]), shrink=rng.randrange(256))
    return s


# --- firmware_tables_corpus: mode byte, then the structure (see firmware_tables_fuzz.cc) -----------

M_RSDP, M_SMBIOS2, M_SMBIOS3, M_RAW = 0, 1, 2, 3
STAMP, FIX1, FIX2 = 4, 8, 16


def fix(b, at, start, count):
    b[at] = 0
    b[at] = (256 - sum(b[start:start + count])) % 256


def rsdp(revision, length=36, tail=b""):
    b = bytearray(b"RSD PTR " + bytes(12))
    b[9:15] = b"FERRIT"
    b[15] = revision
    b[16:20] = struct.pack("<I", 0x1F77E000)
    if revision >= 2:
        b += struct.pack("<IQ", length, 0x1F77E0E8) + bytes(4)
        b += bytes(max(0, length - len(b)))
    fix(b, 8, 0, 20)
    if revision >= 2:
        fix(b, 32, 0, length)
    return bytes(b) + tail


def smbios2(length=0x1F, size=0x1F):
    b = bytearray(max(size, 0x1F))
    b[0:4] = b"_SM_"
    b[5], b[6], b[7] = length, 2, 8
    b[0x10:0x15] = b"_DMI_"
    b[0x16:0x18] = struct.pack("<H", 0x1A3)
    b[0x18:0x1C] = struct.pack("<I", 0xF0000)
    b[0x1C:0x1E] = struct.pack("<H", 9)
    b[0x1E] = 0x28
    fix(b, 0x15, 0x10, 15)
    fix(b, 4, 0, length)
    return bytes(b[:size])


def smbios3(length=0x18, tail=b""):
    b = bytearray(max(length, 0x18))
    b[0:5] = b"_SM3_"
    b[6], b[7], b[8], b[0xA] = length, 3, 6, 1
    b[0x0C:0x10] = struct.pack("<I", 0x1A3)
    b[0x10:0x18] = struct.pack("<Q", 0x1F5F0000)
    fix(b, 5, 0, length)
    return bytes(b) + tail


def firmware_tables_seeds():
    s = {}
    s["rsdp_v1"] = bytes([M_RSDP]) + rsdp(0)
    s["rsdp_v2"] = bytes([M_RSDP]) + rsdp(2)
    s["rsdp_v2_long_with_tail"] = bytes([M_RSDP]) + rsdp(2, 48, b"\xff" * 8)
    s["rsdp_v2_truncated"] = bytes([M_RSDP]) + rsdp(2, 48)[:40]
    s["rsdp_v2_bad_length_repaired"] = bytes([M_RSDP | FIX1 | FIX2]) + rsdp(2, 300)[:36]
    s["rsdp_stamped_repaired"] = bytes([M_RSDP | STAMP | FIX1 | FIX2]) + bytes(36)
    bad = bytearray(rsdp(2))
    bad[30] ^= 1
    s["rsdp_v2_bad_extended_checksum"] = bytes([M_RSDP]) + bytes(bad)
    s["smbios2"] = bytes([M_SMBIOS2]) + smbios2()
    s["smbios2_erratum_0x1e"] = bytes([M_SMBIOS2]) + smbios2(0x1E)
    s["regress_smbios2_erratum_exact_length"] = bytes([M_SMBIOS2]) + smbios2(0x1E, 0x1E)
    s["smbios2_long"] = bytes([M_SMBIOS2]) + smbios2(0x28, 0x28)
    bad = bytearray(smbios2())
    bad[0x12] ^= 0x20
    s["smbios2_bad_dmi"] = bytes([M_SMBIOS2]) + bytes(bad)
    s["smbios2_stamped_repaired"] = bytes([M_SMBIOS2 | STAMP | FIX1 | FIX2, 0, 0, 0, 0, 0, 0x1F]) + bytes(0x19)
    s["smbios3"] = bytes([M_SMBIOS3]) + smbios3()
    s["smbios3_long_with_tail"] = bytes([M_SMBIOS3]) + smbios3(0x20, b"\x00" * 4)
    s["smbios3_stamped_repaired"] = bytes([M_SMBIOS3 | STAMP | FIX1, 0, 0, 0, 0, 0, 0, 0x18]) + bytes(0x11)
    s["smbios3_truncated"] = bytes([M_SMBIOS3]) + smbios3()[:0x17]
    s["raw_empty"] = bytes([M_RAW])
    s["raw_all_three_signatures"] = bytes([M_RAW]) + b"RSD PTR _SM_ _SM3_" + bytes(40)
    return s


def write(name, seeds):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for key, data in sorted(seeds.items()):
        with open(os.path.join(out, key), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("elf_corpus", elf_seeds())
    write("memory_map_corpus", memory_map_seeds())
    write("firmware_tables_corpus", firmware_tables_seeds())
