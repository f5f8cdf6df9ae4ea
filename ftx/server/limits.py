"""
What keeps one client, or many, from exhausting the server: how many
connections it holds (L{Admission}), how many bytes the root may hold
(L{Quota}), how much output one connection may leave unread
(L{WriteBackpressure}), and the limits part of one connection
(L{ConnectionLimits}: bounded input, idle close, graceful close). The
options that set them are in L{ftx.server.tap}; what they promise is in
``docs/operations.rst``.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Deque, List, Optional

from twisted.internet import interfaces
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from ftx._io import internals
from ftx.errors import NoSpace, Unavailable
from ftx.protocol import wire
from ftx.protocol.wire import nameText
from ftx.server.deadlines import Deadlines
from ftx.server.readgate import CLIENT_BEHIND, ReadGate

__all__ = ["FILE_CHARGE", "FOLDER_CHARGE", "Quota", "Admission", "WriteBackpressure", "ConnectionLimits", "MAX_BUFFERED_INPUT"]

#: Bytes a connection may have read but not yet handled while the server is
#: not reading from it. A paused TCP transport stops reading, so this only
#: trips when a transport keeps delivering after being paused.
MAX_BUFFERED_INPUT = 4 << 20
#: Bytes handed to LineReceiver at a time in line mode (see
#: L{ConnectionLimits.received}).
LINE_PIECE = 4096


#: What a quota charges for each file and each folder on top of the bytes
#: in them: a file system allocates whole blocks (4 KiB on ext4, xfs and
#: tmpfs) and an inode per file, a block per folder. Counting bytes only, a
#: thousand one-byte uploads into fresh folders passed a 64 KiB quota and
#: took 12 MiB of disk.
FILE_CHARGE = 4096
FOLDER_CHARGE = 4096


class Quota:
    """
    The bytes the root may hold and the bytes it holds.

    Usage is counted once at startup (and again at every partial-upload
    sweep, which picks up changes made outside the server), then adjusted
    as uploads write and deletes remove. An upload reserves its whole size
    before its body is read, so uploads running side by side cannot
    overshoot together. Methods are called from the reactor and from
    threads, hence the lock.

    Usage is what the disk gives up, not only what files say they hold:
    every file (a partial upload too) is charged C{perFile} bytes on top
    of its size and every folder below the root C{perFolder} bytes
    (L{charge}), so many tiny files cannot use far more disk than the
    quota allows.
    """

    def __init__(self, limit: int, perFile: int = FILE_CHARGE, perFolder: int = FOLDER_CHARGE) -> None:
        self.limit = limit
        self.perFile = perFile
        self.perFolder = perFolder
        self.used = 0
        self.reserved = 0
        self.counted = False
        self._lock = threading.Lock()
        self._waiting: List[Deferred] = []

    def charge(self, size: int, files: int = 0, folders: int = 0) -> int:
        """
        What C{size} bytes in C{files} files and C{folders} new folders
        count against the quota.
        """
        return size + files * self.perFile + folders * self.perFolder

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
    read its replies, the server stops reading the client's commands
    (L{CLIENT_BEHIND} on the connection's L{ReadGate}), and reads again
    once the buffer has drained. Without it a client that sends cheap
    commands and never reads could make the server buffer replies without
    bound.

    @ivar attached: whether it is the transport's producer now.
    @ivar blocked: whether the transport asked it to stop (the client is
        behind) and has not yet asked it to go on.
    """

    def __init__(self, connection, gate: ReadGate) -> None:
        self._connection = connection
        self._gate = gate
        self.attached = False
        self.blocked = False
        self._resumeWaiters: List[Deferred] = []

    def whenResumed(self) -> Deferred:
        """
        Fires once the client has read enough for writing to go on (at
        once if it is not behind), or the connection is gone.
        """
        if not self.blocked or not self.attached:
            return succeed(None)
        d: Deferred = Deferred()
        self._resumeWaiters.append(d)
        return d

    def _wake(self) -> None:
        waiters, self._resumeWaiters = self._resumeWaiters, []
        for d in waiters:
            d.callback(None)

    def _unblock(self) -> None:
        # Only while a command runs (a body starts or ends), so lifting the
        # reason does not by itself start reading: COMMAND is still in force.
        if self.blocked:
            self.blocked = False
            self._gate.resume(CLIENT_BEHIND)

    def attach(self) -> None:
        transport = self._connection.transport
        if not self.attached and transport is not None and not self._connection.disconnected:
            self._unblock()
            transport.registerProducer(self, True)
            self.attached = True

    def detach(self) -> None:
        if self.attached:
            self.attached = False
            self._unblock()
            self._connection.transport.unregisterProducer()

    def connectionLost(self) -> None:
        """
        The connection is gone: whoever waits for the client to catch up
        waits no more.
        """
        self.attached = False
        self._wake()

    def pauseProducing(self) -> None:
        self.blocked = True
        self._gate.pause(CLIENT_BEHIND)

    def resumeProducing(self) -> None:
        self.blocked = False
        self._gate.resume(CLIENT_BEHIND)
        self._wake()

    def stopProducing(self) -> None:
        self.connectionLost()


