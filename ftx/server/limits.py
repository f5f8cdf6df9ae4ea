"""
What keeps one client, or many, from exhausting the server: how many
connections it holds (L{Admission}), how many bytes the root may hold
(L{Quota}), and how much output one connection may leave unread
(L{WriteBackpressure}). The options that set them are in L{ftx.server.tap}; what
they promise is in ``docs/operations.rst``.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import List, Optional

from twisted.internet import interfaces
from twisted.internet.defer import Deferred, succeed
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from zope.interface import implementer

from ftx._io import internals
from ftx.errors import NoSpace, Unavailable
from ftx.protocol import wire
from ftx.protocol.wire import nameText

__all__ = ["parseDuration", "Quota", "Admission", "WriteBackpressure", "ConnectionLimits", "MAX_BUFFERED_INPUT"]

#: Bytes a connection may have read but not yet handled while the server is
#: not reading from it. A paused TCP transport stops reading, so this only
#: trips when a transport keeps delivering after being paused.
MAX_BUFFERED_INPUT = 4 << 20
#: Bytes handed to LineReceiver at a time in line mode (see
#: L{ConnectionLimits.dataReceived}).
LINE_PIECE = 4096


def parseDuration(text: str) -> float:
    """
    Seconds from C{90}, C{90s}, C{15m}, C{24h} or C{7d}.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    factor = units.get(value[-1:], None)
    number = value[:-1] if factor else value
    factor = factor or 1
    try:
        seconds = float(number) * factor
    except ValueError:
        raise usage.UsageError("not a duration: {!r} (examples: 30, 30s, 15m, 24h, 7d)".format(text))
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise usage.UsageError("not a duration: {!r}".format(text))
    return seconds


