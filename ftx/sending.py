"""
Sending files: C{sget}, C{cget} and C{mget}.

A body streams from disk through a pull producer registered on the
transport, one chunk each time the transport has room, so a client that
reads slowly holds back the server instead of filling its memory.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Callable, Optional

from twisted.internet import interfaces
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx import wire, zerocopy
from ftx.errors import FtxError, IntegrityError, NotFound
from ftx.storage import READ_CHUNK
from ftx.wire import decodeName, encodeName, nameText, parseDigest, parseNumber

# Chunk read from disk per resumeProducing on the copying path (TLS, or a
# small body whose digest is unknown). 16 KiB (FileSender's default) costs
# about 2.4 s of CPU per GiB here; 256 KiB brings that under 1 s while
# keeping what one stalled connection can pin in memory small.
SEND_CHUNK = 256 * 1024

# A body at least this long whose digest is not cached is hashed in a
# thread while the kernel sends it; a shorter one costs less to read and
# hash on the spot than a trip through the thread pool.
HASH_ASIDE_MIN = 1 << 20


class AsideHasher:
    """
    Finishes a SHA-1 over C{count} bytes of a file from C{offset}, in a
    thread, while the same bytes go out by C{sendfile}. It reads through
    its own duplicate of the descriptor, so closing the sender's file
    cannot make it read another file that reused the number.
    """

    def __init__(self, fd: int, offset: int, count: int, hasher) -> None:
        self._fd = os.dup(fd)
        self._offset = offset
        self._count = count
        self._hasher = hasher
        self._cancelled = False

    def start(self, reactor) -> Deferred:
        return deferToThreadPool(reactor, reactor.getThreadPool(), self._run)

    def cancel(self) -> None:
        self._cancelled = True

    def _run(self) -> str:
        try:
            buffer = bytearray(READ_CHUNK)
            view = memoryview(buffer)
            position, end = self._offset, self._offset + self._count
            while position < end and not self._cancelled:
                got = os.preadv(self._fd, [view[: min(READ_CHUNK, end - position)]], position)
                if not got:
                    raise IntegrityError("the file shrank while it was being sent")
                self._hasher.update(view[:got])
                position += got
            return self._hasher.hexdigest()
        finally:
            os.close(self._fd)


@implementer(interfaces.IPullProducer)
class BodySender:
    """
    Streams C{count} bytes of an open file from C{offset} to a transport,
    each time the transport has room, and fires with the SHA-1 the trailer
    needs. Like Twisted's C{FileSender}, but bounded by a byte count.

    On a plain socket the bytes go by C{sendfile} (L{ftx.zerocopy}) and the
    digest comes from the cache or from an L{AsideHasher} on another core;
    otherwise they are read, hashed and written in L{SEND_CHUNK} pieces.
    Either way a client that stops reading stops the sending, and nothing
    but the socket's own buffer holds the file's bytes.
    """

    def __init__(
        self, f, offset: int, count: int, hasher, knownDigest: Optional[str], progress: Callable[[int], None], reactor=None
    ):
        self.file = f
        self.position = offset
        self.remaining = count
        self.hasher = hasher
        self.knownDigest = knownDigest
        self.progress = progress
        self.reactor = reactor
        self.deferred: Deferred = Deferred()
        self.transport = None
        self._socket = None
        self._aside: Optional[AsideHasher] = None
        self._asideDigest: Optional[Deferred] = None

    def begin(self, transport) -> Deferred:
        self.transport = transport
        d = self.deferred
        sock = zerocopy.socketOf(transport)
        if sock is not None and self.reactor is not None and (
            self.knownDigest is not None or self.remaining >= HASH_ASIDE_MIN
        ):
            self._socket = sock
            if self.knownDigest is None:
                self._aside = AsideHasher(self.file.fileno(), self.position, self.remaining, self.hasher)
                self._asideDigest = self._aside.start(self.reactor)
        else:
            self.file.seek(self.position)
        # A pull producer is asked for its first chunk at once, so a short
        # body may be finished before registerProducer returns.
        transport.registerProducer(self, False)
        return d

    def resumeProducing(self) -> None:
        if self.transport is None:
            return
        if self.remaining <= 0:
            self._finish(None)
            return
        if self._socket is not None:
            self._sendDirect()
        else:
            self._sendCopy()

    def _sendDirect(self) -> None:
        transport = self.transport
        if not zerocopy.transportIdle(transport):
            # The header line is still queued; the transport asks again
            # once it has written it.
            return
        try:
            sent = zerocopy.sendSome(self._socket, self.file.fileno(), self.position, self.remaining)
        except EOFError:
            self._finish(Failure(IntegrityError("the file shrank while it was being sent")))
            return
        except OSError as e:
            self._finish(Failure(ConnectionError("sending failed: {}".format(e.strerror))))
            return
        self.position += sent
        self.remaining -= sent
        if sent:
            self.progress(sent)
        if self.remaining <= 0:
            self._finish(None)
        else:
            # Either the socket is full or this turn is used up: an empty
            # write pass calls resumeProducing again once the socket can
            # take more, after the other connections had their turn.
            transport.startWriting()

    def _sendCopy(self) -> None:
        try:
            chunk = self.file.read(min(SEND_CHUNK, self.remaining))
        except OSError as e:
            self._finish(Failure(e))
            return
        if not chunk:
            self._finish(Failure(IntegrityError("the file shrank while it was being sent")))
            return
        if self.knownDigest is None:
            self.hasher.update(chunk)
        self.remaining -= len(chunk)
        self.position += len(chunk)
        self.transport.write(chunk)
        self.progress(len(chunk))

    def stopProducing(self) -> None:
        self._finish(Failure(ConnectionError("connection lost while sending")))

    def _finish(self, failure: Optional[Failure]) -> None:
        if self.transport is None:
            return
        self.transport.unregisterProducer()
        self.transport = None
        d, self.deferred = self.deferred, None
        if failure is not None:
            if self._aside is not None:
                self._aside.cancel()
                self._asideDigest.addErrback(lambda _: None)
            d.errback(failure)
        elif self._asideDigest is not None:
            self._asideDigest.chainDeferred(d)
        else:
            d.callback(self.knownDigest or self.hasher.hexdigest())


@implementer(interfaces.IHandshakeListener)


class DownloadCommands:
    """
    The sending commands of L{ftx.server.FtxServerProtocol}.
    """

    @inlineCallbacks
    def do_sget(self, args):
        self._arity(args, 1, 1, "sget NAME")
        name = decodeName(args[0])
        self._permit("read", name)
        f, size = self.storage.openForRead(name)
        yield self._sendBody(name, f, size, 0, None, "sget")

    @inlineCallbacks
    def do_cget(self, args):
        self._arity(args, 3, 3, "cget NAME OFFSET SHA1")
        name = decodeName(args[0])
        offset = parseNumber(args[1], "offset")
        expected = parseDigest(args[2])
        self._permit("read", name)
        f, hasher, size = yield self._threaded(self.storage.prefixHasher, name, offset)
        if hasher.hexdigest() != expected:
            f.close()
            raise IntegrityError(
                "the first {} bytes of {} on the server differ from your copy; download it again".format(offset, nameText(name))
            )
        yield self._sendBody(name, f, size, offset, hasher, "cget")

    @inlineCallbacks
    def do_mget(self, args):
        self._arity(args, 1, 1, "mget MASK")
        mask = decodeName(args[0])
        self._permit("read", mask)
        entries = yield self._threaded(self.storage.listFiles, mask)
        if not entries:
            raise NotFound("no files match {}".format(nameText(mask)))
        count = total = 0
        for entry in entries:
            if self.disconnected:
                return
            try:
                f, size = self.storage.openForRead(entry.name)
            except FtxError as e:
                self._reply(wire.formatLine(wire.SKIPPED, encodeName(entry.name), e.token, e.message))
                continue
            yield self._sendBody(entry.name, f, size, 0, None, "mget")
            count += 1
            total += size
        self._reply(wire.formatLine(wire.BATCH_END, count, total))

    def _sendBody(self, name: bytes, f, size: int, offset: int, hasher, verb: str) -> Deferred:
        """
        Send the header, the body from C{offset} and the trailer; fires when
        the trailer is written.
        """
        started = time.monotonic()
        known = self.storage.cachedDigest(f) if hasher is None else None
        version = self.storage.fileVersion(f)
        if hasher is None:
            hasher = hashlib.sha1()
        self._reply(wire.formatLine(wire.BODY_FOLLOWS, encodeName(name), size, offset))
        sender = BodySender(f, offset, size - offset, hasher, known, self._bodyProgress, self.factory.reactor)
        self._sender = sender
        # The transport holds one producer: the body's, while it streams.
        self._backpressure.detach()

        def sent(digest):
            if known is None:
                try:
                    self.storage.rememberDigest(f, digest, version)
                except OSError:
                    pass
            self._reply(wire.formatLine(wire.TRAILER, digest))
            self._logged(verb, name, size - offset, started)

        def cleanup(result):
            self._sender = None
            self._backpressure.attach()
            f.close()
            return result

        return sender.begin(self.transport).addCallback(sent).addBoth(cleanup)
