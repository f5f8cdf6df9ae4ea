"""
Receiving files: C{put} and C{partial}.

The body arrives in raw mode and is counted byte for byte so that framing
holds even after an error; a L{BackgroundWriter} writes and hashes it off
the reactor thread. The file takes its name only after the trailer's digest
matches (L{ftx.server.partial.Upload.finish}).
"""

from __future__ import annotations

import time
import weakref
from typing import Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, inlineCallbacks, succeed

from ftx._io import bodyreads, compressedbody, internals, threadedblocks, threadedreceive
from ftx._io.background import BackgroundWriter
from ftx.errors import AlreadyExists, BadOffset, BadRequest, Conflict, FtxError, NoSpace, TooLarge
from ftx.protocol import checksums, compression, wire
from ftx.protocol.wire import decodeName, encodeName, nameText, parseDigest, parseNumber
from ftx.server.connection import checkArity
from ftx.server.readgate import COMMAND, DISK_BEHIND, ReadGate
from ftx.server.storage import PUT_MODES, PUT_REPLACE


#: Why reading is paused while a thread of its own reads the body
#: (L{ftx._io.threadedreceive}): the reactor must not read it too.
_BODY_THREAD = "body-thread"

#: Seconds a stalled upload holds its name against a new connection of the
#: same user (C{--upload-takeover}).
TAKEOVER_AFTER = 10.0


class _Receiving:
    """
    The uploads being received, by storage and name, so that a client that
    reconnects can take over the name from its own stalled connection
    instead of waiting out the idle timeout. Reactor thread only.
    """

    def __init__(self) -> None:
        self._byStorage: "weakref.WeakKeyDictionary[object, Dict[bytes, Uploads]]" = weakref.WeakKeyDictionary()

    def add(self, storage, name: bytes, part: "Uploads") -> None:
        self._byStorage.setdefault(storage, {})[name] = part

    def remove(self, storage, name: bytes, part: "Uploads") -> None:
        names = self._byStorage.get(storage, {})
        if names.get(name) is part:
            del names[name]

    def holder(self, storage, name: bytes) -> "Optional[Uploads]":
        return self._byStorage.get(storage, {}).get(name)


_receiving = _Receiving()