class ConnectionLimits:
    """
    The limits part of one server connection: input handed to
    C{LineReceiver} in bounded pieces, a bound on what a client may send
    while it is not being read, the idle timeout's close, the graceful
    close at shutdown, the connection's L{Deadlines} (finishing a command
    line, logging in) and its L{WriteBackpressure}.

    It talks to the protocol through L{ftx.server.connection.IConnection}
    and pauses reading only through the connection's L{ReadGate}.

    @ivar refused: whether the connection was refused (too many
        connections, or the server is stopping); what it sends is ignored.
    @ivar closing: whether the server is shutting down: the next line (or
        the end of the running command) is answered with a goodbye.
    """

    def __init__(self, connection, gate: ReadGate) -> None:
        self._connection = connection
        self.backpressure = WriteBackpressure(connection, gate)
        self.refused = False
        self.closing = False
        self._abortLater = None
        # Received bytes not yet handed to LineReceiver, oldest first.
        self._pending: Deque[memoryview] = deque()
        self._pendingSize = 0
        self._feeding = False
        #: Finishing a command line, and logging in, in time.
        self.deadlines = Deadlines(connection, self._closeWith)

    @property
    def held(self) -> int:
        """
        Bytes received and not yet handed to C{LineReceiver}.
        """
        return self._pendingSize

    def received(self, data: bytes) -> None:
        """
        Hand received bytes to LineReceiver, in pieces of at most
        L{LINE_PIECE} bytes while in line mode: LineReceiver copies what
        follows each line it splits off, so one 1 MiB read of tiny commands
        would cost it seconds of CPU (quadratic); in pieces it is linear.
        Body bytes (raw mode) go through whole.
        """
        if self.refused:
            return
        connection = self._connection
        if self._feeding:
            # setLineMode(rest) from inside rawDataReceived: these bytes
            # come before anything still pending.
            if data:
                self._pending.appendleft(memoryview(data))
                self._pendingSize += len(data)
            return
        if data:
            connection.resetTimeout()
            self._pending.append(memoryview(data))
            self._pendingSize += len(data)
            if connection.paused and self._pendingSize + internals.lineBuffered(connection) > MAX_BUFFERED_INPUT:
                connection.log.warn("{peer} kept sending while the server was not reading; closing", peer=connection.peer)
                self._pending.clear()
                self._pendingSize = 0
                connection.transport.abortConnection()
                return
        self._feeding = True
        try:
            connection.parse(b"")
            pending = self._pending
            while pending and not connection.paused and not connection.disconnected and not connection.transport.disconnecting:
                if connection.line_mode:
                    first = pending.popleft()
                    if len(first) > LINE_PIECE:
                        pending.appendleft(first[LINE_PIECE:])
                        first = first[:LINE_PIECE]
                    piece = first.tobytes()
                else:
                    piece = b"".join(pending)
                    pending.clear()
                self._pendingSize -= len(piece)
                connection.parse(piece)
        finally:
            self._feeding = False
        if not self.refused:
            self.deadlines.watchLine(self._pendingSize)

    def refuse(self, reason: str) -> None:
        """
        The connection is not admitted: say why and close.
        """
        connection = self._connection
        self.refused = True
        connection.log.info("{peer} refused: {reason}", peer=connection.peer, reason=reason)
        self._closeWith(Unavailable(reason))

    def closeIdle(self, seconds: float, midBody: bool) -> None:
        """
        Idle for --idle-timeout seconds: no byte arrived and none of a body
        left. Between commands the client is told why; in the middle of a
        body sent to it (C{midBody}), a line cannot be inserted, so the
        connection is cut.
        """
        connection = self._connection
        connection.log.info("{peer} idle for {seconds} seconds; closing", peer=connection.peer, seconds=seconds)
        if midBody:
            connection.transport.abortConnection()
            return
        self._closeWith(Unavailable("idle for too long; closing"))

    def shutdownRequested(self, idle: bool) -> None:
        """
        The server is stopping: close now if C{idle} (no command running),
        else once the running command (a transfer) has finished.
        """
        self.closing = True
        if idle and not self._connection.disconnected:
            self.sayGoodbye()

    def sayGoodbye(self) -> None:
        self._closeWith(Unavailable("the server is shutting down"))

    def _closeWith(self, error) -> None:
        transport = self._connection.transport
        transport.write(wire.formatError(error) + wire.LINE_END)
        self.hangUp()

    def hangUp(self) -> None:
        """
        Close the connection after what was written: the one way the
        server ends a connection in good order (quit, refusals, timeouts).

        The write-backpressure producer goes first: a TLS transport holds
        its close alert back until its producer is unregistered, and
        would otherwise never close. Reading then resumes at the
        transport (lines are no longer parsed: the gate stays as it is)
        so that the client's close alert, or its end of the connection,
        is seen. Should the client not answer, L{closeSoon} cuts it.
        """
        transport = self._connection.transport
        self.backpressure.detach()
        transport.loseConnection()
        if interfaces.ISSLTransport.providedBy(transport) and not self._connection.disconnected:
            # (A TCP transport needs no reading to close, and refuses it.)
            transport.resumeProducing()
        self.closeSoon()

    def closeSoon(self, delay: float = 5.0) -> None:
        """
        After loseConnection: cut the connection if the client does not
        read the last bytes within C{delay} seconds.
        """
        if self._abortLater is None:
            self._abortLater = self._connection.reactor.callLater(delay, self._connection.transport.abortConnection)

    def connectionLost(self) -> None:
        if self._abortLater is not None and self._abortLater.active():
            self._abortLater.cancel()
        self.deadlines.stop()
        self.backpressure.connectionLost()
