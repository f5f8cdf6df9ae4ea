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

import socket
from time import monotonic
from typing import Callable, Optional

from ftx.errors import FtxError
from ftx.protocol import compression

__all__ = ["Outcome", "readBlocks", "LINE_MAX"]

#: The longest block line read: C{151}, two numbers of at most 7 digits
#: each (L{compression.MAX_BLOCK}), with room to spare for a peer that
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
        in place of a block), for the reactor to handle as a reply.
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


def readBlocks(reactor, lent, reader, left: int, lane, progressed: Callable[[int], None], stopped) -> Outcome:
    """
    Read blocks until the body's last one, in the body thread. C{left}:
    the current block's payload bytes still to come; C{lane}: the store
    thread (L{ftx._io.threadedbody._StoreThread}).
    """
    outcome = Outcome(left)
    buffer = lane.take()
    view = memoryview(buffer)
    size = len(buffer)
    unreported = 0
    reported = monotonic()
    while not stopped():
        if left:
            if reader.raw:
                got = lent.recvInto(view, min(left, size))
                if not got:
                    break
                lane.give(buffer, got)
                buffer = lane.take()
                view = memoryview(buffer)
                unreported += got
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
                lane.giveItem(block)
                unreported += block.fileBytes
            if unreported >= REPORT_EVERY or monotonic() - reported >= REPORT_SECONDS:
                reactor.callFromThread(progressed, unreported)
                unreported = 0
                reported = monotonic()
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
                outcome.error = str(e)
                break
            outcome.left = left
    outcome.fileBytes = unreported
    return outcome
