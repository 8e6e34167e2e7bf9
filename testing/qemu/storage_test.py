#!/usr/bin/env python3
"""The disks, typed at through the shell: boots the image under QEMU (TCG) with virtio-blk disks
attached (writable copies in the test's directory) and drives the shell like shell_test.py.

  storage_test.py --scenario data --image IMG --code CODE --vars VARS --data-disk DISK \
      --digests SHA256SUMS --readme README.TXT

    mount, ls and cat on the data disk; `sha256sum -r /` must match the digests the build computed
    on the host; meminfo, slabinfo, kswapd and pagecache before and after `fill 85`, which grows the
    page cache (the whole disk read through it) and the slab caches past the high watermark: kswapd
    must bring usage to the low watermark with the page cache's reclaimer freeing pages, and every
    file must still hash the same (evicted pages are read again from the disk). Then the dirty-page
    test: `fill 85` again, `write-pattern /scratch.bin 7` under that pressure, `sync`, poweroff; on
    the host the image must differ from the original only inside scratch.bin's clusters, and
    scratch.bin must hold exactly the pattern.

  storage_test.py --scenario bad --image IMG --code CODE --vars VARS --data-disk DISK --readme R

    Five disks: blank, ext2, FAT16, a FAT32 whose BPB is broken, and a copy of the data disk whose
    big file's cluster chain loops and whose disk reports an I/O error (QEMU's blkdebug) inside
    scratch.bin. `mount` must give each one's reason; the last mounts as /; hashing the broken
    file says "corrupt", hashing scratch.bin says "I/O error", the rest still works.

The transcript is saved as a test output (storage.log).
"""

import argparse
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boot_test  # noqa: E402
from shell_test import PROMPT, Console, run_command  # noqa: E402


# --- a small FAT32 reader (superfloppy images as mkfs.fat makes them) ---------------------------

class Fat32:
    def __init__(self, data):
        self.data = data
        self.bps, self.spc, reserved, self.nfats = struct.unpack_from("<HBHB", data, 11)
        self.fatsz = struct.unpack_from("<I", data, 36)[0]
        self.root = struct.unpack_from("<I", data, 44)[0]
        self.fat_off = reserved * self.bps
        self.data_off = (reserved + self.nfats * self.fatsz) * self.bps
        self.cluster = self.bps * self.spc

    def next(self, c):
        return struct.unpack_from("<I", self.data, self.fat_off + 4 * c)[0] & 0x0FFFFFFF

    def chain(self, c):
        out, seen = [], set()
        while 2 <= c < 0x0FFFFFF8 and c not in seen:
            seen.add(c)
            out.append(c)
            c = self.next(c)
        return out

    def offset(self, c):
        return self.data_off + (c - 2) * self.cluster

    def entries(self, first):
        """(name, is_dir, first_cluster, size, dirent_offset) of a directory, LFNs joined."""
        lfn = []
        for c in self.chain(first):
            base = self.offset(c)
            for off in range(base, base + self.cluster, 32):
                e = self.data[off:off + 32]
                if e[0] == 0:
                    return
                if e[0] == 0xE5:
                    lfn = []
                    continue
                if e[11] == 0x0F:
                    part = e[1:11] + e[14:26] + e[28:32]
                    lfn.insert(0, part.decode("utf-16-le", "replace"))
                    continue
                if e[11] & 0x08:
                    lfn = []
                    continue
                name = "".join(lfn).split("\x00")[0] if lfn else self.short(e)
                lfn = []
                if name in (".", ".."):
                    continue
                hi, lo = struct.unpack_from("<H", e, 20)[0], struct.unpack_from("<H", e, 26)[0]
                yield name, bool(e[11] & 0x10), (hi << 16) | lo, struct.unpack_from("<I", e, 28)[0], off

    @staticmethod
    def short(e):
        base, ext = e[0:8].decode("latin-1").rstrip(), e[8:11].decode("latin-1").rstrip()
        if e[12] & 0x08:
            base = base.lower()
        if e[12] & 0x10:
            ext = ext.lower()
        return base + ("." + ext if ext else "")

    def files(self, first=None, prefix=""):
        """{path: (first_cluster, size, dirent_offset)} of every file."""
        out = {}
        for name, is_dir, c, size, off in self.entries(self.root if first is None else first):
            path = prefix + "/" + name
            if is_dir:
                out.update(self.files(c, path))
            else:
                out[path] = (c, size, off)
        return out

    def read(self, c, size):
        b = bytearray()
        for cl in self.chain(c):
            b += self.data[self.offset(cl):self.offset(cl) + self.cluster]
        return bytes(b[:size])


