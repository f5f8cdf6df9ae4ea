"""
A client of the ftx protocol made of a standard-library socket and
docs/protocol.rst alone, as an independent implementation would be: the
tests of tests/test_protocol_doc.py check the page's rules with it.
"""

from __future__ import annotations

import hashlib
import socket
from typing import List, Optional, Tuple

#: Seconds any one read waits for the server before the test fails.
READ_TIMEOUT = 10.0


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class RawClient:
    """
    An ftx client made of a socket and the page: lines end in CR LF unless
    a test says otherwise, replies are read line by line, bodies by count.
    """

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        self._buffer = b""
        self.greeting = self.readLine()

    def close(self) -> None:
        self.socket.close()

    def _fill(self) -> None:
        data = self.socket.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._buffer += data

    def readLine(self) -> bytes:
        """
        One line the server sent, without its line end, which must be CR LF.
        """
        while b"\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\n", 1)
        if not line.endswith(b"\r"):
            raise AssertionError("a line from the server did not end in CR LF: {!r}".format(line))
        return line[:-1]

    def readExactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def closedByServer(self) -> bool:
        """
        Whether the server closes the connection (after what it sent).
        """
        try:
            while True:
                self._fill()
        except ConnectionError:
            return True
        except socket.timeout:
            return False

    def send(self, line: bytes, end: bytes = b"\r\n") -> None:
        self.socket.sendall(line + end)

    def command(self, line: bytes, end: bytes = b"\r\n") -> bytes:
        """
        Send a command whose answer is one line, and return that line.
        """
        self.send(line, end)
        return self.readLine()

    def listing(self, mask: Optional[bytes] = None) -> List[bytes]:
        """
        The encoded names of C{list [MASK]}, in the order they came.
        """
        self.send(b"list" + (b" " + mask if mask is not None else b""))
        names = []
        while True:
            line = self.readLine()
            code, _, rest = line.partition(b" ")
            if code == b"211":
                if int(rest) != len(names):
                    raise AssertionError("211 counts {} but {} lines came".format(rest, len(names)))
                return names
            if code != b"210":
                raise AssertionError("unexpected line in a listing: {!r}".format(line))
            names.append(rest.split(b" ")[0])

    def mget(self, mask: bytes) -> List[Tuple[bytes, bytes]]:
        """
        The (encoded name, body) pairs of C{mget MASK}, in the order they came.
        """
        self.send(b"mget " + mask)
        files = []
        while True:
            line = self.readLine()
            fields = line.split(b" ")
            if fields[0] == b"226":
                return files
            if fields[0] != b"150":
                raise AssertionError("unexpected line in mget: {!r}".format(line))
            body = self.readExactly(int(fields[2]))
            trailer = self.readLine()
            if trailer != b"250 " + sha1(body).encode():
                raise AssertionError("bad trailer {!r}".format(trailer))
            files.append((fields[1], body))

    def put(self, name: bytes, data: bytes, end: bytes = b"\r\n") -> bytes:
        """
        A whole upload; the final reply (or the refusal of the command).
        """
        reply = self.command(b"put %s %d" % (name, len(data)), end)
        if not reply.startswith(b"350 "):
            return reply
        self.socket.sendall(data)
        return self.command(b"sha1 " + sha1(data).encode(), end)


def nameOfLength(folder: bytes, length: int) -> bytes:
    """
    A name of exactly C{length} bytes under C{folder}, in segments the
    protocol allows.
    """
    count, left = divmod(length - len(folder), 201)
    segments = [b"n" * 200] * count
    if left == 1:
        # "/" and one byte are two: split the last full segment instead.
        segments[-1:] = [b"n" * 100, b"n" * 100]
    elif left:
        segments.append(b"n" * (left - 1))
    name = b"/".join([folder] + segments)
    assert len(name) == length, (len(name), length)
    return name
