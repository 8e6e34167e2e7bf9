#!/usr/bin/env python3
"""Headless QEMU boot test: boots a disk image under OVMF/AAVMF (TCG), watches the serial log and
decides pass/fail from marker lines and QEMU's exit status.

The serial log (ANSI escapes and CRs stripped) is saved as a test output
(bazel-testlogs/<pkg>/<test>/test.outputs/). Typical use, from testing/qemu/defs.bzl:

  boot_test.py --arch x86_64 --image IMG --code CODE --vars VARS \
      --cmdline "test=boot" --expect "Ferrite kernel" --exit-code 33

Expectations:
  --expect RE      must appear, in the given order (one line each)
  --forbid RE      must never appear (QEMU is stopped as soon as one does)
  --until RE       stop QEMU as soon as this appears (otherwise wait for QEMU to exit)
  --exit-code N    QEMU's exit status must be N (isa-debug-exit: (v << 1) | 1)
  --usable-slack-mib N
                   the kernel's "memory map: N regions, X MiB usable" must satisfy
                   given - N <= X <= given, with `given` the RAM QEMU was started with (--memory)
  --check-meminfo  the kernel's "meminfo:" block (kernel/meminfo.cppm) must be complete and add up:
                   every byte of the map is usable or reserved, every usable byte free, allocated
                   or PMM metadata, and the kernel's share (image, boot data, page tables, heap,
                   metadata, other) matches the parts it is made of
  --clock-check    the kernel's clock against the host's: the host notes when the kernel's
                   "clock check: start uptime_ns=A" and "clock check: end uptime_ns=B" lines
                   appear (kernel test=clock); B - A and the host's interval must both be at
                   least 5 s and agree within 10 %
Firmware:
  --secure-boot    the firmware (--code/--vars) is OVMF's Secure Boot build: QEMU gets
                   -machine q35,smm=on and a secure flash (-global driver=cfi.pflash01,property=secure,value=on);
                   the vars store stays a private writable copy, the code flash read-only
Image edits (on a private copy, through mtools):
  --cmdline TEXT            replace \\ferrite\\cmdline.txt
  --replace-file SRC=DST    put SRC at DST in the ESP (e.g. a broken kernel at /ferrite/kernel.elf)
  --delete-file DST         remove DST from the ESP
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ANSI = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]")
ESP_OFFSET = 1024 * 1024  # partition 1 starts at sector 2048 (tools/image/mkimage.sh)


def clean(text):
    return ANSI.sub("", text).replace("\r", "")


_SOCKET_DIRS = {}


def socket_dir(work):
    """A short directory for unix sockets (sun_path holds 107 bytes; Bazel's sandbox paths are
    longer): /tmp/fq.XXXXXX, one per work directory. Tests may write /tmp (see bazel.md)."""
    if work not in _SOCKET_DIRS:
        _SOCKET_DIRS[work] = tempfile.mkdtemp(prefix="fq.", dir="/tmp")
    return _SOCKET_DIRS[work]


def stop(proc):
    """Stops QEMU (started in its own process group) if it still runs: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def mebibytes(size):
    """QEMU's -m syntax (128M, 1G, 6G, or a plain number of MiB) in MiB."""
    m = re.fullmatch(r"(\d+)([MG]?)", size.strip().upper())
    if not m:
        raise ValueError("cannot parse memory size %r" % size)
    return int(m.group(1)) * (1024 if m.group(2) == "G" else 1)


def check_usable(text, memory, slack_mib):
    """The usable total the kernel reports must lie in [given - slack, given]."""
    m = re.search(r"memory map: (\d+) regions, (\d+) MiB usable", text)
    if not m:
        return ["no 'memory map: N regions, X MiB usable' line to check"]
    given, usable = mebibytes(memory), int(m.group(2))
    print("boot_test: usable %d MiB of %d MiB given (%d MiB reserved or in use, bound %d MiB)"
          % (usable, given, given - usable, slack_mib))
    if usable > given:
        return ["kernel reports %d MiB usable, more than the %d MiB QEMU was given" % (usable, given)]
    if usable < given - slack_mib:
        return ["kernel reports %d MiB usable of %d MiB: more than %d MiB lost" % (usable, given, slack_mib)]
    return []


