"""
Sending a compressed body's raw blocks by C{sendfile}.

On random bytes, JPEG or files already compressed nearly every block goes
raw (L{ftx.protocol.compression}), and a raw block is the file's bytes as
they are: sending it by C{read} and C{write} through user space, as
L{ftx._io.compressedbody.BlockSender} does, cost the server a core where
a plain body costs almost none. Here, on a plain socket and without a
rate limit, a raw block's line goes to the socket with C{MSG_MORE} and its
bytes follow by C{sendfile} (L{ftx._io.zerocopy}); only the blocks worth a
trial compression are read, in a worker thread, and only the ones that
shrink are sent from memory. The digest comes from the cache or from an
L{ftx._io.filebody.AsideHasher} on another core, as for a plain body. The
wire is the same either way: a peer cannot tell which sender it has.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from typing import Callable, Deque, Optional

from twisted.internet import interfaces
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx._io import internals, workers, zerocopy
from ftx._io.compressedbody import _descriptor, _readAt
from ftx._io.filebody import AsideHasher, settleDigest
from ftx.protocol import compression
from ftx.protocol.compression import BLOCK_SIZE, BlockEncoder

__all__ = ["DirectBlockSender", "usable"]

#: Compressed blocks (payloads held in memory) made ahead of the socket.
AHEAD = 4
#: Blocks planned ahead (raw ones hold no bytes, only a position): enough
#: to keep the socket busy while a worker makes the next compressed one.
PLANNED = 8
_MSG_MORE = getattr(socket, "MSG_MORE", 0)


def usable(transport, f, count: int, reactor, throttle) -> bool:
    """
    Whether a body of C{count} file bytes of C{f} can go through a
    L{DirectBlockSender}: a plain socket, a file with a descriptor, no
    rate limit (whose token bucket paces pieces of blocks), and more than
    one block's worth (a short body costs less the ordinary way).
    """
    return (
        reactor is not None
        and count > BLOCK_SIZE
        and (throttle is None or not throttle.limited)
        and internals.socketOf(transport) is not None
        and _descriptor(f) is not None
    )


@implementer(interfaces.IPullProducer)
class DirectBlockSender:
    """
    Streams C{count} bytes of an open file from C{offset} as blocks, raw
    ones by C{sendfile}, and fires with the digest for the trailer (the
    same interface as L{ftx._io.compressedbody.BlockSender}).

    A pull producer: the transport asks for more when its socket can take
    it (L{internals.wakeWriter}); each turn sends at most
    L{zerocopy.TURN} bytes. Blocks are planned in order: one the encoder
    skips (L{BlockEncoder.skipNext}) on the spot, one worth a trial in a
    worker thread, which reads and compresses it.
    """

    def __init__(
        self, f, offset: int, count: int, hasher, knownDigest: Optional[str], progress: Callable[[int], None], reactor,
        encoder: Optional[BlockEncoder] = None, rawRun: int = BLOCK_SIZE,
    ) -> None:
        self.file = f
        #: The most file bytes one raw block may hold (L{compression.MAX_RUN}
        #: after C{compress zstd raw-runs}): neighbouring raw blocks are
        #: planned as one, so random data costs a line per run, not per MiB.
        self._rawRun = rawRun
        self._fd = _descriptor(f)
        #: File bytes not yet planned into blocks.
        self._unplanned = count
        self._position = offset
        self._offset = offset
        self._count = count
        self.hasher = hasher
        self.knownDigest = knownDigest
        self.progress = progress
        self.reactor = reactor
        self.encoder = encoder or BlockEncoder()
        self.deferred = None
        self.transport = None
        self._socket = None
        self._pool = workers.poolFor(reactor, workers.HASH)
        # Planned blocks (line, payload or None for raw, position, count),
        # shared with the worker under the lock.
        self._lock = threading.Lock()
        self._ready: Deque[tuple] = deque()
        self._held = 0
        self._working = False
        self._stopped = False
        #: The block being sent: its line and payload sent so far.
        self._current: Optional[tuple] = None
        self._lineSent = 0
        self._payloadSent = 0
        #: File bytes not yet sent (the server logs what went).
        self.remaining = count
        self._aside: Optional[AsideHasher] = None
        self._asideDigest = None

    @property
    def position(self) -> int:
        """
        How far into the file blocks are planned (and trial ones read).
        """
        return self._position

    def begin(self, transport):
        from twisted.internet.defer import Deferred

        self.transport = transport
        self._socket = internals.socketOf(transport)
        self.deferred = d = Deferred()
        if self.knownDigest is None:
            self._aside = AsideHasher(self._fd, self._offset, self._count, self.hasher)
            self._asideDigest = self._aside.start(self.reactor)
        transport.registerProducer(self, False)
        return d

    # Planning blocks.

    def _plan(self) -> None:
        """
        Plan the blocks the encoder skips, here (they cost a subtraction),
        and leave the next one worth a trial to a worker. Reactor thread.
        """
        with self._lock:
            if self._working:
                return
            while self._unplanned > 0 and len(self._ready) < PLANNED:
                count = min(BLOCK_SIZE, self._unplanned)
                if not self.encoder.skipNext(count):
                    break
                self._planRaw(self._position, count)
                self._position += count
                self._unplanned -= count
            if self._unplanned > 0 and self._held < AHEAD and len(self._ready) < PLANNED:
                self._working = True
                self._pool.callInThread(self._work)

    def _planRaw(self, position: int, count: int) -> None:
        """
        Plan C{count} file bytes at C{position} as a raw block, or as more
        of the raw block planned just before, while it stays within the
        connection's raw run. Under the lock.
        """
        if self._ready:
            line, payload, start, held = self._ready[-1]
            if payload is None and start + held == position and held + count <= self._rawRun:
                held += count
                self._ready[-1] = (compression.blockLine(held, held) + b"\r\n", None, start, held)
                return
        self._ready.append((compression.blockLine(count, count) + b"\r\n", None, position, count))

    def _work(self) -> None:
        """
        Make blocks in order in a worker thread until L{AHEAD} compressed
        ones wait, a skipped one comes (planned on the reactor thread), or
        the body is planned.
        """
        while True:
            with self._lock:
                if self._stopped or self._unplanned <= 0 or self._held >= AHEAD or len(self._ready) >= PLANNED:
                    break
                position, count = self._position, min(BLOCK_SIZE, self._unplanned)
                if self.encoder.skipNext(count):
                    block = (compression.blockLine(count, count) + b"\r\n", None, position, count)
                else:
                    block = None
            if block is None:
                try:
                    payload = self.encoder.encode(_readAt(self.file, self._fd, position, count))
                except BaseException:
                    failure = Failure()
                    with self._lock:
                        self._working = False
                        self._stopped = True
                    self.reactor.callFromThread(self._finish, failure)
                    return
                raw = len(payload) == count
                block = (compression.blockLine(count, len(payload)) + b"\r\n", None if raw else payload, position, count)
            with self._lock:
                first = not self._ready
                if block[1] is None:
                    self._planRaw(position, count)
                else:
                    self._ready.append(block)
                self._position += count
                self._unplanned -= count
                if block[1] is not None:
                    self._held += 1
            if first:
                # The reactor may be waiting for this one.
                self.reactor.callFromThread(self.resumeProducing)
        with self._lock:
            self._working = False
        self.reactor.callFromThread(self.resumeProducing)

    # Sending.

    def resumeProducing(self) -> None:
        transport = self.transport
        if transport is None or not internals.transportIdle(transport):
            # Gone, or the header line still queued: the transport asks
            # again once it has written it.
            return
        budget = zerocopy.TURN
        try:
            while budget > 0:
                if self._current is None:
                    # Plan first: what it plans on the spot is sent now.
                    self._plan()
                    with self._lock:
                        block = self._ready.popleft() if self._ready else None
                        if block is not None and block[1] is not None:
                            self._held -= 1
                    if block is None:
                        if self.remaining <= 0:
                            self._finish(None)
                        # Else a worker is making the next block; it calls
                        # back when it has.
                        return
                    self._current, self._lineSent, self._payloadSent = block, 0, 0
                sent = self._sendCurrent(budget)
                if sent is None:
                    break
                budget -= sent
        except (EOFError, OSError) as e:
            self._finish(Failure(zerocopy.whySendingStopped(e)))
            return
        # The socket is full or this turn is used up: the next write event
        # asks again, after the other connections had their turn.
        internals.wakeWriter(transport)

    def _sendCurrent(self, budget: int) -> Optional[int]:
        """
        Send what the socket takes of the current block; the bytes sent, or
        L{None} once the socket is full.
        """
        line, payload, position, count = self._current
        sock = self._socket
        if self._lineSent < len(line):
            try:
                self._lineSent += sock.send(line[self._lineSent :], _MSG_MORE)
            except (BlockingIOError, InterruptedError):
                return None
            if self._lineSent < len(line):
                return None
        if payload is None:
            want = count - self._payloadSent
            sent = zerocopy.sendSome(sock, self._fd, position + self._payloadSent, min(want, budget))
        else:
            want = len(payload) - self._payloadSent
            try:
                sent = sock.send(memoryview(payload)[self._payloadSent :])
            except (BlockingIOError, InterruptedError):
                sent = 0
        self._payloadSent += sent
        if self._payloadSent == (count if payload is None else len(payload)):
            self._current = None
            self.remaining -= count
            self.progress(count)
        elif sent < min(want, budget):
            return None
        return sent

    def stopProducing(self) -> None:
        self._finish(Failure(ConnectionError("connection lost while sending")))

    def _finish(self, failure: Optional[Failure]) -> None:
        if self.transport is None:
            return
        self.transport.unregisterProducer()
        self.transport = None
        with self._lock:
            self._stopped = True
            self._ready.clear()
        self._current = None
        d, self.deferred = self.deferred, None
        settleDigest(d, failure, self._aside, self._asideDigest, lambda: self.knownDigest)
