#!/usr/bin/env python3
"""Writes the seed corpus of fat_fuzz (fat_corpus/ next to this file): tiny FAT32 volumes of a
few dozen clusters (512-byte clusters, and 4 KiB ones in two geometries) (built here byte by byte, no tools needed), as a superfloppy, inside an
MBR and inside a GPT, plus broken variants: a looping chain, a fragmented file, a broken long
name, deleted entries, a file longer than its chain, a FAT16 BPB. Deterministic; rerun after
changing it and commit the files:

    python3 kernel/fs/make_corpus.py
"""

import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
RESERVED = 2  # boot sector, FSInfo
FAT_SECTORS = 1  # a sector's worth of entries (128 with 512-byte sectors)
EOC = 0x0FFFFFFF


def lfn_checksum(name11):
    s = 0
    for c in name11:
        s = (((s & 1) << 7) + (s >> 1) + c) & 0xFF
    return s


def short_entry(name11, attr, cluster, size, case=0):
    return (name11 + struct.pack("<BBBHHHHHHHI", attr, case, 0, 0, 0, 0, cluster >> 16, 0, 0, cluster & 0xFFFF, size))


def lfn_entries(name, name11):
    units = [ord(c) for c in name] + [0]
    while len(units) % 13:
        units.append(0xFFFF)
    parts = [units[i : i + 13] for i in range(0, len(units), 13)]
    out = []
    check = lfn_checksum(name11)
    for seq in range(len(parts), 0, -1):
        u = parts[seq - 1]
        ord_ = seq | (0x40 if seq == len(parts) else 0)
        e = bytes([ord_]) + struct.pack("<5H", *u[0:5]) + bytes([0x0F, 0, check])
        e += struct.pack("<6H", *u[5:11]) + b"\0\0" + struct.pack("<2H", *u[11:13])
        out.append(e)
    return b"".join(out)


class Volume:
    def __init__(self, sector=512, spc=1, clusters=28):
        self.sector = sector
        self.spc = spc
        self.clusters = clusters
        self.cluster = sector * spc
        self.fat = [0x0FFFFFF8, EOC] + [0] * (FAT_SECTORS * sector // 4 - 2)
        self.data = bytearray(clusters * self.cluster)
        self.next_free = 2

    def alloc(self, count, gap=0):
        chain = []
        for _ in range(count):
            chain.append(self.next_free)
            self.next_free += 1 + gap
        for a, b in zip(chain, chain[1:]):
            self.fat[a] = b
        self.fat[chain[-1]] = EOC
        return chain

    def put(self, chain, payload):
        for i, c in enumerate(chain):
            piece = payload[i * self.cluster : (i + 1) * self.cluster]
            at = (c - 2) * self.cluster
            self.data[at : at + len(piece)] = piece

    def image(self, fat16=False):
        sector = self.sector
        total = RESERVED + FAT_SECTORS + self.clusters * self.spc
        b = bytearray(sector)
        b[0:3] = b"\xEB\x58\x90"
        b[3:11] = b"MSWIN4.1"
        struct.pack_into("<HBHBHHBHHHII", b, 11, sector, self.spc, RESERVED, 1, 0, 0, 0xF8, 1 if fat16 else 0, 32, 2, 0, total)
        struct.pack_into("<IHHIHH", b, 36, 0 if fat16 else FAT_SECTORS, 0, 0, 2, 1, 0)
        b[64] = 0x80
        b[66] = 0x29
        struct.pack_into("<I", b, 67, 0xF0221234)
        b[71:82] = b"FUZZ       "
        b[82:90] = b"FAT32   "
        b[510:512] = b"\x55\xAA"
        fsinfo = bytearray(sector)
        struct.pack_into("<I", fsinfo, 0, 0x41615252)
        struct.pack_into("<III", fsinfo, 484, 0x61417272, self.clusters - (self.next_free - 2), self.next_free)
        struct.pack_into("<I", fsinfo, 508, 0xAA550000)
        fat = b"".join(struct.pack("<I", v) for v in self.fat)
        return bytes(b) + bytes(fsinfo) + fat + bytes(self.data)


def text(n, seed):
    return bytes((seed + i * 7 + (i >> 5)) & 0xFF for i in range(n))


def basic(broken=None, **geometry):
    v = Volume(**geometry)
    BIG = 4 * v.cluster - 100
    root = v.alloc(1)
    sub = v.alloc(1)
    big = v.alloc(4, gap=1 if broken == "fragmented" else 0)
    small = v.alloc(1)
    nested = v.alloc(1)
    v.put(big, text(BIG, 1))
    v.put(small, b"hello from the fuzz corpus\n")
    v.put(nested, b"nested\n")
    label = short_entry(b"FUZZ       ", 0x08, 0, 0)
    long_name = "A long name.txt"
    lfn = lfn_entries(long_name, b"ALONGN~1TXT")
    if broken == "lfn":
        lfn = lfn[:13] + bytes([lfn[13] ^ 0x55]) + lfn[14:]
    size = BIG
    if broken == "too_long":
        size = 9 * v.cluster
    entries = label
    if broken == "deleted":
        entries += b"\xE5" + short_entry(b"GONE    TXT", 0x20, small[0], 27)[1:]
    entries += lfn + short_entry(b"ALONGN~1TXT", 0x20, big[0], size)
    entries += short_entry(b"README  TXT", 0x20, small[0], 27)
    entries += short_entry(b"SUB        ", 0x10, sub[0], 0)
    entries += short_entry(b"EMPTY   TXT", 0x20, 0, 0)
    v.put(root, entries)
    v.put(
        sub,
        short_entry(b".          ", 0x10, sub[0], 0)
        + short_entry(b"..         ", 0x10, 0, 0)
        + short_entry(b"NESTED  TXT", 0x20, nested[0], 7, case=0x18),
    )
    if broken == "loop":
        v.fat[big[2]] = big[0]
    return v


LBA = 512


def in_mbr(vol, ptype=0x0C):
    mbr = bytearray(LBA)
    mbr[446 + 4] = ptype
    struct.pack_into("<II", mbr, 446 + 8, 1, len(vol) // LBA)
    mbr[510:512] = b"\x55\xAA"
    return bytes(mbr) + vol


def in_gpt(vol):
    mbr = bytearray(LBA)
    mbr[446 + 4] = 0xEE
    struct.pack_into("<II", mbr, 446 + 8, 1, 0xFFFFFFFF)
    mbr[510:512] = b"\x55\xAA"
    header = bytearray(LBA)
    header[0:8] = b"EFI PART"
    struct.pack_into("<QII", header, 72, 2, 4, 128)
    entries = bytearray(LBA)
    entries[0:16] = bytes.fromhex("a2a0d0ebe5b9334487c068b6b72699c7")
    struct.pack_into("<QQ", entries, 32, 3, 3 + len(vol) // LBA - 1)
    return bytes(mbr) + bytes(header) + bytes(entries) + vol


def main():
    out = os.path.join(HERE, "fat_corpus")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    seeds = {
        "superfloppy": basic().image(),
        "fragmented": basic("fragmented").image(),
        "loop": basic("loop").image(),
        "broken_lfn": basic("lfn").image(),
        "deleted": basic("deleted").image(),
        "too_long": basic("too_long").image(),
        "fat16_bpb": basic().image(fat16=True),
        "mbr": in_mbr(basic().image()),
        "gpt": in_gpt(basic().image()),
        # Larger geometries: 4 KiB clusters of 512-byte sectors, and 4 KiB sectors.
        "cluster4k": basic(spc=8, clusters=10).image(),
        "sector4k": basic(sector=4096, clusters=10).image(),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
