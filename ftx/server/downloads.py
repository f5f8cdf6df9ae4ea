"""
Sending files: C{sget}, C{cget} and C{mget}.

A body streams from disk through L{ftx._io.filebody.BodySender}, a pull
producer registered on the transport, so a client that reads slowly holds
back the server instead of filling its memory.
"""

from __future__ import annotations

import time

from twisted.internet.defer import Deferred, inlineCallbacks

from ftx._io.filebody import BodySender
from ftx.errors import FtxError, IntegrityError, NotFound
from ftx.protocol import checksums, wire
from ftx.protocol.wire import decodeName, encodeName, nameText, parseDigest, parseNumber

class DownloadCommands:
    """
    The sending commands of L{ftx.server.protocol.FtxServerProtocol}.
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
        # The prefix is checked by SHA-1; the trailer is the connection's
        # checksum of the whole file, so both hash the same prefix.
        whole = checksums.new(self.checksum) if self.checksum != checksums.SHA1 else None
        f, prefix, size = yield self._threaded(self.storage.prefixHasher, name, offset, whole)
        if prefix.hexdigest() != expected:
            f.close()
            raise IntegrityError(
                "the first {} bytes of {} on the server differ from your copy; download it again".format(offset, nameText(name))
            )
        yield self._sendBody(name, f, size, offset, whole or prefix, "cget")

    @inlineCallbacks
    def do_mget(self, args):
        self._arity(args, 1, 1, "mget MASK")
        mask = decodeName(args[0])
        self._permit("read", mask)
        entries = yield self._threaded(self.storage.listFiles, mask)
        if not entries:
            raise NotFound("no files match {}".format(nameText(mask)))
        count = total = 0
        started = time.monotonic()
        for entry in entries:
            if self.disconnected:
                return
            try:
                f, size = self.storage.openForRead(entry.name)
            except FtxError as e:
                self._reply(wire.formatLine(wire.SKIPPED, encodeName(entry.name), e.token, e.message))
                continue
            if size <= wire.SMALL_BODY and self._backpressure.attached:
                try:
                    size = self._sendSmall(entry.name, f, size)
                finally:
                    f.close()
                if self._writeBlocked:
                    # The client is behind: wait until it has read most of
                    # what is queued, as a body's producer would.
                    yield self._backpressure.whenResumed()
            else:
                yield self._sendBody(entry.name, f, size, 0, None, "mget", logEach=False)
            count += 1
            total += size
        self._reply(wire.formatLine(wire.BATCH_END, count, total))
        # One line for the batch: at thousands of files a second, a line
        # per file would cost the server more than sending them.
        self._log.info(
            "{peer} mget {mask}: {count} files, {size} bytes in {duration:.3f}s",
            peer=self.peer, mask=nameText(mask), count=count, size=total, duration=time.monotonic() - started,
        )

    def _sendSmall(self, name: bytes, f, size: int) -> int:
        """
        Send a small file whole: header, body and trailer in one write, with
        no producer and no trip through the reactor between them. Returns
        the size sent (less than C{size} if the file shrank meanwhile: the
        header announces what is actually sent).
        """
        data, digest = self.storage.readSmall(f, size, self.checksum)
        header = wire.formatLine(wire.BODY_FOLLOWS, encodeName(name), len(data), 0)
        trailer = wire.formatLine(wire.TRAILER, digest)
        self.transport.writeSequence((header, self.delimiter, data, trailer, self.delimiter))
        return len(data)

    def _sendBody(self, name: bytes, f, size: int, offset: int, hasher, verb: str, logEach: bool = True) -> Deferred:
        """
        Send the header, the body from C{offset} and the trailer; fires when
        the trailer is written.
        """
        started = time.monotonic()
        checksum = self.checksum
        known = self.storage.cachedDigest(f, checksum) if hasher is None else None
        version = self.storage.fileVersion(f)
        if hasher is None:
            hasher = checksums.new(checksum)
        self._reply(wire.formatLine(wire.BODY_FOLLOWS, encodeName(name), size, offset))
        sender = BodySender(f, offset, size - offset, hasher, known, self._bodyProgress, self.factory.reactor)
        self._sender = sender
        # The transport holds one producer: the body's, while it streams.
        self._backpressure.detach()

        def sent(digest):
            if known is None:
                try:
                    self.storage.rememberDigest(f, digest, version, checksum)
                except OSError:
                    pass
            self._reply(wire.formatLine(wire.TRAILER, digest))
            if logEach:
                self._logged(verb, name, size - offset, started)

        def cleanup(result):
            self._sender = None
            self._backpressure.attach()
            f.close()
            return result

        return sender.begin(self.transport).addCallback(sent).addBoth(cleanup)
