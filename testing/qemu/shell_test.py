#!/usr/bin/env python3
"""Drives the kernel's serial shell as a user would: boots the image under QEMU (TCG) with COM1 on
a pipe, waits for the prompt, types each command one key at a time (with the keys a terminal
sends: CR, DEL, Ctrl-U, Ctrl-C, ESC [ A) and checks what comes back, then types `poweroff` and
expects QEMU to exit with status 0 (ACPI S5).

  shell_test.py --image IMG --code CODE --vars VARS [--machine q35] [--timeout 240]

The transcript is saved as a test output (shell.log).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boot_test  # noqa: E402  (qemu_command, clean, stop)

PROMPT = "ferrite> "


class Console:
    """QEMU's COM1 on stdin/stdout; a thread collects what it prints."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = ""
        self.pos = 0  # where the next expect() starts looking
        self.lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(1)
            if not chunk:
                return
            with self.lock:
                self.buf += chunk.decode("utf-8", "replace")

    def text(self):
        with self.lock:
            return boot_test.clean(self.buf)

    def type(self, keys, delay=0.01):
        for k in keys:
            self.proc.stdin.write(k.encode("latin-1"))
            self.proc.stdin.flush()
            time.sleep(delay)

    def expect(self, pattern, timeout=60, what=None):
        """Waits until `pattern` appears after the last match; returns the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.M)
        while time.monotonic() < deadline:
            text = self.text()
            m = rx.search(text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if "PANIC" in text[self.pos:]:
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("expected %r (%s) but did not see it; output since the last match:\n%s"
                             % (pattern, what or "", self.text()[self.pos:][-3000:]))


def run_command(con, line, expects, timeout=60):
    con.type(line + "\r")
    for e in expects:
        con.expect(e, timeout, "after %r" % line)
    con.expect(re.escape(PROMPT), timeout, "the prompt after %r" % line)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--vars", required=True)
    p.add_argument("--machine")
    p.add_argument("--timeout", type=float, default=240)
    a = p.parse_args()
    a.arch, a.cpu, a.memory, a.qmp, a.qemu_arg, a.secure_boot = "x86_64", None, "512M", False, [], False

    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    work = tempfile.mkdtemp(prefix="shell.", dir=os.environ.get("TEST_TMPDIR"))
    os.environ["TMPDIR"] = work
    shutil.copyfile(a.image, work + "/disk.img")
    shutil.copyfile(a.vars, work + "/vars.fd")
    os.chmod(work + "/disk.img", 0o644)
    os.chmod(work + "/vars.fd", 0o644)
    a.qemu_arg = ["-device", "virtio-rng-pci,disable-legacy=on"]
    cmd = boot_test.qemu_command(a, work)
    i = cmd.index("-serial")
    cmd[i + 1] = "stdio"
    print("shell_test: " + " ".join(cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    con = Console(proc)
    failure = None
    status = None
    try:
        con.expect(r"\]\s+ready$", 120, "the kernel's ready line")
        con.expect(r"Ferrite shell on COM1; type help for the commands\.", 30)
        con.expect(re.escape(PROMPT), 30, "the first prompt")

        names = ["help", "meminfo", "slabinfo", "ps", "uptime", "vmmap", "kmalloc-stress N", "ktest NAME", "kswapd",
                 "fill PCT", "drop", "pagecache", "mount", "ls [PATH]", "cat PATH", "sha256sum PATH...|-r DIR",
                 "sync", "write-pattern PATH SEED", "lspci", "bench [storage]", "poweroff"]
        run_command(con, "help", [r"^\s+%s\s" % re.escape(n) for n in names])
        run_command(con, "meminfo", [r"meminfo: total=\d+K usable=\d+K", r"meminfo: kernel: image=\d+K"])
        run_command(con, "slabinfo", [r"^cache\s+objsize\s+active\s+total\s+slabs\s+memory$",
                                      r"^kmalloc-\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+K$", r"^\d+ caches, \d+ KiB in slabs"])
        run_command(con, "ps", [r"^\s+id\s+name\s+state\s+prio", r"^\s+\d+ kernel-main\s+blocked\s+normal",
                                r"^\s+\d+ idle\s+\w+\s+idle", r"^\s+\d+ shell\s+running\s+high"])
        run_command(con, "uptime", [r"^up \d+\.\d{3} s \(clock: \w+\); \d+ timer interrupts, \d+ context switches$"])
        run_command(con, "vmmap", [r"vm: begin page tables root=0x[0-9a-f]+ format=x86_64",
                                   r"vm: 0xffff800000000000 ", r"vm: 0xfffffd0000000000 .* W--G UC"])
        run_command(con, "kmalloc-stress 16", [r"^kmalloc-stress: \d+ MiB in \d+ allocations \(\d+ B - \d+ B\) in \d+ ms: "
                                               r"\d+ MiB/s, \d+ allocations/s; heap frames \d+ before, \d+ after"],
                    timeout=120)
        run_command(con, "kswapd", [r"^kswapd: usage \d+% \(background reclaim from 80% down to 60%, direct reclaim below 5% free\)$",
                                    r"^kswapd: \d+ ticks, \d+ wake-ups, \d+ frames freed",
                                    r"^kswapd: reclaimer slab: \d+ calls, \d+ scanned, \d+ freed, \d+ fruitless$"])
        # Below high: nothing for kswapd; the cached slabs stay until `drop`.
        run_command(con, "fill 50", [r"^fill: page cache: 0 pages \(0 MiB\) read in \d+ ms: usage \d+% -> \d+%$",
                                     r"^fill: usage \d+% -> 5\d% with [1-9]\d* objects of 2 KiB, \d+% once freed \(their slabs stay cached\)$"],
                    timeout=120)
        run_command(con, "fill 0", [r"fill: PCT must be a usage percentage from 1 to 99", r"fill: usage: fill PCT"])
        run_command(con, "drop", [r"^drop: 0 clean cached pages and [1-9]\d* frames of empty slabs freed \(\d+ KiB\); usage \d+% -> \d+%$"])
        # No disk is attached here: the file commands say so and the shell goes on.
        run_command(con, "mount", [r"^mount: no virtio-blk disk$"])
        run_command(con, "ls", [r"^no file system at / \(no virtio-blk disk\)$", r"^ls: failed: no file system mounted"])
        run_command(con, "sync", [r"^sync: every dirty page written back and the disks flushed in \d+ ms$"])
        run_command(con, "pagecache", [r"^pagecache: 0 pages \(0 KiB\), 0 dirty; 0 reclaimable$"])
        # q35's own functions, and the virtio RNG this test adds (modern virtio-pci: 1af4:1044).
        run_command(con, "lspci", [r"^00:00\.0 8086:29c0 rev \w\w bridge \(host\)$",
                                   r"^\w\w:\w\w\.0 1af4:1044 rev 01 unclassified, INTA line \d+$",
                                   r"^    BAR4 mem64 0x[0-9a-f]+ size 0x4000 prefetchable$", r"^    capabilities: 0x11 0x09",
                                   r"^00:1f\.2 8086:2922 rev \w\w storage \(SATA\), INTA line \d+$",
                                   r"^\d+ functions \(through ECAM\)$"])
        run_command(con, "kmalloc-stress 0", [r"kmalloc-stress: N must be a number of MiB from 1 to 4096",
                                              r"kmalloc-stress: usage: kmalloc-stress N"])
        run_command(con, "ktest Cmdline", [r"\[       OK \] Cmdline\.TestModes", r"ktest: \d+ passed, 0 failed"])
        run_command(con, "ktest NoSuchSuite", [r"ktest: failed: no test matches"])
        run_command(con, "bench", [r"bench: empty function call: \d+\.\d{3} ns",
                                   r"bench: interrupt round trip .*: \d+\.\d{3} ns = \d+\.\d{2}x an empty call",
                                   r"bench: context switch .*: \d+\.\d{3} ns = \d+\.\d{2}x an empty call",
                                   r"bench: timer interrupt -> task wake-up latency: p50 \d+ us, p99 \d+ us"],
                    timeout=120)
        # A bad command, an overlong line, and a command that fails: the shell says so and goes on.
        run_command(con, "frobnicate now", [r"unknown command: frobnicate \(type help for the list\)"])
        run_command(con, "x" * 150, [r"error: line too long \(the limit is 120 characters\); discarded"])
        run_command(con, "ktest", [r"ktest: usage: ktest NAME"])
        # Line editing: DEL twice, Ctrl-U, Ctrl-C, history (Up).
        run_command(con, "uptimx\x7f\x7fme", [r"^up \d+\.\d{3} s"])
        run_command(con, "garbage\x15ps", [r"^\s+\d+ shell\s+running"])
        con.type("half a line\x03")
        con.expect(r"half a line\^C", 10, "Ctrl-C's echo")
        con.expect(re.escape(PROMPT), 10)
        run_command(con, "\x1b[A\x1b[A", [r"^up \d+\.\d{3} s"])  # two back: uptime (ps was the last)
        con.type("poweroff\r")
        con.expect(r"poweroff: ACPI S5", 10)
        try:
            status = proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError("QEMU still runs 30 s after poweroff")
        if status != 0:
            raise AssertionError("QEMU exited with %s after poweroff, expected 0 (ACPI S5)" % status)
    except AssertionError as e:
        failure = str(e)
    finally:
        boot_test.stop(proc)
    transcript = con.text()
    if outputs:
        with open(os.path.join(outputs, "shell.log"), "w") as f:
            f.write(transcript)
    print("---- transcript (%.1f s) ----" % (time.monotonic() - start))
    print(transcript.rstrip())
    print("---- end of transcript ----")
    if failure or "PANIC" in transcript:
        print("FAIL: " + (failure or "the kernel panicked"))
        return 1
    print("PASS: every command answered; poweroff ended QEMU with status 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