class Quota:
    """
    The bytes the root may hold and the bytes it holds.

    Usage is counted once at startup (and again at every partial-upload
    sweep, which picks up changes made outside the server), then adjusted
    as uploads write and deletes remove. An upload reserves its whole size
    before its body is read, so uploads running side by side cannot
    overshoot together. Methods are called from the reactor and from
    threads, hence the lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.reserved = 0
        self.counted = False
        self._lock = threading.Lock()
        self._waiting: List[Deferred] = []

    def available(self) -> int:
        with self._lock:
            return max(0, self.limit - self.used - self.reserved)

    def reserve(self, count: int, name: bytes = b"") -> None:
        """
        Promise C{count} bytes to an upload.

        @raise NoSpace: they do not fit.
        """
        with self._lock:
            free = self.limit - self.used - self.reserved
            if count > free:
                raise NoSpace(
                    "quota exceeded: {} needs {} bytes, {} of the {}-byte quota are free".format(
                        nameText(name) or "the upload", count, max(free, 0), self.limit
                    )
                )
            self.reserved += count

    def release(self, count: int) -> None:
        """
        Give back a reservation that was not written.
        """
        with self._lock:
            self.reserved = max(0, self.reserved - count)

    def wrote(self, fromReserved: int, extra: int = 0) -> None:
        """
        Bytes written: C{fromReserved} of them were reserved.
        """
        with self._lock:
            self.reserved = max(0, self.reserved - fromReserved)
            self.used += fromReserved + extra

    def freed(self, count: int) -> None:
        with self._lock:
            self.used = max(0, self.used - count)

    def recount(self, used: int) -> None:
        """
        Replace the running count with a fresh walk of the tree.
        """
        with self._lock:
            self.used = used
            self.counted = True
            waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def whenCounted(self) -> Deferred:
        """
        Fires once usage has been counted, so that no upload is judged
        against a count that has not been made yet.
        """
        with self._lock:
            if self.counted:
                return succeed(None)
            d: Deferred = Deferred()
            self._waiting.append(d)
            return d


class Admission:
    """
    The connections a server holds, and whether it takes another: at most
    C{maxConnections} in all and C{maxPerAddress} from one peer address
    (L{None} or 0: no limit), and none once it is shutting down.
    """

    def __init__(self, maxConnections: Optional[int] = None, maxPerAddress: Optional[int] = None) -> None:
        self.maxConnections = maxConnections or None
        self.maxPerAddress = maxPerAddress or None
        self.active: set = set()
        self.closing = False
        self.refused = 0
        self._perAddress: Counter = Counter()
        self._empty: List[Deferred] = []

    def admit(self, connection, address: str) -> Optional[str]:
        """
        Take C{connection}, or say why not (the text of a C{503} reply).
        """
        if self.closing:
            reason = "the server is shutting down"
        elif self.maxConnections is not None and len(self.active) >= self.maxConnections:
            reason = "too many connections ({}); try again later".format(self.maxConnections)
        elif self.maxPerAddress is not None and self._perAddress[address] >= self.maxPerAddress:
            reason = "too many connections from {} ({}); try again later".format(address, self.maxPerAddress)
        else:
            self.active.add(connection)
            self._perAddress[address] += 1
            return None
        self.refused += 1
        return reason

    def release(self, connection, address: str) -> None:
        if connection not in self.active:
            return
        self.active.discard(connection)
        self._perAddress[address] -= 1
        if self._perAddress[address] <= 0:
            del self._perAddress[address]
        if not self.active:
            waiting, self._empty = self._empty, []
            for d in waiting:
                d.callback(None)

    def whenEmpty(self) -> Deferred:
        """
        Fires once no connection is left.
        """
        if not self.active:
            return succeed(None)
        d: Deferred = Deferred()
        self._empty.append(d)
        return d


@implementer(interfaces.IPushProducer)
class WriteBackpressure:
    """
    Registered on a connection's transport while no body is being sent:
    when the transport's output buffer fills because the client does not
    read its replies, the server stops reading the client's commands, and
    reads again once the buffer has drained. Without it a client that sends
    cheap commands and never reads could make the server buffer replies
    without bound.
    """

    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.attached = False
        self._resumeWaiters: List[Deferred] = []

    def whenResumed(self) -> Deferred:
        """
        Fires once the client has read enough for writing to go on (at
        once if it is not behind), or the connection is gone.
        """
        if not self.protocol._writeBlocked or not self.attached:
            return succeed(None)
        d: Deferred = Deferred()
        self._resumeWaiters.append(d)
        return d

    def _wake(self) -> None:
        waiters, self._resumeWaiters = self._resumeWaiters, []
        for d in waiters:
            d.callback(None)

    def attach(self) -> None:
        transport = self.protocol.transport
        if not self.attached and transport is not None and not self.protocol.disconnected:
            self.protocol._writeBlocked = False
            transport.registerProducer(self, True)
            self.attached = True

    def detach(self) -> None:
        if self.attached:
            self.attached = False
            self.protocol._writeBlocked = False
            self.protocol.transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self.protocol._writeBlocked = True
        self.protocol._pauseReading()

    def resumeProducing(self) -> None:
        self.protocol._writeBlocked = False
        self.protocol.resumeProducing()
        self._wake()

    def stopProducing(self) -> None:
        self.attached = False
        self._wake()


class ConnectionLimits:
    """
    The limits part of L{ftx.server.protocol.FtxServerProtocol} (mixed in before
    LineReceiver and TimeoutMixin): bounded input, reading gated by
    L{WriteBackpressure} and the disk writer, the idle timeout, and the
    graceful close at shutdown. Uses the protocol's state (C{_busy},
    C{_writer}, C{_sender}, C{_upload}, C{_pending}, ...).
    """


    def callLater(self, period, f):
        # TimeoutMixin's timer, on the factory's reactor (a Clock in tests).
        return self.factory.reactor.callLater(period, f)

    def dataReceived(self, data: bytes) -> None:
        """
        Hand received bytes to LineReceiver, in pieces of at most
        L{LINE_PIECE} bytes while in line mode: LineReceiver copies what
        follows each line it splits off, so one 1 MiB read of tiny commands
        would cost it seconds of CPU (quadratic); in pieces it is linear.
        Body bytes (raw mode) go through whole.
        """
        if self._refused:
            return
        if self._feeding:
            # setLineMode(rest) from inside rawDataReceived: these bytes
            # come before anything still pending.
            if data:
                self._pending.appendleft(memoryview(data))
                self._pendingSize += len(data)
            return
        if data:
            self.resetTimeout()
            self._pending.append(memoryview(data))
            self._pendingSize += len(data)
            if self.paused and self._pendingSize + internals.lineBuffered(self) > MAX_BUFFERED_INPUT:
                self._log.warn("{peer} kept sending while the server was not reading; closing", peer=self.peer)
                self._pending.clear()
                self.transport.abortConnection()
                return
        self._feeding = True
        try:
            LineReceiver.dataReceived(self, b"")
            while self._pending and not self.paused and not self.disconnected and not self.transport.disconnecting:
                if self.line_mode:
                    first = self._pending.popleft()
                    if len(first) > LINE_PIECE:
                        self._pending.appendleft(first[LINE_PIECE:])
                        first = first[:LINE_PIECE]
                    piece = first.tobytes()
                else:
                    piece = b"".join(self._pending)
                    self._pending.clear()
                self._pendingSize -= len(piece)
                LineReceiver.dataReceived(self, piece)
        finally:
            self._feeding = False

    def _pauseReading(self) -> None:
        LineReceiver.pauseProducing(self)

    def resumeProducing(self) -> None:
        """
        Read again, unless the client has not read what it was sent or the
        disk is behind an upload; their own resumes read again later.
        """
        if self._busy or self._writeBlocked or self.disconnected or getattr(self._writer, "_paused", False):
            return
        if self.transport is None or self.transport.disconnecting:
            return
        LineReceiver.resumeProducing(self)

    def timeoutConnection(self) -> None:
        """
        Idle for --idle-timeout seconds: no byte arrived and none of a body
        left. Between commands the client is told why; in the middle of a
        body sent to it, a line cannot be inserted, so the connection is cut.
        """
        self._log.info("{peer} idle for {seconds} seconds; closing", peer=self.peer, seconds=self.timeOut)
        if self._sender is not None:
            self.transport.abortConnection()
            return
        self.transport.write(wire.formatError(Unavailable("idle for too long; closing")) + self.delimiter)
        self.transport.loseConnection()
        self._closeSoon()

    def _bodyProgress(self, count: int) -> None:
        # A body that moves is not idle; one the client stopped reading is.
        self.resetTimeout()

    def _closeSoon(self, delay: float = 5.0) -> None:
        """
        After loseConnection: cut the connection if the client does not
        read the last bytes within C{delay} seconds.
        """
        if self._abortLater is None:
            self._abortLater = self.factory.reactor.callLater(delay, self.transport.abortConnection)

    def shutdownRequested(self) -> None:
        """
        The server is stopping: close now if idle, else once the running
        command (a transfer) has finished.
        """
        self._closing = True
        if not self.disconnected and not self._busy and self._upload is None:
            self._sayGoodbye()

    def _sayGoodbye(self) -> None:
        self.transport.write(wire.formatError(Unavailable("the server is shutting down")) + self.delimiter)
        self.transport.loseConnection()
        self._closeSoon()

    def _keepPartial(self, upload) -> bool:
        """
        Whether a cut-off upload's partial file stays for a resume: only if
        it holds bytes, no write failed, and partial files are kept at all.
        """
        if self.factory.policy.partialTTL == 0 or upload.received == 0:
            return False
        return self._writer is None or self._writer.error is None

