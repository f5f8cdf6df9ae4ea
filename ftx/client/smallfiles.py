"""
Receiving small files: kept whole in memory, then checked, written and
renamed into place by one worker, in order.

A file of a few kilobytes costs more in bookkeeping than in bytes: a
partial file opened as the body starts, a trip to a worker thread and back
before the next body may start, and the connection held meanwhile. For
C{mget} of a thousand small files that was most of the time. A small body
is instead collected as it arrives (views of the received bytes, no
copies), and once its trailer is in, one job checks the digest and writes
the file under a temporary name, then renames it; the next body is read
meanwhile. A file whose digest does not match is never written.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable, Deque, List, Optional, Set

from twisted.internet.defer import Deferred, succeed

from ftx._io.background import Lane
from ftx._io.fileio import writeAllTo
from ftx.client import localfiles
from ftx.errors import IntegrityError
from ftx.protocol import checksums
from ftx.protocol.wire import nameText

__all__ = ["SmallFile", "SmallFileStore"]


class SmallFile:
    """
    One received small file waiting to be stored.
    """

    __slots__ = ("name", "path", "pieces", "size", "checksum", "digest", "stored", "error")

    def __init__(self, name: bytes, path: str, size: int, checksum: str = checksums.SHA1) -> None:
        self.name = name
        self.path = path
        self.size = size
        self.checksum = checksum
        self.pieces: List[object] = []
        self.digest = ""
        #: Set by the worker once it is done with the file: in place, or
        #: not written, with the reason in C{error}.
        self.stored = False
        self.error: Optional[BaseException] = None

    def __len__(self) -> int:
        return self.size


class SmallFileStore:
    """
    Stores L{SmallFile}s in a worker thread, in the order given, and calls
    C{stored(job)} on the reactor thread after each one, whether it was
    written or failed (C{job.error}).
    """

    def __init__(self, reactor, stored: Callable[[SmallFile], None], changed: Callable[[], None]) -> None:
        self._stored = stored
        self._changed = changed
        self._folders: Set[str] = set()
        self._queued: Deque[SmallFile] = deque()
        self._idleWaiters: List[Deferred] = []
        self.lane = Lane(self._store, reactor, self._laneChanged)

    @property
    def error(self) -> Optional[BaseException]:
        return self.lane.error

    @property
    def waiting(self) -> int:
        return self.lane.waiting

    @property
    def idle(self) -> bool:
        return self.lane.idle

    def add(self, job: SmallFile) -> None:
        self._queued.append(job)
        self.lane.add(job)

    def _store(self, job: SmallFile) -> None:
        # Runs in a worker thread. A file that fails does not stop the
        # others: the caller decides what its error means.
        try:
            self._write(job)
        except Exception as e:
            job.error = e
        job.pieces = []
        job.stored = True

    def _write(self, job: SmallFile) -> None:
        hasher = checksums.new(job.checksum)
        for piece in job.pieces:
            hasher.update(piece)
        if hasher.hexdigest() != job.digest:
            raise IntegrityError(
                "{} arrived corrupted ({} mismatch); it was not kept".format(nameText(job.name), checksums.label(job.checksum))
            )
        partial = localfiles.partialPath(job.path)
        try:
            folder = os.path.dirname(job.path)
            if folder and folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            fd = localfiles.openPartialFd(partial)
            try:
                for piece in job.pieces:
                    writeAllTo(fd, piece)
            finally:
                os.close(fd)
            os.replace(partial, job.path)
        except OSError as e:
            localfiles.discard(partial)
            raise localfiles.localError(e, job.path)

    def _laneChanged(self) -> None:
        # Only this thread touches the queue; the worker only sets flags.
        queued = self._queued
        while queued and queued[0].stored:
            self._stored(queued.popleft())
        if self.lane.error is not None and self.lane.idle:
            queued.clear()
        if self.lane.idle:
            waiters, self._idleWaiters = self._idleWaiters, []
            for d in waiters:
                d.callback(None)
        self._changed()

    def whenIdle(self) -> Deferred:
        """
        Fires once every file added so far is stored or dropped.
        """
        if self.lane.idle:
            return succeed(None)
        d: Deferred = Deferred()
        self._idleWaiters.append(d)
        return d