class Uploads:
    """
    The receiving part of one server connection: C{put} and C{partial}.

    It talks to the protocol through L{ftx.server.connection.IConnection}
    and pauses reading only through the connection's L{ReadGate}: the
    command's pause is lifted while the body is read, and the disk's
    (L{DISK_BEHIND}) is set and lifted by the upload's L{BackgroundWriter}.
    """

    def __init__(self, connection, gate: ReadGate) -> None:
        self._connection = connection
        self._gate = gate
        self._remaining = 0
        self._writer: Optional[BackgroundWriter] = None
        self._awaitingTrailer = False
        self._done: Optional[Deferred] = None
        self._buffers = bodyreads.sharedPool
        self._directBody: Optional[bodyreads.DirectBody] = None
        #: When a byte of the running upload's body last arrived.
        self._lastByte = 0.0
        self._finished: List[Deferred] = []
        #: The blocks of a compressed body (compress zstd), else L{None}.
        self._blocks: Optional[compressedbody.BlockReader] = None
        #: The thread reading the body now, if one is (L{_readInThread}).
        self._bodyThread: Optional[threadedreceive.ThreadedReceive] = None
        #: The first error a body thread met storing or hashing.
        self._threadError: Optional[BaseException] = None
        self._upload = None

    def commands(self) -> Dict[str, Callable]:
        """
        The verbs this part answers, for the protocol's dispatch table.
        """
        return {"put": self.put, "partial": self.partial}

    @property
    def awaitingTrailer(self) -> bool:
        """
        Whether the next line is an upload's trailer rather than a command.
        """
        return self._awaitingTrailer

    def connectionLost(self) -> None:
        """
        Give the transport's reads back, and end a running C{put}: it
        drains the writer and keeps the partial file for a resume.
        """
        if self._directBody is not None:
            self._directBody.uninstall()
        if self._bodyThread is not None:
            self._bodyThread.stop()
        if self._done is not None:
            d, self._done = self._done, None
            d.errback(ConnectionError("connection lost during upload"))

    @inlineCallbacks
    def partial(self, args):
        checkArity(args, 1, 1, "partial NAME")
        name = decodeName(args[0])
        connection = self._connection
        connection.permit("write", name)
        held, digest = yield connection.hashed(connection.storage.partialUpload, name)
        connection.reply(wire.formatLine(wire.PARTIAL, held, digest))

    @inlineCallbacks
    def put(self, args):
        mode = PUT_REPLACE
        if len(args) in (3, 5):
            # The last field says what to do if the name is taken
            # (docs/protocol.rst, "put modes").
            args, mode = args[:-1], args[-1]
            if mode not in PUT_MODES:
                raise BadRequest("unknown put mode {!r}; expected one of {}".format(mode[:40], ", ".join(PUT_MODES)))
        if len(args) not in (2, 4):
            raise BadRequest("usage: put NAME SIZE [OFFSET PREFIX-SHA1] [replace|new|rename]")
        name = decodeName(args[0])
        size = parseNumber(args[1], "size")
        offset, prefix = 0, None
        if len(args) == 4:
            offset = parseNumber(args[2], "offset")
            prefix = parseDigest(args[3])
            if offset > size:
                raise BadOffset("offset {} is beyond the size {}".format(offset, size))
        connection = self._connection
        connection.permit("write", name)
        limit = connection.policy.maxUploadSize
        if limit is not None and size > limit:
            raise TooLarge("{} bytes is more than this server accepts ({} bytes)".format(size, limit))
        storage = connection.storage
        quota = getattr(storage, "quota", None)
        if quota is not None and not quota.counted:
            yield quota.whenCounted()
        if quota is None or size - offset <= quota.available():
            # (Beyond the quota, the reservation says so in its own words.)
            self._checkRoom(storage, name, size - offset)
        try:
            upload = yield self._begin(storage, name, size, offset, prefix, mode)
        except Conflict as e:
            stale = None if isinstance(e, AlreadyExists) else self._staleHolder(storage, name)
            if stale is None:
                raise
            yield stale.giveUp(connection.peer)
            upload = yield self._begin(storage, name, size, offset, prefix, mode)
        if connection.disconnected:
            upload.abort(keep=self._keepPartial(upload))
            return
        _receiving.add(storage, name, self)
        try:
            yield self._receive(upload, name, size, offset)
        finally:
            _receiving.remove(storage, name, self)
            self._upload = None
            finished, self._finished = self._finished, []
            for d in finished:
                d.callback(None)

    def _begin(self, storage, name: bytes, size: int, offset: int, prefix, mode: str) -> Deferred:
        connection = self._connection
        if offset:
            return connection.hashed(storage.beginUpload, name, size, offset, prefix, connection.checksum, mode)
        return succeed(storage.beginUpload(name, size, 0, None, connection.checksum, mode))

    def _staleHolder(self, storage, name: bytes) -> "Optional[Uploads]":
        """
        The upload part of another connection of this same user that holds
        C{name} and has received nothing for C{--upload-takeover} seconds,
        if any: its client most likely vanished without a close.
        """
        holder = _receiving.holder(storage, name)
        if holder is None or holder is self or holder._connection.disconnected:
            return None
        if _user(holder._connection) != _user(self._connection):
            return None
        after = getattr(self._connection.policy, "uploadTakeover", TAKEOVER_AFTER)
        if after is None or self._connection.reactor.seconds() - holder._lastByte < after:
            return None
        return holder

    def giveUp(self, newcomer: str) -> Deferred:
        """
        A new connection of the same user takes this stalled upload's name:
        cut this connection (its partial file stays for a resume, as for
        any cut upload). Fires once the upload has let go of the name.
        """
        connection = self._connection
        connection.log.info(
            "{peer} upload idle for {seconds:.0f}s taken over by {newcomer}; closing",
            peer=connection.peer, seconds=connection.reactor.seconds() - self._lastByte, newcomer=newcomer,
        )
        d: Deferred = Deferred()
        self._finished.append(d)
        connection.transport.abortConnection()
        return d

    @inlineCallbacks
    def _receive(self, upload, name: bytes, size: int, offset: int):
        connection = self._connection
        self._lastByte = connection.reactor.seconds()
        started = time.monotonic()
        self._remaining = size - offset
        self._blocks = None
        self._threadError = None
        self._upload = upload
        if getattr(connection, "compression", compression.NONE) == compression.ZSTD:
            # Blocks are decoded, stored and hashed in one worker thread.
            self._writer = BackgroundWriter(
                compressedbody.DecodingSink(upload, upload.hasher), connection.reactor, self._diskBehind,
                self._diskCaughtUp,
            )
            self._blocks = compressedbody.BlockReader(
                self._remaining, self._writer.write, self._writer.write,
                rawMax=getattr(connection, "rawRun", compression.MAX_BLOCK),
            )
            self._remaining = 0
        else:
            self._writer = BackgroundWriter(
                upload, connection.reactor, self._diskBehind, self._diskCaughtUp, upload.hasher,
                cheapHash=checksums.cheap(upload.checksum),
            )
        self._done = Deferred()
        connection.reply(wire.formatLine(wire.SEND_BODY, offset))
        self._beginBody()
        try:
            digest, mtime = yield self._done
        except BaseException:
            yield self._drained()
            upload.abort(keep=connection.disconnected and self._keepPartial(upload))
            raise
        yield self._drained()
        error, self._writer = self._writer.error or self._threadError, None
        if error is not None:
            upload.abort(keep=False)
            raise error
        if getattr(upload, "finishesInThread", False):
            # An object store makes the file with network calls (ftx/server/s3).
            stored = yield connection.threaded(self._finish, upload, digest, mtime)
        else:
            stored = self._finish(upload, digest, mtime)
        # Another name than asked when the mode was rename.
        stored = stored or name
        connection.reply(wire.formatLine(wire.STORED, encodeName(stored), size, digest))
        connection.logged("put", name, size - offset, started)

    def _drained(self) -> Deferred:
        """
        Fires once every byte received so far is stored and hashed: by the
        writer's lanes and by a body thread still running.
        """
        writer, thread = self._writer, self._bodyThread
        if thread is None:
            return writer.whenDrained()
        d: Deferred = Deferred()
        thread.finished.addBoth(lambda result: (writer.whenDrained().chainDeferred(d), result)[1])
        return d

    @staticmethod
    def _finish(upload, digest: str, mtime: Optional[int]):
        # An IUpload of another backend written before the mtime feature
        # takes the digest alone: the file then keeps the time of upload.
        if mtime is None:
            return upload.finish(digest)
        return upload.finish(digest, mtime)

    def _checkRoom(self, storage, name: bytes, count: int) -> None:
        """
        Refuse at once an upload whose body cannot fit in the space free
        now, rather than find the disk full after the client sent it. Two
        uploads that each fit alone may still meet a full disk together:
        that race ends as a write's C{ENOSPC} (also a C{507}).
        """
        free = storage.diskSpace()[1]
        if count > free:
            raise NoSpace("not enough space for {}: it needs {} bytes, the server has {} free".format(nameText(name), count, free))

    def _keepPartial(self, upload) -> bool:
        """
        Whether a cut-off upload's partial file stays for a resume: only if
        it holds bytes, no write failed, and partial files are kept at all.
        """
        if self._connection.policy.partialTTL == 0 or upload.received == 0:
            return False
        return (self._writer is None or self._writer.error is None) and self._threadError is None

    def _beginBody(self) -> None:
        """
        Switch to raw mode for the upload body. Reading was paused for the
        command; it resumes here because the body is what comes next.
        """
        if self._remaining == 0:
            self._awaitingTrailer = True
        else:
            self._connection.setRawMode()
        self._gate.resume(COMMAND)
        self._readDirectly()

    def _diskBehind(self) -> None:
        self._gate.pause(DISK_BEHIND)

    def _diskCaughtUp(self) -> None:
        """
        The disk caught up with the body: read more, unless the upload has
        reached its trailer and the command is finishing (then the gate
        still holds the command's pause).
        """
        self._gate.resume(DISK_BEHIND)

    def rawDataReceived(self, data: bytes) -> None:
        self._lastByte = self._connection.reactor.seconds()
        take = min(len(data), self._remaining)
        if take:
            # After a write error the writer drops the rest, but the bytes
            # are still counted so that the body's framing holds; the error
            # is the reply to the trailer.
            self._bodyData(data[:take] if take < len(data) else data)
            self._remaining -= take
        if self._remaining == 0:
            self._bodyEnded()
            self._connection.setLineMode(data[take:])
            if self._blocks is not None and take == len(data):
                # A read that ended with a block: a thread may read on.
                self._readDirectly(blockLine=True)
        else:
            # Only bytes arriving start a body thread: the empty call of a
            # resume after a thread handed back a quiet upload does not.
            self._readDirectly(threadOk=bool(data))

    def _readDirectly(self, threadOk: bool = True, blockLine: bool = False) -> None:
        """
        Once nothing of the body is buffered here, read the rest of it
        in a thread of its own (L{_readInThread}) or straight into reused
        buffers (L{ftx._io.bodyreads}) on a plain socket.
        """
        connection = self._connection
        # lineBufferEmpty, not a count of zero: should a Twisted release drop
        # the buffer attribute, the count says 0 while bytes may be there.
        if (
            (connection.line_mode or self._remaining == 0) and not (blockLine and not self._blocks.complete)
            or connection.inputHeld()
            or not internals.lineBufferEmpty(connection)
            or connection.disconnected
            or connection.rate.limitsReading
        ):
            return
        sock = internals.socketOf(connection.transport)
        if sock is None or (threadOk and self._readInThread(sock)) or self._remaining < bodyreads.DIRECT_MIN:
            return
        self._directBody = bodyreads.DirectBody(
            connection.transport, sock, self._remaining, self._buffers, self._directData, self._directDone,
            clock=connection.reactor,
        )
        self._directBody.install()

    def _readInThread(self, sock) -> bool:
        """
        Hand the rest of a large body to a thread of its own
        (L{ftx._io.threadedreceive}) if a slot is free and the storage can
        store from any thread; returns whether it did. The thread starts
        once the writer has stored what came before, so bytes reach the
        file in order; reading stays paused until the thread is done.
        """
        upload, writer, blocks = self._upload, self._writer, self._blocks
        if (
            self._bodyThread is not None
            or self._remaining + (blocks.remaining if blocks is not None else 0) < threadedreceive.THREAD_MIN
            or not getattr(upload, "storesFromAnyThread", False)
            or writer is None
            or writer.error is not None
            or self._threadError is not None
            or not threadedreceive.slots.take()
        ):
            return False
        try:
            if blocks is not None:
                # Compressed: the thread follows the blocks (ftx._io.threadedblocks).
                store = compressedbody.DecodingSink(upload, upload.hasher).store
                thread = threadedblocks.BlockReceive(sock, blocks, self._remaining, store, self._nextPosition)
            else:
                thread = threadedreceive.ThreadedReceive(
                    sock, self._remaining, upload.store, upload.hasher, self._nextPosition
                )
        except OSError:
            threadedreceive.slots.give()
            return False
        self._bodyThread = thread
        self._gate.pause(_BODY_THREAD)
        thread.finished.addCallback(self._threadFinished, thread)

        def start(_) -> None:
            if self._connection.disconnected:
                thread.stop()
            thread.start(self._connection.reactor, self._threadProgress)

        writer.whenDrained().addCallback(start)
        return True

    def _nextPosition(self) -> int:
        """
        The file position of the next byte the upload stores (where a body
        thread lands what it receives, L{ftx._io.buffers.landing}); asked
        once the writer stored everything before it.
        """
        return getattr(self._upload, "received", 0)

    def _threadProgress(self, count: int) -> None:
        self._lastByte = self._connection.reactor.seconds()
        self._connection.resetTimeout()

    def _threadFinished(self, count: int, thread) -> None:
        """
        The thread read C{count} bytes of the body: all of it, or fewer
        when the client went quiet or the connection failed; what is left
        comes through the reactor again.
        """
        threadedreceive.slots.give()
        self._bodyThread = None
        self._threadError = self._threadError or thread.error
        outcome = count if self._blocks is not None else None
        if outcome is not None:
            # Where the blocks' thread stopped: in a payload, or before a
            # line, the refused one or part of one for line mode to read.
            count = self._remaining - outcome.left + outcome.fileBytes
            rest = outcome.partial if outcome.line is None else outcome.line + b"\r\n" + outcome.partial
        if count:
            self._lastByte = self._connection.reactor.seconds()
        self._remaining = outcome.left if outcome is not None else self._remaining - count
        connection = self._connection
        if connection.disconnected:
            return
        if outcome is not None and outcome.error is not None and outcome.line is None:
            connection.reply(wire.formatError(BadRequest(outcome.error)))
            connection.transport.loseConnection()
            return
        if self._remaining == 0:
            self._bodyEnded()
            connection.setLineMode(rest if outcome is not None else b"")
        elif outcome is not None:
            # In a block's payload (the thread may have started before a line).
            self._awaitingTrailer = False
            connection.setRawMode()
        self._gate.resume(_BODY_THREAD)

    def _directData(self, view, release) -> None:
        self._lastByte = self._connection.reactor.seconds()
        self._connection.resetTimeout()
        self._remaining -= len(view)
        self._bodyData(view, release)

    def _directDone(self) -> None:
        self._directBody = None
        self._bodyEnded()
        self._connection.setLineMode()

    def _bodyData(self, data, release=None) -> None:
        if self._blocks is not None:
            self._blocks.payload(data, release)
        else:
            self._writer.write(data, release)

    def _bodyEnded(self) -> None:
        # The body's end, or a compressed block's: a line comes next.
        if self._blocks is not None:
            self._blocks.blockEnded()
        self._awaitingTrailer = True

    def _blockLine(self, line: bytes) -> None:
        """
        A block line of a compressed body: read its payload next. One that
        does not fit leaves no way to find the next line: the answer is
        C{400} and the server hangs up.
        """
        try:
            self._remaining = self._blocks.blockLine(line.decode("ascii", "replace").split(" ")[1:])
        except FtxError as e:
            connection = self._connection
            connection.reply(wire.formatError(e))
            connection.log.info("{peer} sent a malformed block: {error}; closing", peer=connection.peer, error=e.message)
            connection.transport.loseConnection()
            return
        self._awaitingTrailer = False
        self._connection.setRawMode()
        self._readDirectly()

    def trailerReceived(self, line: bytes) -> None:
        """
        The line after the body: the client's digest of it, and (the
        C{mtime} feature) the modification time the file is to keep.
        Reading stops again until C{put} has answered.
        """
        blocks = self._blocks
        if blocks is not None and line.startswith(b"%d " % compression.BLOCK):
            self._blockLine(line)
            return
        self._awaitingTrailer = False
        self._blocks = None
        self._gate.pause(COMMAND)
        d, self._done = self._done, None
        checksum = self._connection.checksum
        fields = line.split(b" ")
        try:
            if blocks is not None and not blocks.complete:
                raise BadRequest("the body ended {} bytes before its size".format(blocks.remaining))
            word = checksum.encode("ascii")
            if len(fields) not in (2, 3) or fields[0] != word:
                raise BadRequest("expected the trailer '{} DIGEST' after the body".format(checksum))
            digest = parseDigest(fields[1].decode("ascii", "replace"), checksum)
            mtime = parseNumber(fields[2].decode("ascii", "replace"), "mtime") if len(fields) == 3 else None
        except FtxError as e:
            d.errback(e)
            return
        d.callback((digest, mtime))


def _user(connection) -> Optional[str]:
    """
    Who is logged in on C{connection}: only the same user may take over
    an upload.
    """
    account = getattr(connection, "account", None)
    return getattr(account, "name", None)
