"""
Receiving files: C{put} and C{partial}.

The body arrives in raw mode and is counted byte for byte so that framing
holds even after an error; a L{BackgroundWriter} writes and hashes it off
the reactor thread. The file takes its name only after the trailer's digest
matches (L{ftx.server.partial.Upload.finish}).
"""

from __future__ import annotations

import time

from twisted.internet.defer import Deferred, inlineCallbacks

from ftx._io import bodyreads, internals
from ftx._io.background import BackgroundWriter
from ftx.errors import BadOffset, BadRequest, FtxError, TooLarge
from ftx.protocol import checksums, wire
from ftx.protocol.wire import decodeName, encodeName, parseDigest, parseNumber


class UploadCommands:
    """
    The receiving commands of L{ftx.server.protocol.FtxServerProtocol}.
    """

    @inlineCallbacks
    def do_partial(self, args):
        self._arity(args, 1, 1, "partial NAME")
        name = decodeName(args[0])
        self._permit("write", name)
        held, digest = yield self._threaded(self.storage.partialUpload, name)
        self._reply(wire.formatLine(wire.PARTIAL, held, digest))

    @inlineCallbacks
    def do_put(self, args):
        if len(args) not in (2, 4):
            raise BadRequest("usage: put NAME SIZE [OFFSET PREFIX-SHA1]")
        name = decodeName(args[0])
        size = parseNumber(args[1], "size")
        offset, prefix = 0, None
        if len(args) == 4:
            offset = parseNumber(args[2], "offset")
            prefix = parseDigest(args[3])
            if offset > size:
                raise BadOffset("offset {} is beyond the size {}".format(offset, size))
        self._permit("write", name)
        limit = self.factory.policy.maxUploadSize
        if limit is not None and size > limit:
            raise TooLarge("{} bytes is more than this server accepts ({} bytes)".format(size, limit))
        quota = getattr(self.storage, "quota", None)
        if quota is not None and not quota.counted:
            yield quota.whenCounted()
        if offset:
            upload = yield self._threaded(self.storage.beginUpload, name, size, offset, prefix, self.checksum)
        else:
            upload = self.storage.beginUpload(name, size, 0, None, self.checksum)
        if self.disconnected:
            upload.abort(keep=self._keepPartial(upload))
            return
        started = time.monotonic()
        self._upload = upload
        self._writer = BackgroundWriter(
            upload, self.factory.reactor, self.pauseProducing, self._writerCaughtUp, upload.hasher,
            cheapHash=checksums.cheap(upload.checksum),
        )
        self._uploadRemaining = size - offset
        self._uploadDone = Deferred()
        self._reply(wire.formatLine(wire.SEND_BODY, offset))
        self._beginBody()
        try:
            digest = yield self._uploadDone
        except BaseException:
            yield self._writer.whenDrained()
            upload.abort(keep=self.disconnected and self._keepPartial(upload))
            raise
        finally:
            self._upload = None
        yield self._writer.whenDrained()
        error, self._writer = self._writer.error, None
        if error is not None:
            upload.abort(keep=False)
            raise error
        upload.finish(digest)
        self._reply(wire.formatLine(wire.STORED, encodeName(name), size, digest))
        self._logged("put", name, size - offset, started)

    def _beginBody(self) -> None:
        """
        Switch to raw mode for the upload body. Reading was paused for the
        command; it resumes here because the body is what comes next.
        """
        self._busy = False
        if self._uploadRemaining == 0:
            self._awaitingTrailer = True
        else:
            self.setRawMode()
        self.resumeProducing()
        self._readDirectly()

    def _writerCaughtUp(self) -> None:
        """
        The disk caught up with the body: read more, unless the upload has
        reached its trailer and the command is finishing.
        """
        if not self._busy and not self.disconnected:
            self.resumeProducing()

    def rawDataReceived(self, data: bytes) -> None:
        take = min(len(data), self._uploadRemaining)
        if take:
            # After a write error the writer drops the rest, but the bytes
            # are still counted so that the body's framing holds; the error
            # is the reply to the trailer.
            self._writer.write(data[:take] if take < len(data) else data)
            self._uploadRemaining -= take
        if self._uploadRemaining == 0:
            self._awaitingTrailer = True
            self.setLineMode(data[take:])
        else:
            self._readDirectly()

    def _readDirectly(self) -> None:
        """
        Once nothing of the body is buffered here, read the rest of it
        straight into reused buffers (L{ftx._io.bodyreads}) on a plain socket.
        """
        if self.line_mode or self._uploadRemaining == 0 or self._pending or not internals.lineBufferEmpty(self) or self.disconnected:
            return
        sock = internals.socketOf(self.transport)
        if sock is None or self._uploadRemaining < bodyreads.DIRECT_MIN:
            return
        self._directBody = bodyreads.DirectBody(
            self.transport, sock, self._uploadRemaining, self._bodyBuffers, self._directData, self._directDone,
            clock=self.factory.reactor,
        )
        self._directBody.install()

    def _directData(self, view, release) -> None:
        self.resetTimeout()
        self._uploadRemaining -= len(view)
        self._writer.write(view, release)

    def _directDone(self) -> None:
        self._directBody = None
        self._awaitingTrailer = True
        self.setLineMode()

    def _trailerReceived(self, line: bytes) -> None:
        self._awaitingTrailer = False
        self.pauseProducing()
        self._busy = True
        d, self._uploadDone = self._uploadDone, None
        fields = line.split(b" ")
        try:
            word = self.checksum.encode("ascii")
            if len(fields) != 2 or fields[0] != word:
                raise BadRequest("expected the trailer '{} DIGEST' after the body".format(self.checksum))
            digest = parseDigest(fields[1].decode("ascii", "replace"), self.checksum)
        except FtxError as e:
            d.errback(e)
            return
        d.callback(digest)
