"""
Reading a compressed body's blocks in the body thread
(L{ftx._io.threadedbody.ThreadedWriter.receiveBlocks}).

A compressed body on random data is mostly raw blocks, 1 MiB of file
bytes behind a short line each. Parsed on the reactor, every block cost a
line, a body hand-off and a worker trip: the plain body's thread read
three times as fast. Here the thread follows the framing itself: a raw
block's bytes go by C{recv_into} straight into the store thread's
buffers, as a plain body's do; a zstd block's payload is read into one
buffer of its size and handed whole to the store thread, which decodes it
(L{ftx._io.compressedbody.DecodingSink}); each block line is peeked
(C{MSG_PEEK}) and only its own bytes are taken, so the thread never reads
past the body's last block and the trailer stays for the reactor.

Every check of the reactor's path holds, because it is the same
L{ftx._io.compressedbody.BlockReader} that parses the lines (the bounds)
and the same sink that decodes (the frame size, the zip bomb).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Callable, Optional

from ftx._io.buffers import alignedBuffer, landing
from ftx._io.reports import ThrottledReports
from ftx.errors import FtxError
from ftx.protocol import compression

__all__ = ["Outcome", "readBlocks", "BlockReceive", "LINE_MAX"]

#: The longest block line read: C{151}, two numbers of at most 8 digits
#: each (L{compression.MAX_RUN}), with room to spare for a peer that
#: pads; a longer one is refused, like any line over the protocol's limit.
LINE_MAX = 64
_BLOCK_PREFIX = b"%d " % compression.BLOCK
#: Report progress to the reactor after this many file bytes or seconds.
REPORT_EVERY = 32 << 20
REPORT_SECONDS = 0.1


class Outcome:
    """
    Where the thread stopped, for the reactor to carry on from.

    @ivar left: payload bytes of the current block not read (0 between
        blocks).
    @ivar fileBytes: file bytes read and not yet reported as progress.
    @ivar complete: the body's last block was read.
    @ivar line: a whole line that is not a block line (the server's error
        in place of a block), or one the reader refused (then with
        C{error}), for the reactor to handle as its own.
    @ivar partial: the first bytes of a line not read to its end.
    @ivar error: why the body cannot be framed any more (a block line out
        of bounds), or L{None}.
    """

    def __init__(self, left: int) -> None:
        self.left = left
        self.fileBytes = 0
        self.complete = False
        self.line: Optional[bytes] = None
        self.partial = b""
        self.error: Optional[str] = None


def _readLine(lent, outcome: Outcome) -> Optional[bytes]:
    """
    The next line, without its end, taking no byte beyond it; L{None} when
    the stream stopped first (C{outcome.partial} holds what came) or the
    line is too long (C{outcome.error}).
    """
    peeked = bytearray(LINE_MAX)
    view = memoryview(peeked)
    line = b""
    while True:
        got = lent.recvInto(view, LINE_MAX - len(line), socket.MSG_PEEK)
        if not got:
            outcome.partial = line
            return None
        seen = line + bytes(view[:got])
        end = seen.find(b"\r\n", max(0, len(line) - 1))
        # Take only this line's bytes (all of them, when its end has not come).
        take = got if end < 0 else end + 2 - len(line)
        taken = lent.recvInto(view, take)
        if taken != take:
            # Peeked bytes are there to take: anything else is a closed socket.
            outcome.partial = line + bytes(view[:taken])
            return None
        if end >= 0:
            return seen[:end]
        line = seen
        if len(line) >= LINE_MAX:
            outcome.error = "a block line longer than {} bytes".format(LINE_MAX)
            return None


def readBlocks(
    reactor, lent, reader, left: int, lane, progressed: Callable[[int], None], stopped, position: int = 0
) -> Outcome:
    """
    Read blocks until the body's last one, in the body thread. C{left}:
    the current block's payload bytes still to come; C{lane}: the store
    thread (L{ftx._io.threadedbody._StoreThread}); C{position}: the file
    position of the next byte to be stored (where raw bytes land in a
    buffer, L{buffers.landing}).
    """
    outcome = Outcome(left)
    try:
        _follow(reactor, lent, reader, left, lane, progressed, stopped, outcome, position)
    except (OSError, ValueError):
        # The connection failed: the reactor finds out on its next read;
        # the outcome says where the thread was.
        pass
    return outcome


def _follow(reactor, lent, reader, left: int, lane, progressed, stopped, outcome: Outcome, position: int) -> None:
    # Raw payloads fill each store buffer across block boundaries (they
    # are the file's bytes in order): a buffer goes to the store thread
    # when it is full, before a zstd block and at the end, so the disk
    # sees the writes a plain body makes, not one short write per block.
    # Its bytes start at C{begin}, where the first lands (buffers.landing).
    buffer = lane.take()
    view = memoryview(buffer)
    size = len(buffer)
    begin = filled = landing(position)
    # What is not handed over when the thread stops stays in the outcome.
    reports = ThrottledReports(reactor, progressed, REPORT_EVERY, REPORT_SECONDS)
    outcome.fileBytes = 0
    try:
        while not stopped():
            if left:
                if reader.raw:
                    got = lent.recvInto(view[filled:], min(left, size - filled))
                    if not got:
                        break
                    filled += got
                    position += got
                    if filled == size:
                        lane.give(buffer, filled - begin, begin)
                        buffer = lane.take()
                        view = memoryview(buffer)
                        begin = filled = landing(position)
                    reports.pending += got
                    outcome.fileBytes = reports.pending
                    left -= got
                    outcome.left = left
                    if left:
                        continue
                else:
                    # At most MAX_BLOCK bytes (the reader bounded the line).
                    payload = bytearray(left)
                    got = 0
                    target = memoryview(payload)
                    while got < left:
                        n = lent.recvInto(target[got:], left - got)
                        if not n:
                            break
                        got += n
                    reader.addPiece(payload if got == left else bytes(payload[:got]))
                    left -= got
                    outcome.left = left
                    if left:
                        break
                block = reader.endBlock()
                if block is not None:
                    if filled > begin:
                        lane.give(buffer, filled - begin, begin)
                        buffer = lane.take()
                        view = memoryview(buffer)
                    lane.giveItem(block)
                    position += block.fileBytes
                    begin = filled = landing(position)
                    reports.pending += block.fileBytes
                reports.add(0)
                outcome.fileBytes = reports.pending
            elif reader.remaining == 0:
                outcome.complete = True
                break
            else:
                line = _readLine(lent, outcome)
                if line is None:
                    break
                if not line.startswith(_BLOCK_PREFIX):
                    outcome.line = line
                    break
                try:
                    left = reader.blockLine(line.decode("ascii", "replace").split(" ")[1:])
                except FtxError as e:
                    # The reader is unchanged: the reactor may read the line again.
                    outcome.error = str(e)
                    outcome.line = line
                    break
                outcome.left = left
    finally:
        # What was received is stored, however the thread stops.
        if filled > begin:
            lane.give(buffer, filled - begin, begin)


class _InlineLane:
    """
    Stores in the reading thread itself, into one reused buffer: the
    server's way (L{ftx._io.threadedreceive}), one thread per upload.
    """

    def __init__(self, store: Callable[[object], None], size: int) -> None:
        self._store = store
        self._buffer = alignedBuffer(size)

    def take(self) -> memoryview:
        return self._buffer

    def give(self, buffer: memoryview, count: int, begin: int = 0) -> None:
        self._store(memoryview(buffer)[begin : begin + count])

    def giveItem(self, item) -> None:
        self._store(item)


class BlockReceive:
    """
    The server's thread for the rest of a compressed upload (the blocks'
    L{ftx._io.compressedbody.BlockReader} and the current block's C{left}
    payload bytes), with the interface of
    L{ftx._io.threadedreceive.ThreadedReceive}: L{finished} fires with an
    L{Outcome} instead of a count.

    @ivar error: the first exception C{store} raised (a block that does not
        decode, a write that failed); later blocks are still read, so the
        body stays framed, and dropped.
    """

    def __init__(
        self, sock, reader, left: int, store: Callable[[object], None], position: Callable[[], int] = lambda: 0
    ) -> None:
        from twisted.internet.defer import Deferred

        # Duplicated here, in the reactor thread, while the socket is
        # certainly open (as ThreadedReceive does).
        self._sock = socket.socket(fileno=os.dup(sock.fileno()))
        self._reader = reader
        self._left = left
        self._store = store
        #: The file position of the next byte to store, asked as the thread
        #: starts (everything before it is stored by then).
        self._position = position
        self._stop = False
        self.error: Optional[BaseException] = None
        self.finished = Deferred()

    def start(self, reactor, progressed: Callable[[int], None]) -> None:
        thread = threading.Thread(target=self._run, args=(reactor, progressed), name="ftx-upload-blocks", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            self._sock.close()
            self.finished.callback(Outcome(self._left))

    def stop(self) -> None:
        self._stop = True

    def _storeItem(self, item) -> None:
        if self.error is None:
            try:
                self._store(item)
            except Exception as e:
                self.error = e

    def _run(self, reactor, progressed) -> None:
        from ftx._io import threadedreceive
        from ftx._io.lentsocket import LentSocket

        outcome = Outcome(self._left)
        try:
            lent = LentSocket(self._sock, threadedreceive._POLL_SECONDS, threadedreceive.HAND_BACK_SECONDS, lambda: self._stop)
            lane = _InlineLane(self._storeItem, threadedreceive.BUFFER_SIZE)
            outcome = readBlocks(
                reactor, lent, self._reader, self._left, lane, progressed, lambda: self._stop, self._position()
            )
        except (OSError, ValueError):
            pass
        finally:
            self._sock.close()
            reactor.callFromThread(self.finished.callback, outcome)
