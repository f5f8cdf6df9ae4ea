"""
The wire format shared by limit_server.py and limit_client.py.

The "limit" row is the fastest transfer plain Python can do on this machine:
the sender hands the file to the kernel with ``socket.sendfile()`` and the
receiver copies from the socket into one reused 1 MiB buffer. The protocol is
deliberately trivial (one request line, one header line, a raw body) so the
row measures the copying and nothing else; it has no integrity check of its
own because the harness checks every received file.

Requests (client to server), one line each::

    GET NAME          -> SIZE n, then n bytes
    MGET GLOB         -> for each match: FILE NAME n, then n bytes; then END count
    PUT NAME n        -> OK, then the client sends n bytes; then DONE
"""

from __future__ import annotations

import mmap
import os
import socket
from typing import BinaryIO

BUFFER_SIZE = 1 << 20
MAX_LINE = 4096


class LineSocket:
    """
    A socket that can read one header line and then a counted body.

    Reading a line with ``recv`` can swallow the first bytes of the body that
    follows it; they are kept in ``_pending`` and written out before the body
    is read straight from the socket.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._pending = b""
        # Page-aligned (an anonymous mapping): the kernel copies into a
        # bytearray, which starts 16 bytes past a page, 4-5 times slower
        # (measured in the work on issue 14), and a limit must not be slowed.
        self._buffer = mmap.mmap(-1, BUFFER_SIZE)
        self._view = memoryview(self._buffer)

    def readline(self) -> str:
        """
        Return the next line without its newline; "" if the peer closed first.
        """
        while b"\n" not in self._pending:
            if len(self._pending) > MAX_LINE:
                raise ValueError("header line too long")
            chunk = self.sock.recv(MAX_LINE)
            if not chunk:
                return ""
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8")

    def sendline(self, line: str) -> None:
        self.sock.sendall(line.encode("utf-8") + b"\n")

    def recv_body(self, out: BinaryIO, size: int) -> None:
        """
        Copy exactly ``size`` bytes from the socket to ``out``.

        Each ``recv_into`` asks for no more than the bytes still owed, so
        nothing after the body is consumed.
        """
        head = self._pending[:size]
        self._pending = self._pending[size:]
        out.write(head)
        remaining = size - len(head)
        view = self._view
        while remaining:
            n = self.sock.recv_into(view[: min(remaining, BUFFER_SIZE)])
            if not n:
                raise ConnectionError(f"peer closed with {remaining} bytes owed")
            out.write(view[:n])
            remaining -= n

    def send_file(self, path: str) -> int:
        """
        Send the whole file at ``path`` with ``sendfile`` and return its size.
        """
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            sent = self.sock.sendfile(f, 0, size)
        if sent != size:
            raise ConnectionError(f"sent {sent} of {size} bytes of {path}")
        return size