MEMINFO_SECTIONS = ("", "reserved", "usable", "kernel", "page-tables", "heap")


def parse_meminfo(text):
    """{section: {key: KiB}} from the kernel's "meminfo: [section:] key=NK ..." lines."""
    out = {}
    for line in re.findall(r"meminfo: (.*)$", text, re.M):
        m = re.match(r"([a-z-]+): (.*)$", line)
        section, pairs = (m.group(1), m.group(2)) if m else ("", line)
        values = {}
        for key, value, unit in re.findall(r"([a-z-]+)=(\d+)(K?)", pairs):
            values[key] = int(value)
        out[section] = values
    return out


def check_meminfo(text):
    """The identities of kernel/meminfo.cppm, re-added from the printed numbers."""
    info = parse_meminfo(text)
    missing = [s or "summary" for s in MEMINFO_SECTIONS if s not in info]
    if missing:
        return ["meminfo block incomplete: no %s line" % ", ".join(missing)]
    top, res, use, ker, pt, heap = (info[s] for s in MEMINFO_SECTIONS)
    failures = []

    def same(what, a, b):
        if a != b:
            failures.append("meminfo: %s: %d != %d" % (what, a, b))

    try:
        same("total = usable + reserved", top["total"], top["usable"] + top["reserved"])
        same("reserved = the sum of its kinds", top["reserved"], sum(res.values()))
        same("usable = free + allocated + pmm-metadata", top["usable"],
             use["free"] + use["allocated"] + use["pmm-metadata"])
        same("kernel image = reserved kernel-image", ker["image"], res["kernel-image"])
        same("kernel boot-data = reserved boot-data", ker["boot-data"], res["boot-data"])
        same("loader page tables = reserved page-tables", pt["loader"], res["page-tables"])
        same("kernel page-tables = loader + kernel", ker["page-tables"], pt["loader"] + pt["kernel"])
        same("kernel heap = slabs + large + metadata", ker["heap"], heap["slabs"] + heap["large"] + heap["metadata"])
        same("kernel pmm-metadata = usable pmm-metadata", ker["pmm-metadata"], use["pmm-metadata"])
        same("allocated = kernel page tables + heap + frame table + other", use["allocated"],
             pt["kernel"] + ker["heap"] + ker["frame-table"] + ker["other"])
        same("kernel total = its parts", ker["total"], ker["image"] + ker["boot-data"] + ker["page-tables"] +
             ker["heap"] + ker["frame-table"] + ker["pmm-metadata"] + ker["other"])
        for what, value in (("heap", ker["heap"]), ("kernel page tables", pt["kernel"]),
                            ("frame table", ker["frame-table"]),
                            ("pmm metadata", use["pmm-metadata"]), ("free", use["free"])):
            if value <= 0:
                failures.append("meminfo: %s is %d" % (what, value))
        m = re.search(r"memory map: (\d+) regions, (\d+) MiB usable", text)
        if not m:
            failures.append("meminfo: no 'memory map: N regions, X MiB usable' line to compare with")
        else:
            same("regions = the memory map line's", top["regions"], int(m.group(1)))
            same("usable MiB = the memory map line's", top["usable"] >> 10, int(m.group(2)))
    except KeyError as e:
        failures.append("meminfo: no value for %s" % e)
    if not failures:
        print("boot_test: meminfo adds up: total %d KiB = usable %d + reserved %d; kernel %d KiB"
              % (top["total"], top["usable"], top["reserved"], ker["total"]))
    return failures


def check_clock(marks):
    """The kernel's uptime between its two clock-check lines against the host's interval."""
    if "start" not in marks or "end" not in marks:
        return ["clock check: the kernel's start and end lines did not both appear"]
    host = marks["end"][0] - marks["start"][0]
    kernel = (marks["end"][1] - marks["start"][1]) / 1e9
    ratio = kernel / host if host > 0 else float("inf")
    print("boot_test: clock check: kernel %.3f s, host %.3f s, ratio %.4f" % (kernel, host, ratio))
    failures = []
    if host < 5 or kernel < 5:
        failures.append("clock check: interval too short (kernel %.3f s, host %.3f s; at least 5 s)" % (kernel, host))
    if abs(ratio - 1) > 0.10:
        failures.append("clock check: the kernel's clock is off by %.1f %% (kernel %.3f s, host %.3f s)"
                        % ((ratio - 1) * 100, kernel, host))
    return failures


