#!/usr/bin/env python3
"""Writes the seed corpus of acpi_fuzz (acpi_corpus/ next to this file): small physical memory
images in the fuzzer's input layout (see acpi_fuzz.cc): a QEMU q35-like set of tables, the ACPI 1.0
RSDT path, x2APIC entries, \\_S5_ encodings, and broken variants. Deterministic; rerun after
changing it and commit the files:

    python3 kernel/acpi/make_corpus.py
"""

import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = 0xE0000  # acpi_fuzz.cc's kBase


def checksum(data, at, count=None):
    data = bytearray(data)
    count = len(data) if count is None else count
    data[at] = 0
    data[at] = (256 - sum(data[:count]) % 256) % 256
    return bytes(data)


def sdt(sig, body, revision=1):
    header = sig + struct.pack("<IBB", 36 + len(body), revision, 0) + b"BOCHS BXPC    " + struct.pack("<I", 1)
    header += b"BXPC" + struct.pack("<I", 1)
    return checksum(header + body, 9)


def rsdp(revision, rsdt, xsdt):
    r = checksum(b"RSD PTR " + b"\0" + b"BOCHS " + bytes([revision]) + struct.pack("<I", rsdt), 8, 20)
    if revision >= 2:
        r = checksum(r + struct.pack("<IQ", 36, xsdt) + bytes(4), 32, 36)
    return r


def lapic(uid, apic_id, flags=1):
    return struct.pack("<BBBBI", 0, 8, uid, apic_id, flags)


def ioapic(apic_id, address, gsi_base):
    return struct.pack("<BBBBII", 1, 12, apic_id, 0, address, gsi_base)


def iso(source, gsi, flags, bus=0):
    return struct.pack("<BBBBIH", 2, 10, bus, source, gsi, flags)


def nmi(uid, flags, lint):
    return struct.pack("<BBBHB", 4, 6, uid, flags, lint)


def x2apic(apic_id, flags, uid):
    return struct.pack("<BBHIII", 9, 16, 0, apic_id, flags, uid)


def x2nmi(flags, uid, lint):
    return struct.pack("<BBHIB3x", 0xA, 12, flags, uid, lint)


def madt(entries, lapic_address=0xFEE00000, flags=1, revision=1):
    return sdt(b"APIC", struct.pack("<II", lapic_address, flags) + b"".join(entries), revision)


def qemu_madt_entries(cpus=2):
    e = [lapic(i & 0xFF, i & 0xFF) for i in range(cpus)]
    e += [ioapic(0, 0xFEC00000, 0), iso(0, 2, 0)]
    e += [iso(irq, irq, 0x000D) for irq in (5, 9, 10, 11)]
    e += [nmi(0xFF, 0, 1)]
    return e


def hpet(base=0xFED00000, space=0):
    return sdt(b"HPET", struct.pack("<IBBBBQBHB", 0x8086A201, space, 0, 0, 0, base, 0, 0x80, 0))


def fadt(dsdt, length=244, revision=3):
    f = bytearray(length)

    def put(at, fmt, value):
        n = struct.calcsize(fmt)
        if at + n <= length:
            f[at:at + n] = struct.pack(fmt, value)

    def gas(at, space, width, address):
        if at + 12 <= length:
            f[at:at + 12] = struct.pack("<BBBBQ", space, width, 0, 0, address)

    put(40, "<I", dsdt)
    put(46, "<H", 9)
    put(64, "<I", 0x604)
    put(76, "<I", 0x608)
    put(91, "<B", 4)
    put(108, "<B", 0x32)
    put(109, "<H", 2)
    put(112, "<I", 0x84A5)
    gas(116, 1, 8, 0xCF9)
    put(128, "<B", 0x0F)
    put(140, "<Q", dsdt)
    gas(172, 1, 16, 0x604)
    gas(208, 1, 32, 0x608)
    return sdt(b"FACP", bytes(f[36:]), revision)


def s5(package, root=False):
    return b"\x08" + (b"\\" if root else b"") + b"_S5_" + package


def pkg(count, elements):
    return bytes([0x12, 2 + len(elements), count]) + elements


QEMU_DSDT = (b"\x5b\x80PRS_\x01\x0b\x00\xaf\x0a\x0c" + b"\x10\x0e\\" + s5(pkg(4, b"\0\0\0\0")) +
             b"\x14\x08_PTS\x01\xa4\x00")


