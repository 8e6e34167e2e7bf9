#!/usr/bin/env python3
"""Derives a deliberately broken kernel from the real one, for the loader's rejection tests.

Usage: break_kernel.py MODE IN.elf OUT.elf

  truncated      cut in the middle of the first segment's file data (it runs past the end)
  wrong-machine  e_machine = EM_AARCH64 (183) instead of EM_X86_64 (62)
  overlapping    the second PT_LOAD moved onto the first one's address
  tampered       one byte of the kernel's own text changed ("Ferrite kernel" -> "Ferrite kernal"):
                 still a valid ELF, so only the SHA-256 check can catch it
"""
import struct
import sys

PT_LOAD = 1


def load_segments(data):
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    out = []
    for i in range(phnum):
        off = phoff + i * phentsize
        if struct.unpack_from("<I", data, off)[0] == PT_LOAD:
            out.append(off)
    return out


def main():
    mode, src, dst = sys.argv[1:4]
    data = bytearray(open(src, "rb").read())
    assert data[:4] == b"\x7fELF" and data[4] == 2, "input is not an ELF64 file"
    if mode == "truncated":
        seg = load_segments(data)[0]
        offset, = struct.unpack_from("<Q", data, seg + 8)
        filesz, = struct.unpack_from("<Q", data, seg + 32)
        assert filesz > 2, "first PT_LOAD has no file data"
        data = data[: offset + filesz // 2]
    elif mode == "wrong-machine":
        struct.pack_into("<H", data, 18, 183)
    elif mode == "overlapping":
        segs = load_segments(data)
        assert len(segs) >= 2, "need two PT_LOAD segments"
        vaddr, paddr = struct.unpack_from("<QQ", data, segs[0] + 16)
        struct.pack_into("<QQ", data, segs[1] + 16, vaddr, paddr)
    elif mode == "tampered":
        needle = b"Ferrite kernel"
        at = data.find(needle)
        assert at > 0, "marker string not found in the kernel"
        data[at + len(needle) - 2] = ord("a")
    else:
        sys.exit("unknown mode %r" % mode)
    open(dst, "wb").write(bytes(data))


if __name__ == "__main__":
    main()