def mtools(args, image):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(args[:1] + ["-i", "%s@@%d" % (image, ESP_OFFSET)] + args[1:], check=True, env=env)


def qemu_command(a, work):
    accel = os.environ.get("QEMU_ACCEL") or "tcg"
    if a.arch == "x86_64":
        machine = a.machine or "q35"
        secure = []
        if getattr(a, "secure_boot", False):  # inspect_test.py passes a Namespace without it
            # OVMF's SMM build (the Secure Boot one) needs SMM; its variable store, with the key
            # databases, is writable only from SMM.
            if machine.split(",")[0] != "q35":
                raise SystemExit("boot_test: --secure-boot needs -machine q35, not %r" % machine)
            machine += ",smm=on"
            secure = ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        cmd = ["qemu-system-x86_64", "-machine", machine] + secure + ["-accel", accel,
               "-cpu", a.cpu or "max", "-m", a.memory or "512M",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-drive", "format=raw,file=%s/disk.img" % work]
    else:
        if getattr(a, "secure_boot", False):
            raise SystemExit("boot_test: --secure-boot is x86_64 only")
        cmd = ["qemu-system-aarch64", "-machine", a.machine or "virt", "-accel", accel,
               "-cpu", a.cpu or "cortex-a72", "-m", a.memory or "1G",
               "-drive", "if=none,format=raw,id=disk,file=%s/disk.img" % work,
               "-device", "virtio-blk-device,drive=disk"]
    cmd += ["-drive", "if=pflash,format=raw,unit=0,readonly=on,file=%s" % a.code,
            "-drive", "if=pflash,format=raw,unit=1,file=%s/vars.fd" % work,
            "-display", "none", "-monitor", "none", "-no-reboot", "-net", "none",
            "-serial", "file:%s/serial.log" % work]
    for i in range(len(getattr(a, "disk", None) or [])):
        # Raw scratch disks as modern virtio-blk-pci devices (1af4:1042), writable copies (main()).
        cmd += ["-drive", "if=none,id=d%d,file=%s/extra%d.img,format=raw" % (i, work, i),
                "-device", "virtio-blk-pci,drive=d%d,disable-legacy=on" % i]
    if a.qmp:
        cmd += ["-qmp", "unix:%s/qmp.sock,server=on,wait=off" % socket_dir(work)]
    return cmd + a.qemu_arg


def main():
    # "@FILE" arguments hold one argument per line (see defs.bzl).
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                fromfile_prefix_chars="@")
    p.add_argument("--arch", choices=["x86_64", "aarch64"], required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--vars", required=True)
    p.add_argument("--machine")
    p.add_argument("--memory")
    p.add_argument("--cpu")
    p.add_argument("--secure-boot", action="store_true",
                   help="the firmware is OVMF's Secure Boot (SMM) build (see above)")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--cmdline")
    p.add_argument("--replace-file", action="append", default=[])
    p.add_argument("--delete-file", action="append", default=[])
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--forbid", action="append", default=[])
    p.add_argument("--until")
    p.add_argument("--exit-code", type=int)
    p.add_argument("--usable-slack-mib", type=int,
                   help="check the kernel's usable-memory total against --memory (see above)")
    p.add_argument("--check-meminfo", action="store_true",
                   help="check that the kernel's meminfo block adds up (see above)")
    p.add_argument("--clock-check", action="store_true",
                   help="compare the kernel's uptime with the host's wall clock (see above)")
    p.add_argument("--qmp", action="store_true", help="expose a QMP socket (for checks from outside)")
    p.add_argument("--qemu-arg", action="append", default=[])
    p.add_argument("--disk", action="append", default=[],
                   help="a raw image to attach as a virtio-blk-pci device (a writable copy)")
    p.add_argument("--log-name", default="serial.log")
    a = p.parse_args()

    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    work = tempfile.mkdtemp(prefix="boot.", dir=os.environ.get("TEST_TMPDIR"))
    os.environ["TMPDIR"] = work  # QEMU's temporary files; /var/tmp is read-only in the sandbox
    shutil.copyfile(a.image, work + "/disk.img")
    shutil.copyfile(a.vars, work + "/vars.fd")
    os.chmod(work + "/disk.img", 0o644)
    os.chmod(work + "/vars.fd", 0o644)
    img = work + "/disk.img"
    for i, d in enumerate(a.disk):  # runfiles are read-only: the guest writes a copy
        shutil.copyfile(d, "%s/extra%d.img" % (work, i))
        os.chmod("%s/extra%d.img" % (work, i), 0o644)
    if a.cmdline is not None:
        with open(work + "/cmdline.txt", "w") as f:
            f.write(a.cmdline + "\n")
        mtools(["mcopy", "-o", work + "/cmdline.txt", "::/ferrite/cmdline.txt"], img)
    for spec in a.replace_file:
        src, dst = spec.split("=", 1)
        mtools(["mcopy", "-o", src, "::" + dst], img)
    for dst in a.delete_file:
        mtools(["mdel", "::" + dst], img)

    cmd = qemu_command(a, work)
    print("boot_test: " + " ".join(cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)

    log_path = work + "/serial.log"
    text = ""
    reason = None
    stopped_by_us = False
    clock_marks = {}  # "start"/"end" -> (host monotonic time, kernel uptime_ns)
    while True:
        time.sleep(0.02)  # also the resolution of the elapsed time tools/boot_time.sh reports
        if os.path.exists(log_path):
            with open(log_path, "rb") as f:
                text = clean(f.read().decode("utf-8", "replace"))
        if a.clock_check:
            now = time.monotonic()
            for mark in ("start", "end"):
                m = re.search(r"clock check: %s uptime_ns=(\d+)" % mark, text)
                if m and mark not in clock_marks:
                    clock_marks[mark] = (now, int(m.group(1)))
        if a.until and re.search(a.until, text, re.M):
            stopped_by_us = True
            break
        seen = next((m for m in (re.search(f, text, re.M) for f in a.forbid) if m), None)
        if seen:
            # The test has failed already: stop now instead of waiting for an exit or the timeout
            # (a firmware that refused to boot waits for a key press at its boot menu).
            reason = "stopped early: forbidden text %r appeared" % seen.group(0)
            break
        if proc.poll() is not None:
            break
        if time.monotonic() - start > a.timeout:
            reason = "timed out after %.0f s" % a.timeout
            break
    elapsed = time.monotonic() - start
    stop(proc)
    if os.path.exists(log_path):
        with open(log_path, "rb") as f:
            text = clean(f.read().decode("utf-8", "replace"))
    if outputs:
        with open(os.path.join(outputs, a.log_name), "w") as f:
            f.write(text)

    failures = []
    if reason:
        failures.append(reason)
    pos = 0
    for pattern in a.expect:
        m = re.compile(pattern, re.M).search(text, pos)
        if not m:
            failures.append("expected (in order) but not found: %r" % pattern)
        else:
            pos = m.end()
    for pattern in a.forbid:
        m = re.search(pattern, text, re.M)
        if m:
            failures.append("forbidden text found: %r" % m.group(0))
    if a.usable_slack_mib is not None:
        failures += check_usable(text, a.memory or "512M", a.usable_slack_mib)
    if a.check_meminfo:
        failures += check_meminfo(text)
    if a.clock_check:
        failures += check_clock(clock_marks)
    if a.exit_code is not None and not stopped_by_us and not reason and proc.returncode != a.exit_code:
        failures.append("QEMU exited with %s, expected %d" % (proc.returncode, a.exit_code))
    if a.exit_code is not None and stopped_by_us:
        failures.append("stopped on --until before QEMU could exit with %d" % a.exit_code)

    print("---- serial log (%.1f s) ----" % elapsed)
    print(text.rstrip())
    print("---- end of serial log ----")
    if failures:
        for f in failures:
            print("FAIL: " + f)
        return 1
    print("PASS (%.2f s, QEMU status %s)" % (elapsed, "stopped" if stopped_by_us else proc.returncode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
