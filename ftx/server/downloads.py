"""
Sending files: C{sget}, C{cget} and C{mget}.

A body streams from disk through L{ftx._io.filebody.BodySender}, a pull
producer registered on the transport, so a client that reads slowly holds
back the server instead of filling its memory.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import deferLater

from ftx._io import compressedbody, directblocks
from ftx._io.filebody import BodySender
from ftx.errors import BadOffset, FtxError, IntegrityError, NotFound
from ftx.protocol import checksums, compression, wire
from ftx.protocol.wire import decodeName, encodeName, nameText, parseDigest, parseNumber
from ftx.server.connection import checkArity
from ftx.server.limits import WriteBackpressure


def refuseBeyondEnd(storage, name: bytes, length: int) -> None:
    """
    Refuse a prefix longer than the file before it waits for a turn in the
    hash lane: opening and measuring a file is cheap, reading it is not.
    The storage checks again when it reads (the file may change).

    @raise BadOffset: C{length} is beyond the end of the file.
    """
    f, size = storage.openForRead(name)
    f.close()
    if length > size:
        raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), size, length))


class SmallGetsLog:
    """
    The small files C{sget} sends whole: how many in this turn of the
    reactor, and their log. The first of a burst is logged as any other
    transfer, the others in one line for up to L{perLine} of them, naming
    each (percent-encoded, as on the wire), when the burst ends. A mirror's
    re-run pipelines a hundred C{sget}s of a few KiB, and formatting and
    writing a line a file was a quarter of the server's work for them.
    """

    #: Files sent whole in one turn, at most; the next waits for the next
    #: turn. What is written leaves between two turns: the client stores
    #: the first files while the server reads the next ones (all of the
    #: pipelined ones in one turn, the first byte left 12 ms after the
    #: commands came), and other connections are served in between.
    perTurn = 4
    #: Files named in one line, at most.
    perLine = 64

    def __init__(self, connection) -> None:
        self._connection = connection
        #: Files sent this turn; whether the turn's end is due to be
        #: looked at; whether the first of a burst was logged.
        self._count = 0
        self._due = False
        self._inBurst = False
        #: The files sent and not logged yet.
        self._names: list = []
        self._size = 0
        self._started = 0.0

    @property
    def full(self) -> bool:
        return self._count >= self.perTurn

    def add(self, name: bytes, size: int, started: float) -> None:
        self._count += 1
        self._endOfTurn()
        if not self._inBurst:
            self._inBurst = True
            self._connection.logged("sget", name, size, started)
            return
        if not self._names:
            self._started = started
        self._names.append(name)
        self._size += size
        if len(self._names) >= self.perLine:
            self.log()

    def _endOfTurn(self) -> None:
        if not self._due:
            self._due = True
            self._connection.reactor.callLater(0, self._turnEnded)

    def _turnEnded(self) -> None:
        self._due = False
        full, self._count = self.full, 0
        if full:
            # A command waits for the next turn: the burst goes on.
            self._endOfTurn()
            return
        self.log()
        self._inBurst = False

    def log(self) -> None:
        """
        Log the files sent and not logged yet (also before a body that
        streams, so that the log keeps the order of the answers).
        """
        names, self._names = self._names, []
        size, self._size = self._size, 0
        connection = self._connection
        if len(names) == 1:
            connection.logged("sget", names[0], size, self._started)
        elif names:
            connection.log.info(
                "{peer} sget {count} files, {size} bytes in {duration:.3f}s: ok: {paths}",
                peer=connection.peer, count=len(names), size=size, duration=time.monotonic() - self._started,
                paths=" ".join(encodeName(name) for name in names),
            )


class Downloads:
    """
    The sending part of one server connection: C{sget}, C{cget} and
    C{mget}.

    It talks to the protocol through L{ftx.server.connection.IConnection}.
    While a body streams, the body's L{BodySender} is the transport's
    producer and the connection's L{WriteBackpressure} steps aside; small
    C{mget} files go out whole and wait on that backpressure instead.

    @ivar sender: the body being streamed now, if any.
    """

    def __init__(self, connection, backpressure: WriteBackpressure) -> None:
        self._connection = connection
        self._backpressure = backpressure
        self.sender: Optional[BodySender] = None
        self._smallSent = SmallGetsLog(connection)

    def commands(self) -> Dict[str, Callable]:
        """
        The verbs this part answers, for the protocol's dispatch table.
        """
        return {"sget": self.sget, "cget": self.cget, "mget": self.mget}

    @property
    def sending(self) -> bool:
        """
        Whether a body is streaming to the client now (no reply line can be
        sent until it ends).
        """
        return self.sender is not None

    def connectionLost(self) -> None:
        self._smallSent.log()
        if self.sender is not None and self.sender.transport is not None:
            self.sender.stopProducing()

    @inlineCallbacks
    def sget(self, args):
        checkArity(args, 1, 1, "sget NAME")
        name = decodeName(args[0])
        connection = self._connection
        connection.permit("read", name)
        if self._smallSent.full and connection.inputHeld():
            # This turn's share is sent and more commands wait: what is
            # written leaves between two turns, and other connections are
            # served in between.
            yield deferLater(connection.reactor, 0, lambda: None)
            if connection.disconnected:
                return
        f, size = yield self._open(name)
        if size <= wire.SMALL_BODY and self._backpressure.attached and not connection.rate.sending.limited:
            # Whole, in one write, as mget's small files: a mirror's re-run
            # asks for a hundred changed files of a few KiB, pipelined, and
            # a streamed body's producer, its trip through the reactor and
            # its Deferreds cost the server more than the bytes. (Under a
            # rate limit, the body streams at the rate.)
            started = time.monotonic()
            try:
                size = self._sendSmall(name, f, size)
            finally:
                f.close()
            self._smallSent.add(name, size, started)
            return
        self._smallSent.log()
        yield self._sendBody(name, f, size, 0, None, "sget")

    @inlineCallbacks
    def cget(self, args):
        checkArity(args, 3, 3, "cget NAME OFFSET SHA1")
        name = decodeName(args[0])
        offset = parseNumber(args[1], "offset")
        expected = parseDigest(args[2])
        connection = self._connection
        connection.permit("read", name)
        self._smallSent.log()
        # The prefix is checked by SHA-1; the trailer is the connection's
        # checksum of the whole file, so both hash the same prefix.
        checksum = connection.checksum
        whole = checksums.new(checksum) if checksum != checksums.SHA1 else None
        if getattr(connection.storage, "opensInThread", False):
            yield connection.threaded(refuseBeyondEnd, connection.storage, name, offset)
        else:
            refuseBeyondEnd(connection.storage, name, offset)
        f, prefix, size = yield connection.hashed(connection.storage.prefixHasher, name, offset, whole)
        if prefix.hexdigest() != expected:
            f.close()
            raise IntegrityError(
                "the first {} bytes of {} on the server differ from your copy; download it again".format(offset, nameText(name))
            )
        yield self._sendBody(name, f, size, offset, whole or prefix, "cget")

    @inlineCallbacks
    def mget(self, args):
        checkArity(args, 1, 1, "mget MASK")
        mask = decodeName(args[0])
        connection = self._connection
        connection.permit("read", mask)
        self._smallSent.log()
        entries = yield connection.threaded(connection.storage.listFiles, mask)
        if not entries:
            raise NotFound("no files match {}".format(nameText(mask)))
        count = total = 0
        started = time.monotonic()
        for entry in entries:
            if connection.disconnected:
                return
            try:
                f, size = yield self._open(entry.name)
            except FtxError as e:
                connection.reply(wire.formatLine(wire.SKIPPED, encodeName(entry.name), e.token, e.message))
                continue
            if size <= wire.SMALL_BODY and self._backpressure.attached:
                try:
                    size = self._sendSmall(entry.name, f, size)
                finally:
                    f.close()
                if connection.rate.sending.limited:
                    yield connection.rate.afterSending(size)
                if self._backpressure.blocked:
                    # The client is behind: wait until it has read most of
                    # what is queued, as a body's producer would.
                    yield self._backpressure.whenResumed()
            else:
                yield self._sendBody(entry.name, f, size, 0, None, "mget", logEach=False)
            count += 1
            total += size
        connection.reply(wire.formatLine(wire.BATCH_END, count, total))
        # One line for the batch: at thousands of files a second, a line
        # per file would cost the server more than sending them.
        connection.log.info(
            "{peer} mget {mask}: {count} files, {size} bytes in {duration:.3f}s",
            peer=connection.peer, mask=nameText(mask), count=count, size=total, duration=time.monotonic() - started,
        )

    def _open(self, name: bytes) -> Deferred:
        """
        C{storage.openForRead(name)}, in a worker thread for a storage
        whose open waits for the network (an object store: C{opensInThread}),
        so that the event loop never does.
        """
        storage = self._connection.storage
        if getattr(storage, "opensInThread", False):
            return self._connection.threaded(storage.openForRead, name)
        return succeed(storage.openForRead(name))

    def _sendSmall(self, name: bytes, f, size: int) -> int:
        """
        Send a small file whole: header, body and trailer in one write, with
        no producer and no trip through the reactor between them. Returns
        the size sent (less than C{size} if the file shrank meanwhile: the
        header announces what is actually sent).
        """
        connection = self._connection
        data, digest = connection.storage.readSmall(f, size, connection.checksum)
        header = wire.formatLine(wire.BODY_FOLLOWS, encodeName(name), len(data), 0)
        trailer = wire.formatLine(wire.TRAILER, digest)
        end = wire.LINE_END
        body = [data] if not self._compressed else compressedbody.encodeWhole(data)
        connection.transport.writeSequence([header, end] + body + [trailer, end])
        return len(data)

    def _sendBody(self, name: bytes, f, size: int, offset: int, hasher, verb: str, logEach: bool = True) -> Deferred:
        """
        Send the header, the body from C{offset} and the trailer; fires when
        the trailer is written.
        """
        connection = self._connection
        storage = connection.storage
        started = time.monotonic()
        checksum = connection.checksum
        known = storage.cachedDigest(f, checksum) if hasher is None else None
        version = storage.fileVersion(f)
        if hasher is None:
            hasher = checksums.new(checksum)
        connection.reply(wire.formatLine(wire.BODY_FOLLOWS, encodeName(name), size, offset))
        # Blocks when the client asked for compression (compress zstd); raw
        # ones by sendfile where the socket allows (ftx._io.directblocks).
        throttle = connection.rate.sending
        if self._compressed and directblocks.usable(connection.transport, f, size - offset, connection.reactor, throttle):
            sender = directblocks.DirectBlockSender(
                f, offset, size - offset, hasher, known, self._bodyProgress, connection.reactor,
                rawRun=getattr(connection, "rawRun", compression.MAX_BLOCK),
            )
        else:
            sender = (compressedbody.BlockSender if self._compressed else BodySender)(
                f, offset, size - offset, hasher, known, self._bodyProgress, connection.reactor, throttle
            )
        self.sender = sender
        # The transport holds one producer: the body's, while it streams.
        self._backpressure.detach()

        def sent(digest):
            if known is None:
                try:
                    storage.rememberDigest(f, digest, version, checksum)
                except OSError:
                    pass
            connection.reply(wire.formatLine(wire.TRAILER, digest))
            if logEach:
                connection.logged(verb, name, size - offset, started)

        def lost(failure):
            if not failure.check(ConnectionError):
                # The body cannot be finished (the file shrank under it):
                # the client could not find where it ends, so it goes.
                connection.transport.abortConnection()
                return failure
            # The client closed, reset or was killed mid-body: its doing,
            # not a server fault (the protocol says so at info level).
            connection.logged(verb, name, size - offset - sender.remaining, started, "connection lost")
            return failure

        def cleanup(result):
            self.sender = None
            self._backpressure.attach()
            f.close()
            return result

        return sender.begin(connection.transport).addCallbacks(sent, lost).addBoth(cleanup)

    @property
    def _compressed(self) -> bool:
        return getattr(self._connection, "compression", compression.NONE) == compression.ZSTD

    def _bodyProgress(self, count: int) -> None:
        # A body that moves is not idle; one the client stopped reading is.
        self._connection.resetTimeout()