def pattern(size, seed):
    return bytes((seed + 13 * i + 7 * (i >> 12)) & 0xFF for i in range(size))


def read_digests(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([0-9a-f]{64})  (/.*)$", line.rstrip("\n"))
            if m:
                out[m.group(2)] = m.group(1)
    if not out:
        raise SystemExit("no digests in %s" % path)
    return out


def hash_tree(con, what):
    """Types sha256sum -r / and returns {path: digest}."""
    con.type("sha256sum -r /\r")
    m = con.expect(r"^sha256sum: (\d+) files$", 300, "sha256sum -r / (%s)" % what)
    con.expect(re.escape(PROMPT), 30)
    text = con.text()
    block = text[:m.start()]
    block = block[block.rfind("sha256sum -r /"):]
    got = dict((p, d) for d, p in re.findall(r"^([0-9a-f]{64})  (/.*?)\s*$", block, re.M))
    if len(got) != int(m.group(1)):
        raise AssertionError("sha256sum said %s files but printed %d digests" % (m.group(1), len(got)))
    return got


def compare(got, want, what):
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(p for p in set(got) & set(want) if got[p] != want[p])
        raise AssertionError("%s: digests differ from the host's: missing %s, unexpected %s, wrong %s"
                             % (what, missing, extra, wrong))


def usage_of(con):
    con.type("kswapd\r")
    m = con.expect(r"^kswapd: usage (\d+)% ", 30, "kswapd's usage line")
    con.expect(re.escape(PROMPT), 30)
    return int(m.group(1))


def wait_for_low(con):
    deadline = time.monotonic() + 60
    while True:
        u = usage_of(con)
        if u <= 60:
            return
        if time.monotonic() > deadline:
            raise AssertionError("usage still %d%% 60 s after fill 85: kswapd did not reach the low watermark" % u)
        time.sleep(1)


def scenario_data(con, a, work, disks):
    want = read_digests(a.digests)
    with open(a.readme, "rb") as f:
        first_line = f.read().decode("utf-8").splitlines()[0]
    run_command(con, "mount", [r"^disk0: virtio-blk, \d+ sectors \(\d+ MiB\) on / type fat32 "])
    tops = sorted(set(p.split("/")[1] for p in want))
    run_command(con, "ls /", [r"^\s+(\d+|-)  %s/?$" % re.escape(t) for t in tops] + [r"^\d+ entries, \d+ bytes in files$"])
    run_command(con, "cat /README.TXT", [re.escape(first_line)])
    run_command(con, "ls /no/such/dir", [r"ls: /no/such/dir: no such file or directory"])
    compare(hash_tree(con, "cold"), want, "first read")
    for c in ("meminfo", "slabinfo", "kswapd", "pagecache"):
        run_command(con, c, [])
    run_command(con, "fill 85", [r"^fill: page cache: [1-9]\d* pages \(\d+ MiB\) read in \d+ ms: usage \d+% -> \d+%$",
                                 r"^fill: usage \d+% -> (8[1-9]|9\d)% with \d+ objects of 2 KiB"], timeout=600)
    wait_for_low(con)
    run_command(con, "kswapd", [r"^kswapd: \d+ ticks, [1-9]\d* wake-ups, [1-9]\d* frames freed",
                                r"^kswapd: reclaimer page_cache: [1-9]\d* calls, \d+ scanned, [1-9]\d* freed, \d+ fruitless$"])
    run_command(con, "pagecache", [r"^pagecache: [1-9]\d* evicted, "])
    compare(hash_tree(con, "after reclaim"), want, "after kswapd evicted pages")
    for c in ("meminfo", "slabinfo", "kswapd", "pagecache"):
        run_command(con, c, [])
    # The dirty-page test: write under pressure, let reclaim write some of it back, sync, power
    # off; the host checks the image.
    run_command(con, "fill 85", [r"^fill: usage \d+% -> (8[1-9]|9\d)%"], timeout=600)
    run_command(con, "write-pattern /scratch.bin 7", [r"^write-pattern: \d+ bytes of /scratch.bin written in \d+ ms"],
                timeout=300)
    run_command(con, "pagecache", [r"^pagecache: \d+ pages \(\d+ KiB\), [1-9]\d* dirty"])
    # More pressure: the dirty pages age to the LRU's tail, and kswapd writes them back to evict them.
    run_command(con, "fill 85", [r"^fill: usage \d+% -> (8[1-9]|9\d)%"], timeout=600)
    wait_for_low(con)
    run_command(con, "pagecache", [r"^pagecache: \d+ evicted, [1-9]\d* written back, 0 I/O errors$"])
    with open(a.data_disk, "rb") as f:
        size = Fat32(f.read()).files()["/scratch.bin"][1]
    digest = hashlib.sha256(pattern(size, 7)).hexdigest()
    run_command(con, "sha256sum /scratch.bin", [r"^%s  /scratch.bin$" % digest], timeout=120)
    run_command(con, "sync", [r"^sync: every dirty page written back and the disks flushed in \d+ ms$"], timeout=300)
    run_command(con, "pagecache", [r"^pagecache: \d+ pages \(\d+ KiB\), 0 dirty"])
    run_command(con, "kswapd", [])


def check_data_image(original, written):
    with open(original, "rb") as f:
        before = f.read()
    with open(written, "rb") as f:
        after = f.read()
    if len(before) != len(after):
        raise AssertionError("the disk image changed size: %d -> %d" % (len(before), len(after)))
    fat = Fat32(after)
    files = fat.files()
    c, size, _ = files["/scratch.bin"]
    want = pattern(size, 7)
    got = fat.read(c, size)
    if got != want:
        bad = next(i for i in range(size) if got[i] != want[i])
        raise AssertionError("scratch.bin on the disk differs from the pattern first at byte %d (page %d)" % (bad, bad // 4096))
    allowed = [(fat.offset(cl), fat.offset(cl) + fat.cluster) for cl in fat.chain(c)]
    pos = 0
    step = 4096
    while pos < len(before):
        if before[pos:pos + step] != after[pos:pos + step]:
            for i in range(pos, min(pos + step, len(before))):
                if before[i] != after[i] and not any(lo <= i < hi for lo, hi in allowed):
                    raise AssertionError("the disk changed at byte %d, outside scratch.bin's clusters" % i)
        pos += step
    print("storage_test: image checked: scratch.bin holds the pattern (%d bytes), nothing else changed" % size)


def make_bad_disks(a, work):
    """The bad disks, and the error patterns `mount` must show for each (in PCI order)."""
    disks, expect = [], []
    blank = work + "/blank.img"
    with open(blank, "wb") as f:
        f.truncate(16 << 20)
    disks.append(blank)
    expect.append(r"^disk0: virtio-blk, 32768 sectors \(16 MiB\) not mounted: no file system found$")
    ext2_dir = work + "/ext2-files"
    os.makedirs(ext2_dir)
    with open(ext2_dir + "/hello.txt", "w") as f:
        f.write("an ext2 disk\n")
    ext2 = work + "/ext2.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-d", ext2_dir, ext2, "8M"], check=True,
                   env=dict(os.environ, E2FSPROGS_FAKE_TIME="1", MKE2FS_CONFIG="/dev/null"))
    disks.append(ext2)
    expect.append(r"^disk1: virtio-blk, 16384 sectors \(8 MiB\) not mounted: not FAT32 \(another file system\) \(ext")
    fat16 = work + "/fat16.img"
    with open(fat16, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.fat", "-F", "16", "-i", "12345678", fat16], check=True, stdout=subprocess.DEVNULL)
    disks.append(fat16)
    expect.append(r"^disk2: virtio-blk, 32768 sectors \(16 MiB\) not mounted: not FAT32 \(another file system\) \(FAT16")
    with open(a.data_disk, "rb") as f:
        data = bytearray(f.read())
    broken_bpb = bytearray(data)
    broken_bpb[13] = 3  # sectors per cluster: not a power of two
    path = work + "/bad-bpb.img"
    with open(path, "wb") as f:
        f.write(broken_bpb)
    disks.append(path)
    expect.append(r"^disk3: virtio-blk, \d+ sectors \(\d+ MiB\) not mounted: corrupt FAT32 structure \(")
    # The root: the big file's chain loops back to its start after 3 clusters; an I/O error inside
    # scratch.bin.
    fat = Fat32(bytes(data))
    files = fat.files()
    big = max(files, key=lambda p: files[p][1])
    chain = fat.chain(files[big][0])
    for copy in range(fat.nfats):
        struct.pack_into("<I", data, fat.fat_off + copy * fat.fatsz * fat.bps + 4 * chain[2], chain[0])
    rooted = work + "/corrupt-root.img"
    with open(rooted, "wb") as f:
        f.write(data)
    # A sector in the middle of scratch.bin (pages there hold nothing but its data).
    bad = fat.chain(files["/scratch.bin"][0])[1000]
    conf = work + "/blkdebug.conf"
    with open(conf, "w") as f:
        f.write('[inject-error]\nevent = "read_aio"\nerrno = "5"\nsector = "%d"\n' % (fat.offset(bad) // 512))
    disks.append("blkdebug:%s:%s" % (conf, rooted))
    expect.append(r"^disk4: virtio-blk, \d+ sectors \(\d+ MiB\) on / type fat32 ")
    return disks, expect, big


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=["data", "bad"], required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--vars", required=True)
    p.add_argument("--data-disk", required=True)
    p.add_argument("--digests")
    p.add_argument("--readme", required=True)
    p.add_argument("--timeout", type=float, default=900)
    a = p.parse_args()
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"  # mke2fs and mkfs.fat live there
    a.arch, a.cpu, a.memory, a.qmp, a.machine, a.secure_boot = "x86_64", None, "512M", False, None, False
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    work = tempfile.mkdtemp(prefix="storage.", dir=os.environ.get("TEST_TMPDIR"))
    os.environ["TMPDIR"] = work
    shutil.copyfile(a.image, work + "/disk.img")
    shutil.copyfile(a.vars, work + "/vars.fd")
    os.chmod(work + "/disk.img", 0o644)
    os.chmod(work + "/vars.fd", 0o644)
    big = None
    if a.scenario == "data":
        data = work + "/data.img"
        shutil.copyfile(a.data_disk, data)
        os.chmod(data, 0o644)
        disks = [data]
        mount_expect = []
    else:
        disks, mount_expect, big = make_bad_disks(a, work)
    a.qemu_arg = []
    for i, d in enumerate(disks):
        a.qemu_arg += ["-drive", "if=none,id=disk%d,format=raw,file=%s" % (i, d),
                       "-device", "virtio-blk-pci,drive=disk%d,disable-legacy=on" % i]
    cmd = boot_test.qemu_command(a, work)
    i = cmd.index("-serial")
    cmd[i + 1] = "stdio"
    print("storage_test: " + " ".join(cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    con = Console(proc)
    failure = None
    try:
        con.expect(r"\]\s+ready$", 180, "the kernel's ready line")
        con.expect(re.escape(PROMPT), 30, "the first prompt")
        if a.scenario == "data":
            scenario_data(con, a, work, disks)
        else:
            run_command(con, "mount", mount_expect)
            run_command(con, "sha256sum %s" % big, [r"sha256sum: %s: corrupt FAT32 structure at byte 0 \(.*loop" % re.escape(big),
                                                    r"sha256sum: failed: file system error"], timeout=120)
            run_command(con, "sha256sum /scratch.bin", [r"sha256sum: /scratch.bin: I/O error at byte \d+",
                                                        r"sha256sum: failed: file system error"], timeout=120)
            run_command(con, "sha256sum /README.TXT", [r"^[0-9a-f]{64}  /README.TXT$"])
            run_command(con, "pagecache", [r"^pagecache: .* [1-9]\d* I/O errors$"])
            run_command(con, "ls /no-such-file", [r"ls: /no-such-file: no such file or directory"])
            run_command(con, "cat /docs", [r"^cat: /docs: is a directory$"])
            run_command(con, "ls /", [r"^\d+ entries, \d+ bytes in files$"])
        con.type("poweroff\r")
        con.expect(r"poweroff: ACPI S5", 30)
        try:
            status = proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError("QEMU still runs 60 s after poweroff")
        if status != 0:
            raise AssertionError("QEMU exited with %s after poweroff, expected 0 (ACPI S5)" % status)
        if a.scenario == "data":
            check_data_image(a.data_disk, disks[0])
    except AssertionError as e:
        failure = str(e)
    finally:
        boot_test.stop(proc)
    transcript = con.text()
    if outputs:
        with open(os.path.join(outputs, "storage.log"), "w") as f:
            f.write(transcript)
    print("---- transcript (%.1f s) ----" % (time.monotonic() - start))
    print(transcript.rstrip())
    print("---- end of transcript ----")
    if failure or "PANIC" in transcript:
        print("FAIL: " + (failure or "the kernel panicked"))
        return 1
    print("PASS: scenario %s" % a.scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
