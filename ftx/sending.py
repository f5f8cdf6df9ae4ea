"""
Sending files: C{sget}, C{cget} and C{mget}.

A body streams from disk through a pull producer registered on the
transport, one chunk each time the transport has room, so a client that
reads slowly holds back the server instead of filling its memory.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable, Optional

from twisted.internet import interfaces
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx import wire
from ftx.errors import FtxError, IntegrityError, NotFound
from ftx.wire import decodeName, encodeName, nameText, parseDigest, parseNumber

# Chunk read from disk per resumeProducing. 16 KiB (FileSender's default)
# costs about 2.4 s of CPU per GiB here; 256 KiB brings that under 1 s while
# keeping what one stalled connection can pin in memory small.
SEND_CHUNK = 256 * 1024


@implementer(interfaces.IPullProducer)
class BodySender:
    """
    Streams C{count} bytes of an open file to a transport, one chunk each
    time the transport asks for more, hashing as it goes. Like Twisted's
    C{FileSender}, but bounded by a byte count and carrying the SHA-1 that
    the trailer needs.
    """

    def __init__(self, f, count: int, hasher, knownDigest: Optional[str], progress: Callable[[int], None]):
        self.file = f
        self.remaining = count
        self.hasher = hasher
        self.knownDigest = knownDigest
        self.progress = progress
        self.deferred: Deferred = Deferred()
        self.transport = None

    def begin(self, transport) -> Deferred:
        self.transport = transport
        d = self.deferred
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
        if failure is None:
            d.callback(self.knownDigest or self.hasher.hexdigest())
        else:
            d.errback(failure)


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
            f.seek(0)
        self._reply(wire.formatLine(wire.BODY_FOLLOWS, encodeName(name), size, offset))
        sender = BodySender(f, size - offset, hasher, known, self._bodyProgress)
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
