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
import threading
from collections import deque
from typing import Callable, Deque, List, Optional, Set

from twisted.internet.defer import Deferred, succeed

from ftx._io import workers
from ftx._io.fileio import writeAllTo
from ftx.client import localfiles
from ftx.errors import IntegrityError
from ftx.protocol import checksums
from ftx.protocol.wire import nameText

__all__ = ["SmallFile", "SmallFileStore"]

#: How many bytes the worker stores between two reports to the reactor
#: thread (and always when it runs out of files): well below the
#: exchange's low-water mark, so reading never waits for a report.
TELL_EVERY = 1 << 20


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


#: The pools of the lanes that store small files, the first one or both
#: (L{SmallFileStore}'s C{lanes}).
_LANE_POOLS = (workers.STORE, workers.HASH)


class _Lane:
    """
    Files one worker stores, in order.
    """

    __slots__ = ("pool", "inbox", "working")

    def __init__(self, pool) -> None:
        self.pool = pool
        self.inbox: Deque[SmallFile] = deque()
        self.working = False


class SmallFileStore:
    """
    Stores L{SmallFile}s in a worker thread, in the order given, and calls
    C{stored(job)} on the reactor thread after each one, whether it was
    written or failed (C{job.error}).

    The worker takes the next file as soon as it is done with one, without
    a trip through the reactor thread in between. Run one batch at a time
    (L{ftx._io.background.Lane}), 1,000 files of 64 KiB on disk came in
    about 27 batches, and the worker stood idle for the round trip between
    two of them: 0.16-0.21 s of a 1.8-3 s C{mget} on the loaded test
    machine. The reactor thread hears of stored files through at most one
    pending call at a time, however many files the worker finishes
    meanwhile.

    With C{lanes=2}, two workers store at once (the files of one path in
    the same lane, in order), for a few files that each replace one that
    exists (a mirror's re-run, L{ftx.client.pipelined}): renaming over a
    file waits for the disk, 0.3-0.4 ms a file on ext4, which two lanes
    wait at once (100 such files: 75 -> 67 ms). Not for an C{mget} of
    thousands: a second thread there fights the reactor for the GIL.

    @ivar error: always L{None}: a file's failure is its own
        (C{job.error}), and the store has none of its own.
    """

    error: Optional[BaseException] = None

    def __init__(
        self, reactor, stored: Callable[[SmallFile], None], changed: Callable[[], None], lanes: int = 1
    ) -> None:
        self._reactor = reactor
        self._stored = stored
        self._changed = changed
        self._lanes = [_Lane(workers.poolFor(reactor, kind)) for kind in _LANE_POOLS[:lanes]]
        self._folders: Set[str] = set()
        #: Every file added and not yet reported, in order (reactor thread only).
        self._queued: Deque[SmallFile] = deque()
        self._idleWaiters: List[Deferred] = []
        #: Guards the lanes' inboxes and flags and the one below, shared
        #: with the workers.
        self._lock = threading.Lock()
        self._telling = False
        #: Bytes added and not yet reported stored.
        self.waiting = 0

    @property
    def idle(self) -> bool:
        return not self._queued

    def add(self, job: SmallFile) -> None:
        self._queued.append(job)
        self.waiting += job.size
        # The same path always goes to the same lane: stored in order.
        lane = self._lanes[hash(job.path) % len(self._lanes)]
        with self._lock:
            lane.inbox.append(job)
            if lane.working:
                return
            lane.working = True
        lane.pool.callInThread(self._work, lane)

    def _work(self, lane: "_Lane") -> None:
        # Runs in a worker thread until the lane's inbox is empty. The
        # reactor thread is told every TELL_EVERY bytes, and when the inbox
        # is empty: a call for each file cost it more than it saved.
        inbox = lane.inbox
        untold = 0
        while True:
            with self._lock:
                if not inbox:
                    lane.working = False
                    return
                job = inbox.popleft()
            self._store(job)
            untold += job.size + 1
            with self._lock:
                tell = not self._telling and (untold >= TELL_EVERY or not inbox)
                if tell:
                    self._telling = True
            if tell:
                untold = 0
                self._reactor.callFromThread(self._report)

    def _store(self, job: SmallFile) -> None:
        # A file that fails does not stop the others: the caller decides
        # what its error means.
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
        opened = False
        try:
            folder = os.path.dirname(job.path)
            if folder and folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            fd = localfiles.openPartialFd(partial)
            opened = True
            try:
                for piece in job.pieces:
                    writeAllTo(fd, piece)
            finally:
                os.close(fd)
            os.replace(partial, job.path)
        except OSError as e:
            # Only a partial file this job made is removed: where the folder
            # could not be made, removing would fail with an error of its
            # own (ENOTDIR) in place of this one.
            if opened:
                localfiles.discard(partial)
            raise localfiles.localError(e, job.path)

    def _report(self) -> None:
        # Reactor thread. The flag is cleared before looking: a file the
        # worker finishes from now on calls again.
        with self._lock:
            self._telling = False
        queued = self._queued
        while queued and queued[0].stored:
            job = queued.popleft()
            self.waiting -= job.size
            self._stored(job)
        if not queued:
            waiters, self._idleWaiters = self._idleWaiters, []
            for d in waiters:
                d.callback(None)
        self._changed()

    def whenIdle(self) -> Deferred:
        """
        Fires once every file added so far is stored or dropped.
        """
        if self.idle:
            return succeed(None)
        d: Deferred = Deferred()
        self._idleWaiters.append(d)
        return d
