"""
Following a download's compressed body (C{compress zstd},
L{ftx.protocol.compression}) on the client; when to ask for compression
is L{ftx.client.compresschoice}.
"""

from __future__ import annotations

from typing import Optional

from ftx._io import directblocks
from ftx._io.compressedbody import BlockReader, BlockSender, DecodingSink
from ftx._io.threadedbody import ThreadedWriter
from ftx.errors import FtxError, IntegrityError
from ftx.protocol import compression, wire

__all__ = ["CompressedDownload", "BlockSender", "blockSender", "decodingSink", "isCompressed"]


class CompressedDownload:
    """
    The blocks of one download's body. It follows them with a
    L{BlockReader}: a raw block's bytes go to the request's C{bodyData} as
    plain bodies do; a zstd block goes whole to its writer, whose worker
    decodes it (L{ftx._io.compressedbody.DecodingSink}), except for a small
    file kept in memory, decoded here (at most 256 KiB).
    """

    def __init__(self, request, length: int) -> None:
        self.request = request
        self.reader = BlockReader(length, request.bodyData, self._block, request.protocol.rawRun)
        if length == 0:
            request.bodyDone()

    def blockLine(self, reply: wire.Reply) -> None:
        self.request.protocol.betweenBlocks = None
        try:
            stored = self.reader.blockLine(reply.fields)
        except FtxError as e:
            self.request.malformed(str(e))
        self.request.protocol._receiveBody(stored, self)

    def trailer(self) -> None:
        self.request.protocol.betweenBlocks = None
        if not self.reader.complete:
            self.request.malformed("the trailer came {} bytes before the body's end".format(self.reader.remaining))

    # The sink of each block's payload (ftx.client.replies.ReplyStream).

    def bodyData(self, data, release=None) -> None:
        self.reader.payload(data, release)

    def bodyProgress(self, count: int) -> None:
        self.request.bodyProgress(count)

    def threadedWriter(self) -> Optional[ThreadedWriter]:
        """
        The writer whose thread is to read the rest of the body
        (L{ftx._io.threadedblocks}), or L{None}: the reactor reads it.
        """
        request = self.request
        if request.blocks is not self or request.deferred.called or request.protocol._active is not request:
            # A body given up (the server's error in place of a block).
            return None
        writer = request.writer
        return writer if isinstance(writer, ThreadedWriter) and not writer.error else None

    def threadEnded(self, outcome) -> None:
        """
        The body thread stopped (L{ftx._io.threadedblocks.Outcome}): count
        what it read, and fail on a block line it could not take.

        @raise ConnectionLost: the body can no longer be framed.
        """
        if outcome.fileBytes:
            self.request.bodyProgress(outcome.fileBytes)
        if outcome.error is not None:
            self.request.malformed(outcome.error)
        if outcome.complete:
            self.request.bodyDone()

    def bodyDone(self) -> None:
        self.reader.blockEnded()
        if self.reader.complete:
            self.request.bodyDone()
        else:
            # The next block line may be read by a thread (ReplyStream).
            self.request.protocol.betweenBlocks = self

    def _block(self, block) -> None:
        request = self.request
        if request.writer is not None:
            request.writer.write(block)
            request.bodyProgress(block.fileBytes)
            return
        if request.small is not None:
            try:
                request.bodyData(block.decode())
                return
            except IntegrityError as e:
                request.small = None
                request._dropFile(e)
        request.bodyProgress(block.fileBytes)


def blockSender(
    transport, f, offset: int, count: int, hasher, progress, reactor, throttle, rawRun: int = compression.MAX_BLOCK
):
    """
    The sender of an upload's compressed body: raw blocks by C{sendfile}
    on a plain socket without a rate limit (L{ftx._io.directblocks}), else
    everything from user space (L{BlockSender}).
    """
    if directblocks.usable(transport, f, count, reactor, throttle):
        return directblocks.DirectBlockSender(f, offset, count, hasher, None, progress, reactor, rawRun=rawRun)
    return BlockSender(f, offset, count, hasher, None, progress, reactor, throttle)


def decodingSink(sink, hasher):
    """
    The sink a download's writer stores a compressed body through.
    """
    return DecodingSink(sink, hasher)


def isCompressed(protocol) -> bool:
    return getattr(protocol, "compression", compression.NONE) == compression.ZSTD