def image(tables, revision=2, xsdt=True, dsdt=QEMU_DSDT, extra_root=b""):
    """tables: list of table bytes, or a FACP marker (None) placed with the DSDT. Returns the input."""
    out = bytearray(0x40)
    placed = []

    def place(data):
        at = (len(out) + 15) & ~15
        out.extend(bytes(at - len(out)))
        out.extend(data)
        return BASE + at

    dsdt_at = place(sdt(b"DSDT", dsdt)) if dsdt is not None else 0
    for t in tables:
        placed.append(place(fadt(dsdt_at) if t is None else t))
    entry = "<Q" if xsdt else "<I"
    root = sdt(b"XSDT" if xsdt else b"RSDT", b"".join(struct.pack(entry, a) for a in placed) + extra_root)
    root_at = place(root)
    out[0:36 if revision >= 2 else 20] = rsdp(revision, 0 if xsdt else root_at, root_at if xsdt else 0)
    # Mode 1: the fuzzer repairs the checksums, so that mutations inside the tables reach the decoders.
    return bytes([1, 0]) + struct.pack("<H", 0) + bytes(out)


def seeds():
    s = {}
    qemu = [None, madt(qemu_madt_entries()), hpet(), sdt(b"MCFG", bytes(8) + struct.pack("<QHBBI", 0xB0000000, 0, 0, 0xFF, 0)),
            sdt(b"WAET", b"\x02\0\0\0")]
    s["qemu_q35"] = image(qemu)
    s["acpi1_rsdt"] = image([None, madt(qemu_madt_entries(1))], revision=0, xsdt=False)
    s["x2apic"] = image([madt(qemu_madt_entries() + [x2apic(0x100, 1, 300), x2apic(0x101, 2, 301),
                                                    x2nmi(0, 0xFFFFFFFF, 1), x2nmi(0xF, 300, 0)], revision=5)])
    s["lapic_override"] = image([madt(qemu_madt_entries() + [struct.pack("<BBHQ", 5, 12, 0, 0x1FEE00000)])])
    s["two_ioapics"] = image([madt(qemu_madt_entries() + [ioapic(1, 0xFEC10000, 24), iso(4, 20, 0x3)])])
    s["s5_root_byte"] = image([None, madt(qemu_madt_entries())],
                              dsdt=s5(pkg(4, b"\x0a\x05\x0a\x05\x00\x00"), root=True))
    s["s5_one_word"] = image([None, madt(qemu_madt_entries())], dsdt=b"\x70\\_S5_\x60" + s5(pkg(1, b"\x0b\x05\x07")))
    s["s5_pkglength2"] = image([None, madt(qemu_madt_entries())],
                               dsdt=s5(b"\x12\x47\x00\x02\x0a\x02\x0a\x03"))
    filler = bytes(0x20 + i % 50 for i in range(600))
    s["s5_far"] = image([madt(qemu_madt_entries()), None], dsdt=filler + s5(pkg(2, b"\x0a\x05\x0a\x05")))
    s["s5_malformed"] = image([None, madt(qemu_madt_entries())], dsdt=s5(pkg(2, b"\x0a\x05\x0a")))
    s["fadt_v1"] = image([fadt(0, length=116, revision=1), madt(qemu_madt_entries())])
    s["madt_entry_overrun"] = image([madt(qemu_madt_entries() + [b"\x7f\x09\0\0"])])
    s["madt_bad_flags"] = image([madt(qemu_madt_entries() + [iso(3, 3, 0x2), nmi(1, 0, 2)])])
    s["duplicates"] = image([madt(qemu_madt_entries()), madt([lapic(0, 0)], lapic_address=0xFEE10000), hpet(),
                             hpet(0xFED10000, 1)], extra_root=bytes(8))
    s["too_many_cpus"] = image([madt(qemu_madt_entries(257))])
    s["no_madt"] = image([None, hpet()])
    bad = bytearray(s["qemu_q35"])
    bad[4 + 8] ^= 1  # the RSDP checksum
    s["bad_rsdp_repaired"] = bytes(bad)
    bad[0] = 0  # mode 0: the checksums as they are
    s["bad_rsdp_checksum"] = bytes(bad)
    return s


def main():
    corpus = os.path.join(HERE, "acpi_corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(corpus)
    for name, data in sorted(seeds().items()):
        assert len(data) <= 4096, (name, len(data))
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds()), corpus))


if __name__ == "__main__":
    main()
