"""
The client's side of the reply stream: reply lines and the bodies between
them, split apart without copying the bodies.

L{ReplyStream} is a mixin of L{ftx.client.protocol.FtxClientProtocol}, kept apart
because it is the hot path of every download and has its own reasons:
LineReceiver's buffer handling is replaced, and large bodies are read
straight into reused buffers (L{ftx._io.bodyreads}).
"""

from __future__ import annotations

from typing import Optional

from ftx._io import bodyreads, internals
from ftx._io.threadedbody import ThreadedWriter
from ftx.errors import FtxError

__all__ = ["ReplyStream"]


class ReplyStream:
    """
    Splits received bytes into lines, passed to C{lineReceived}, and body
    bytes, passed to the sink given to L{_receiveBody}. The host class is a
    LineReceiver (for C{paused}, C{delimiter}, C{MAX_LENGTH}) with
    C{_lost} and C{_protocolError}.
    """

    def __init__(self) -> None:
        self._bodyRemaining = 0
        self._bodySink = None
        self._bodyBuffers = bodyreads.sharedPool
        self._directBody: Optional[bodyreads.DirectBody] = None
        #: The writer whose thread reads the body now (L{ftx._io.threadedbody}).
        self._threadedBody: Optional[ThreadedWriter] = None
        #: Bytes that thread reported as progress so far.
        self._threadReported = 0
        #: A compressed body waiting for its next block line
        #: (L{ftx.client.compressed.CompressedDownload}), which a thread
        #: may read from there.
        self.betweenBlocks = None
        self._unparsed = b""
        self._parsing = False
        self._again = False
        #: C{take(data, position)}, of the request being answered: takes
        #: whole lines at once and returns where it stopped (a listing's).
        self._lineTaker = None

    def dataReceived(self, data: bytes) -> None:
        """
        Split what arrives into reply lines and body bytes.

        LineReceiver copies the rest of its buffer for every line it splits
        off and every switch between modes; with a 1 MiB read holding a
        dozen small files of an C{mget}, that made receiving quadratic.
        Here a read is walked with an offset, lines are the only copies,
        and body bytes go on as views of the bytes that arrived.
        """
        if self._parsing:
            # Called again from inside a handler (resumeProducing, with no
            # bytes): the loop below carries on once the handler returns.
            self._unparsed += data
            self._again = True
            return
        if self._unparsed:
            data = self._unparsed + data
            self._unparsed = b""
        position = 0
        self._parsing = True
        try:
            while position < len(data):
                self._again = False
                position = self._parse(data, position)
                if not self._again or self.paused or self._lost:
                    break
        finally:
            self._parsing = False
        rest = data[position:] if position < len(data) else b""
        self._unparsed = rest + self._unparsed if self._unparsed else rest
        if (self._bodySink is not None or self.betweenBlocks is not None) and not self._unparsed:
            self._readDirectly()

    def _parse(self, data: bytes, position: int) -> int:
        """
        Handle complete lines and body bytes of C{data} from C{position}
        until it runs out or the protocol is paused; return how far it got.
        """
        end = len(data)
        view = memoryview(data)
        while position < end and not self.paused and not self._lost:
            sink = self._bodySink
            if sink is not None:
                take = min(end - position, self._bodyRemaining)
                piece = data if take == end else view[position : position + take]
                position += take
                self._bodyRemaining -= take
                if self._bodyRemaining == 0:
                    self._bodySink = None
                sink.bodyData(piece)
                if self._bodySink is None and self._bodyRemaining == 0:
                    sink.bodyDone()
                continue
            if self._lineTaker is not None:
                taken = self._lineTaker(data, position)
                if taken != position:
                    position = taken
                    continue
            newline = data.find(self.delimiter, position)
            if newline < 0:
                if end - position > self.MAX_LENGTH:
                    self._protocolError(FtxError("the server sent a line longer than {} bytes".format(self.MAX_LENGTH)))
                    return end
                break
            if newline - position > self.MAX_LENGTH:
                self._protocolError(FtxError("the server sent a line longer than {} bytes".format(self.MAX_LENGTH)))
                return end
            line = data[position:newline]
            position = newline + 2
            self.lineReceived(line)
        return position

    def _receiveBody(self, length: int, sink) -> None:
        self._bodyRemaining = length
        if length == 0:
            sink.bodyDone()
        else:
            self._bodySink = sink

    def _readDirectly(self) -> None:
        """
        Read the rest of a large body into reused buffers
        (L{ftx._io.bodyreads}), on a plain socket; nothing is buffered here at
        this point.
        """
        sock = internals.socketOf(self.transport)
        blocks = self._bodySink if self._bodySink is not None else self.betweenBlocks
        threadedBlocks = getattr(blocks, "threadedWriter", None)
        blocksWriter = threadedBlocks() if threadedBlocks is not None and self._threadedBody is None else None
        if sock is not None and blocksWriter is not None and self._directBody is None:
            # A compressed body: the thread follows its blocks to the end.
            self._threadedBody = blocksWriter
            self._bodySink, self.betweenBlocks = blocks, None
            self.transport.stopReading()
            blocksWriter.receiveBlocks(
                self.reactor, sock, blocks.reader, self._bodyRemaining, self._threadProgress, self._blocksDone
            )
            return
        if (
            self._bodySink is None
            or sock is None
            or self._bodyRemaining < bodyreads.DIRECT_MIN
            or self._directBody is not None
            or self._threadedBody is not None
        ):
            return
        writer = getattr(self._bodySink, "writer", None)
        if isinstance(writer, ThreadedWriter) and not writer.error:
            # The reactor stops reading the socket until the thread has
            # read the body's bytes, and no longer; see resumeProducing.
            self._threadedBody = writer
            self._threadReported = 0
            self.transport.stopReading()
            writer.receive(self.reactor, sock, self._bodyRemaining, self._threadProgress, self._threadDone)
            return
        self._directBody = bodyreads.DirectBody(
            self.transport, sock, self._bodyRemaining, self._bodyBuffers, self._directData, self._directDone,
            clock=self.reactor,
        )
        self._directBody.install()

    def _threadProgress(self, count: int) -> None:
        self._threadReported += count
        if self._bodySink is not None:
            self._bodySink.bodyProgress(count)

    def _threadDone(self, count: int) -> None:
        """
        The thread read C{count} bytes of the body: all of it, or less when
        it stopped early (the peer closed, a stall); what is left, if the
        connection is still there, comes through the ordinary path.
        """
        self._threadedBody = None
        if self._lost or self._bodySink is None:
            return
        self._bodyRemaining -= count
        sink = self._bodySink
        # C{count} is all the thread read; what it reported on the way was
        # counted already.
        unreported, self._threadReported = count - self._threadReported, 0
        if unreported:
            sink.bodyProgress(unreported)
        if self._bodyRemaining == 0:
            self._bodySink = None
            sink.bodyDone()
        if not self.paused and not self._lost:
            self.transport.startReading()

    def _blocksDone(self, outcome) -> None:
        """
        The thread following a compressed body's blocks stopped: at the
        body's end, or early (the peer closed, a stall, a line that is not
        a block's); the reactor carries on from where it stopped
        (L{ftx._io.threadedblocks.Outcome}).
        """
        self._threadedBody = None
        if self._lost or self._bodySink is None:
            return
        sink = self._bodySink
        self._bodyRemaining = outcome.left
        if not outcome.left:
            self._bodySink = None
            if not outcome.complete:
                self.betweenBlocks = sink
        try:
            sink.threadEnded(outcome)
        except FtxError as e:
            self._protocolError(e)
            return
        self._unparsed = outcome.partial + self._unparsed
        if outcome.line is not None:
            self.lineReceived(outcome.line)
        if not self.paused and not self._lost:
            self.transport.startReading()

    def resumeProducing(self) -> None:
        # While a thread reads the body the reactor must not read the
        # socket too; reading starts again when the thread is done.
        if self._threadedBody is not None:
            self.paused = False
            return
        super().resumeProducing()

    def _directData(self, view, release) -> None:
        self._bodyRemaining -= len(view)
        self._bodySink.bodyData(view, release)

    def _directDone(self) -> None:
        self._directBody = None
        sink, self._bodySink = self._bodySink, None
        sink.bodyDone()
