#!/usr/bin/env python3
"""Writes the virtio-blk boot tests' disk: 8192 sectors of 512 bytes; sector n starts with n as a
little-endian u64, then bytes (n * 7 + i) & 0xff for i = 8..511 (virtio_blk_ktest.cc checks them)."""
import struct
import sys

SECTORS = 8192

with open(sys.argv[1], "wb") as f:
    for n in range(SECTORS):
        f.write(struct.pack("<Q", n) + bytes((n * 7 + i) & 0xFF for i in range(8, 512)))
