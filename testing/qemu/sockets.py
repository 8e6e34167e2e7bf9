"""Connecting to the UNIX sockets QEMU exposes (QMP, gdbstub), which appear some time after QEMU
starts."""

import socket
import time


def connect_unix(path, timeout, error, what):
    """A connected socket to `path`, retrying until `timeout` seconds have passed; then raises
    `error` ("no <what> socket at <path>")."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise error("no %s socket at %s after %.0f s" % (what, path, timeout))
            time.sleep(0.05)
