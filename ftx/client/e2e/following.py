"""
Decrypting while downloading: a worker thread reads the ciphertext's
partial file as the download writes it and decrypts into the plaintext's
partial file, so the two overlap instead of running one after the other.

Nothing changes for safety: the plaintext is renamed into place only
after the download's digest matched and the last chunk authenticated
(L{ftx.client.e2e.transfers}); the ciphertext partial is still what a
resumed download continues.
"""

from __future__ import annotations

import threading
from typing import Optional, Sequence

from twisted.internet.threads import deferToThreadPool

from ftx.client.e2e.stream import decryptStream

__all__ = ["Follower"]

#: How long the worker sleeps when it has caught up with the download.
_POLL = 0.005
_READ = 1 << 16


class Cancelled(Exception):
    """
    The download failed or was given up; the worker stopped.
    """


class _GrowingFile:
    """
    A file another thread is appending to, read as a stream of C{size}
    bytes once C{size} is known: reads wait for bytes not yet written.
    """

    def __init__(self, f, follower: "Follower") -> None:
        self._f = f
        self._follower = follower
        self._buffer = bytearray()
        self._position = 0

    def _readSome(self, view) -> int:
        while True:
            got = self._f.readinto(view)
            if got:
                self._position += got
                return got
            follower = self._follower
            if follower.cancelled:
                raise Cancelled()
            if follower.size is not None and self._position >= follower.size:
                return 0
            follower.wake.wait(_POLL)
            follower.wake.clear()

    def _fill(self) -> bool:
        chunk = bytearray(_READ)
        got = self._readSome(memoryview(chunk))
        self._buffer += chunk[:got]
        return bool(got)

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self._buffer and (limit < 0 or len(self._buffer) < limit):
            if not self._fill():
                break
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if limit >= 0:
            end = min(end, limit)
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    def read(self, count: int) -> bytes:
        while len(self._buffer) < count and self._fill():
            pass
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def readinto(self, view) -> int:
        if self._buffer:
            count = min(len(view), len(self._buffer))
            view[:count] = self._buffer[:count]
            del self._buffer[:count]
            return count
        return self._readSome(view)


class Follower:
    """
    Decrypts the download of C{cipher} (first written to C{partial}, then
    renamed to C{cipher}) into C{target}, in a worker thread, as it
    arrives. The reactor thread tells it the ciphertext's size as soon as
    the download header gives it (L{sized}) and whether the download
    ended (L{downloaded}) or failed (L{cancel}).
    """

    def __init__(self, partial: str, cipher: str, target: str, identities: Sequence) -> None:
        self.partial = partial
        self.cipher = cipher
        self.target = target
        self.identities = identities
        self.size: Optional[int] = None
        self.cancelled = False
        self.finished = False
        self.wake = threading.Event()

    def sized(self, size: int) -> None:
        self.size = size
        self.wake.set()

    def downloaded(self, size: int) -> None:
        self.size = size
        self.finished = True
        self.wake.set()

    def cancel(self) -> None:
        self.cancelled = True
        self.wake.set()

    def _open(self):
        while True:
            if self.cancelled:
                raise Cancelled()
            # Once the download is complete its file has its final name (and
            # a small file is only ever written there).
            for path in ((self.cipher,) if self.finished else (self.partial,)):
                try:
                    return open(path, "rb", buffering=0)
                except FileNotFoundError:
                    pass
            self.wake.wait(_POLL)
            self.wake.clear()

    def run(self) -> int:
        """
        Decrypt; returns the plaintext's size. Run in a worker thread.

        @raise Cancelled: the download failed first.
        """
        with self._open() as f:
            while self.size is None:
                if self.cancelled:
                    raise Cancelled()
                self.wake.wait(_POLL)
                self.wake.clear()
            return decryptStream(_GrowingFile(f, self), self.size, self.identities, self.target)


def startFollowing(reactor, follower: Follower):
    """
    Run C{follower} in the reactor's thread pool; fires with its result.
    """
    return deferToThreadPool(reactor, reactor.getThreadPool(), follower.run)
