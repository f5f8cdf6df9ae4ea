"""
Receiving one large body in a thread of its own, with blocking
C{recv_into} and the write and the hash right after it, as a plain C
program (or the benchmark's limit client) would.

A process that holds one connection and does nothing else while it
downloads (the C{ftx} command) gains nothing from the reactor during a
body: every read went through the reactor's poll, a pooled buffer, a
hand-off to a writer thread and a hop back to release the buffer, and on
two cores that Python work per megabyte cost more than the copy itself.
Here the reactor stops reading the socket for the body's length; a thread
reads exactly that many bytes into a few reused buffers, a second one
stores and hashes them in order (L{STORE_THREAD}), and the socket goes
back to the reactor, so the trailer after the body arrives through the
protocol's ordinary path. There is one protocol
implementation: only who reads the body's bytes changes.

The same holds for a program that embeds the client, as long as the body
is the one large body its process receives at the time (L{busy}): the
reactor keeps serving every other connection while the thread reads (it
only stopped reading this socket, and the thread reaches it only through
C{callFromThread}), and a hundred bodies at once stay on the reactor
rather than take two hundred threads that fight over the GIL.

A compressed body's thread follows its block framing
(L{ThreadedWriter.receiveBlocks}, L{ftx._io.threadedblocks}).

Only a plain socket qualifies (L{ftx._io.internals.socketOf}), and only a
checksum cheap enough to run on the reading thread (XXH3): a SHA-1 body
keeps the reactor path, where hashing runs in a lane of its own.

The reactor thread never stores anything itself: the few bytes that came
through it before the thread took over are kept (at most a read or two,
L{EARLY_LIMIT}) and stored by the thread first, or, when no thread ever
started, by a worker when the body is drained.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool

from ftx._io import workers
from ftx._io.buffers import alignedBuffer, landing
from ftx._io.lentsocket import LentSocket
from ftx._io.reports import ThrottledReports

__all__ = ["ThreadedWriter", "BUFFER_SIZE", "REPORT_EVERY", "REPORT_SECONDS", "busy"]

#: Size of a receive buffer: what the limit client uses.
BUFFER_SIZE = 1 << 20
#: Whether a second thread stores and hashes while the first receives the
#: next buffer, and how many buffers the two pass between them. On two
#: cores the receive copy and the write copy then overlap, as the server's
#: C{sendfile} leaves part of a core free; one thread doing both in turn
#: (L{False}) is what the limit client does.
STORE_THREAD = True
STORE_BUFFERS = 4
#: The thread tells the reactor how far it got after this many bytes or
#: L{REPORT_SECONDS}, whichever comes first, for progress bars: often
#: enough for a bar redrawn 8 times a second, seldom enough to cost
#: nothing.
REPORT_EVERY = 32 << 20
REPORT_SECONDS = 0.1
#: Seconds one wait for bytes lasts before the thread checks whether the
#: connection was dropped meanwhile (closing a socket does not wake a
#: thread polling it).
_POLL_SECONDS = 0.25
#: Seconds without a byte after which the thread gives the socket back to
#: the reactor, whose idle timers and connection handling then apply.
_STALL_SECONDS = 120.0
#: Bytes received through the reactor before the thread starts that are
#: kept for it rather than stored at once; more than this (never seen: a
#: body's thread starts within two reads) is stored where it arrives.
EARLY_LIMIT = 4 << 20

#: The writers of this process whose thread reads now (L{busy}). The
#: thread itself takes its writer out as it ends, so a writer that never
#: finished its body (a connection dropped, a request given up) cannot
#: keep the process "busy" for ever.
_reading: "set[ThreadedWriter]" = set()


def busy() -> bool:
    """
    Whether a thread of this process reads a body now: a client that only
    takes a thread when its body is the one large body of the process
    (L{ftx.client.protocol.FtxClientProtocol.bodyThreads}) asks this. The
    thread is counted from the moment L{ThreadedWriter.receive} is called,
    in the same reactor turn as the body's header is read, so a second
    body that starts a moment later sees it.
    """
    return bool(_reading)


class ThreadedWriter:
    """
    Stores and hashes a body, in the place of a
    L{ftx._io.background.BackgroundWriter}: L{write} takes the bytes that
    came through the reactor before the thread took over (stored at once,
    there are at most a read's worth), L{receive} hands it the rest of the
    body straight from the socket.

    @ivar error: the first exception C{sink.store} or the hasher raised;
        later bytes are still read, so the connection stays framed, and
        dropped.
    """

    paused = False

    def __init__(self, sink, hasher, reactor=None) -> None:
        self.sink = sink
        self.hasher = hasher
        #: Whose worker threads store what came before a thread started,
        #: when none does; without one (tests) L{whenDrained} stores it.
        self.reactor = reactor
        self.error: Optional[BaseException] = None
        self._running: Optional[Deferred] = None
        self._stop = False
        #: Bytes received through the reactor and not stored yet.
        self._early: List[object] = []
        self._earlySize = 0
        #: Whether a thread read part of this body already.
        self._received = False

    def _store(self, data) -> None:
        if self.error is not None:
            return
        try:
            self.sink.store(data)
            if self.hasher is not None:
                self.hasher.update(data)
        except Exception as e:
            self.error = e

    def write(self, data, release: Optional[Callable[[], None]] = None) -> None:
        """
        Bytes of the body that came through the reactor. Before the thread
        starts they are kept for it, so the reactor thread never waits on
        the disk; after it gave the socket back early (a stall), they are
        stored here.
        """
        if self._received or self._earlySize + len(data) > EARLY_LIMIT:
            self._storeEarly()
            self._store(data)
        elif release is not None:
            self._early.append(bytes(data))
        else:
            # A view of the bytes one read brought: kept alive by the view.
            self._early.append(data)
        self._earlySize += len(data)
        if release is not None:
            release()

    def _storeEarly(self) -> None:
        early, self._early = self._early, []
        for data in early:
            self._store(data)

    def whenDrained(self) -> Deferred:
        """
        Fires once every byte received so far is stored and hashed: at once,
        or when the thread has given the socket back, or when a worker has
        stored what came before a thread could start.
        """
        if self._running is not None:
            d: Deferred = Deferred()
            self._running.addBoth(lambda result: (d.callback(None), result)[1])
            return d
        if self._early and self.reactor is not None:
            self._running = deferToThreadPool(self.reactor, workers.poolFor(self.reactor, workers.STORE), self._storeEarly)
            self._running.addBoth(self._earlyStored)
            return self.whenDrained()
        self._storeEarly()
        return succeed(None)

    def _earlyStored(self, result) -> None:
        self._running = None

    def stop(self) -> None:
        """
        The connection is gone: the thread stops at its next wake-up.
        """
        self._stop = True

    def receive(
        self, reactor, sock, length: int, progressed: Callable[[int], None], finished: Callable[[int], None]
    ) -> None:
        """
        Read the next C{length} bytes of C{sock} in a new thread. The caller
        has stopped the reactor reading C{sock}. C{progressed(count)} runs
        in the reactor thread now and then; C{finished(count)} runs there
        once, with the bytes read in all: C{length}, or fewer when the peer
        closed, the socket failed or the transfer stalled (the reactor then
        finds out why on its next read).
        """
        self._running = Deferred()
        self._received = True
        _reading.add(self)
        thread = threading.Thread(
            target=self._run, args=(reactor, sock, length, progressed, finished), name="ftx-body", daemon=True
        )
        thread.start()

    def _run(self, reactor, sock, length: int, progressed, finished) -> None:
        lane = _StoreThread(self._store) if STORE_THREAD else None
        buffer = lane.take() if lane is not None else alignedBuffer(BUFFER_SIZE)
        view = memoryview(buffer)
        remaining = length
        store = self._store
        reports = ThrottledReports(reactor, progressed, REPORT_EVERY, REPORT_SECONDS)
        try:
            # What came through the reactor first goes first.
            self._storeEarly()
            position = self._nextPosition()
            lent = LentSocket(sock, _POLL_SECONDS, _STALL_SECONDS, lambda: self._stop)
            while remaining and not self._stop:
                begin = landing(position)
                got = lent.recvInto(view[begin:], min(remaining, BUFFER_SIZE - begin))
                if not got:
                    break
                position += got
                if lane is None:
                    store(view[begin : begin + got])
                else:
                    lane.give(buffer, got, begin)
                    buffer = lane.take()
                    view = memoryview(buffer)
                remaining -= got
                # Not the last ones: the reactor hears of the whole count
                # when the thread ends.
                reports.add(got, more=bool(remaining))
        except (OSError, ValueError):
            pass
        finally:
            if lane is not None:
                # Everything received is stored before the reactor hears.
                lane.close()
            _reading.discard(self)
            reactor.callFromThread(self._finished, finished, length - remaining)

    def _nextPosition(self) -> int:
        """
        The file position of the next byte the sink stores (0 for a sink
        that is not a file), for where received bytes land in a buffer
        (L{ftx._io.buffers.landing}).
        """
        return getattr(self.sink, "received", 0)

    def receiveBlocks(self, reactor, sock, reader, left: int, progressed: Callable[[int], None], finished) -> None:
        """
        Like L{receive}, for a compressed body (L{ftx._io.threadedblocks}):
        the rest of the current block's payload (C{left} bytes) and the
        blocks after it, followed with C{reader} (a
        L{ftx._io.compressedbody.BlockReader}). C{progressed} counts file
        bytes; C{finished} gets a L{ftx._io.threadedblocks.Outcome}.
        """
        from ftx._io import threadedblocks

        self._running = Deferred()
        self._received = True
        _reading.add(self)

        def run() -> None:
            outcome = None
            lane = _StoreThread(self._store)
            try:
                self._storeEarly()
                lent = LentSocket(sock, _POLL_SECONDS, _STALL_SECONDS, lambda: self._stop)
                outcome = threadedblocks.readBlocks(
                    reactor, lent, reader, left, lane, progressed, lambda: self._stop, self._nextPosition()
                )
            except (OSError, ValueError):
                pass
            finally:
                lane.close()
                _reading.discard(self)
                reactor.callFromThread(self._finished, finished, outcome or threadedblocks.Outcome(left))

        threading.Thread(target=run, name="ftx-body", daemon=True).start()

    def _finished(self, finished: Callable[[int], None], count: int) -> None:
        running, self._running = self._running, None
        try:
            finished(count)
        finally:
            running.callback(None)


class _StoreThread:
    """
    Stores what a reading thread received, in order, in a thread of its
    own, and hands each buffer back for another read. The reader waits for
    a free buffer when the store falls behind (a slow disk, a full pipe):
    at most L{STORE_BUFFERS} buffers are ever in use.
    """

    def __init__(self, store: Callable[[object], None]) -> None:
        self._store = store
        self._free: "queue.SimpleQueue[memoryview]" = queue.SimpleQueue()
        for _ in range(STORE_BUFFERS):
            # Page-aligned: see ftx._io.buffers.
            self._free.put(alignedBuffer(BUFFER_SIZE))
        self._filled: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ftx-body-store", daemon=True)
        self._thread.start()

    def take(self) -> memoryview:
        return self._free.get()

    def give(self, buffer: memoryview, count: int, begin: int = 0) -> None:
        """
        Store C{count} bytes of C{buffer} from C{begin}, then take the
        buffer back for another read.
        """
        self._filled.put((buffer, count, begin))

    def giveItem(self, item) -> None:
        """
        Store C{item} itself (a block to decode), which holds no buffer.
        """
        self._filled.put((None, item, 0))

    def close(self) -> None:
        """
        Wait until everything given is stored.
        """
        self._filled.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._filled.get()
            if item is None:
                return
            buffer, count, begin = item
            if buffer is None:
                self._store(count)
                continue
            self._store(memoryview(buffer)[begin : begin + count])
            self._free.put(buffer)
