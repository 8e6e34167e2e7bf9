"""A minimal QMP client (QEMU Machine Protocol over a unix socket), for checks from outside the
guest. Start QEMU with `-qmp unix:PATH,server=on,wait=off` (boot_test.py --qmp does).

    with Qmp(path) as q:
        text = q.hmp("info registers")        # any human-monitor command, as text
        data = q.read_phys(0x1000, 4096)       # guest-physical memory (pmemsave)
"""
import json
import os
import tempfile

import sockets


class QmpError(RuntimeError):
    pass


class Qmp:
    def __init__(self, path, timeout=30.0, scratch_dir=None):
        self.sock = sockets.connect_unix(path, timeout, QmpError, "QMP")
        self.sock.settimeout(timeout)
        self.buffer = b""
        self.scratch_dir = scratch_dir or tempfile.mkdtemp(prefix="qmp.")
        self._reads = 0
        greeting = self._receive()
        if "QMP" not in greeting:
            raise QmpError("not a QMP greeting: %r" % greeting)
        self.execute("qmp_capabilities")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def _receive(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError("QMP connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command, **arguments):
        message = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._receive()
            if "event" in reply:
                continue  # asynchronous events (STOP, RESUME, ...) are not answers
            if "error" in reply:
                raise QmpError("%s: %s" % (command, reply["error"].get("desc", reply["error"])))
            return reply.get("return")

    def hmp(self, command_line):
        """Runs a human-monitor command (`info mem`, `gva2gpa ADDR`, ...) and returns its text."""
        return self.execute("human-monitor-command", **{"command-line": command_line}).replace("\r", "")

    def read_phys(self, address, size):
        """Reads guest-physical memory through pmemsave (QEMU writes it into a file we read back)."""
        self._reads += 1
        path = os.path.join(self.scratch_dir, "pmem.%d" % self._reads)
        self.execute("pmemsave", val=address, size=size, filename=path)
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        if len(data) != size:
            raise QmpError("pmemsave %#x+%#x returned %d bytes" % (address, size, len(data)))
        return data

    def registers(self):
        """`info registers` of the current CPU as a dict: RAX..R15, RIP, CR0..CR4, EFER as ints,
        GDT/IDT as (base, limit), and CS..GS as their selectors."""
        return parse_registers(self.hmp("info registers"))


def parse_registers(text):
    import re
    regs = {}
    for name, value in re.findall(r"\b(R[A-Z0-9]{1,2}|CR[0-4]|EFER)=([0-9a-fA-F]+)", text):
        regs.setdefault(name, int(value, 16))
    for name in ("GDT", "IDT"):
        m = re.search(name + r"=\s*([0-9a-fA-F]+) ([0-9a-fA-F]+)", text)
        if m:
            regs[name] = (int(m.group(1), 16), int(m.group(2), 16))
    for seg in ("ES", "CS", "SS", "DS", "FS", "GS"):
        m = re.search(r"^" + seg + r"\s*=([0-9a-fA-F]{4})", text, re.M)
        if m:
            regs[seg] = int(m.group(1), 16)
    return regs
