"""A minimal client of QEMU's gdbstub (GDB remote serial protocol), enough to stop a guest at
an address: start QEMU with `-S -gdb unix:PATH,server=on,wait=off`, then

    g = GdbStub(path)
    g.break_at(0xffffffff80000000)
    g.resume_until_stop(timeout=60)     # returns the stop reply, e.g. "T05thread:01;"
    ... inspect through QMP while the guest is stopped ...
    g.detach()                          # removes breakpoints and lets the guest run on
"""
import socket

import sockets


class GdbError(RuntimeError):
    pass


class GdbStub:
    def __init__(self, path, timeout=30.0):
        self.sock = sockets.connect_unix(path, timeout, GdbError, "gdbstub")
        self.buffer = b""
        self.breakpoints = []

    def _send(self, data):
        checksum = sum(data.encode()) & 0xff
        self.sock.sendall(b"$%s#%02x" % (data.encode(), checksum))

    def _packet(self, timeout):
        self.sock.settimeout(timeout)
        while True:
            start = self.buffer.find(b"$")
            if start >= 0:
                end = self.buffer.find(b"#", start)
                if end >= 0 and len(self.buffer) >= end + 3:
                    body = self.buffer[start + 1:end].decode()
                    self.buffer = self.buffer[end + 3:]
                    self.sock.sendall(b"+")
                    return body
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                raise GdbError("no reply from the gdbstub within %.0f s" % timeout)
            if not chunk:
                raise GdbError("gdbstub connection closed")
            self.buffer += chunk  # acks ("+") before a packet are skipped with the "$" search

    def request(self, data, timeout=10.0):
        self._send(data)
        return self._packet(timeout)

    def break_at(self, address):
        reply = self.request("Z0,%x,1" % address)
        if reply != "OK":
            raise GdbError("cannot set a breakpoint at %#x: %r" % (address, reply))
        self.breakpoints.append(address)

    def resume_until_stop(self, timeout):
        self._send("c")
        reply = self._packet(timeout)
        if not reply.startswith(("T", "S")):
            raise GdbError("unexpected stop reply %r" % reply)
        return reply

    def detach(self):
        for address in self.breakpoints:
            self.request("z0,%x,1" % address)
        self.breakpoints = []
        self.request("D")
        self.sock.close()
