"""
Sending and receiving compressed bodies (L{ftx.protocol.compression}).

Both ends use these for both directions: the server for downloads and the
client for uploads send with L{BlockSender}; the receiver splits blocks
with L{BlockReader} on the reactor thread (cheap: a line and a count) and
decodes them with L{DecodingSink} in the worker thread that stores the
file, so neither compressing nor decompressing a megabyte ever runs on the
reactor thread. Memory stays bounded: the sender holds at most
L{AHEAD} blocks beyond what the transport buffers, and the receiver's
blocks wait in a L{ftx._io.background.BackgroundWriter}, which pauses the
connection above its high-water mark.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Callable, Deque, List, Optional

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx._io import workers
from ftx.errors import IntegrityError
from ftx.protocol import compression
from ftx.protocol.compression import BLOCK_SIZE, BlockEncoder, CompressedBlock

#: Encoded blocks a sender keeps ready beyond what the transport holds:
#: one being written while the next is compressed keeps both cores busy.
AHEAD = 4
#: A block this short (the whole of a small body, or a body's last bit) is
#: made on the reactor thread: under a millisecond, less than a thread trip.
INLINE_MAX = 256 << 10


def _readAt(f, fd: Optional[int], position: int, count: int) -> bytes:
    if fd is not None:
        data = os.pread(fd, count, position)
    else:
        f.seek(position)
        data = f.read(count)
    if len(data) != count:
        raise IntegrityError("the file shrank while it was being sent")
    return data


def _descriptor(f) -> Optional[int]:
    try:
        fd = f.fileno()
    except Exception:
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


@implementer(interfaces.IPushProducer)
class BlockSender:
    """
    Streams C{count} bytes of an open file from C{offset} as compressed
    blocks, and fires with the digest of what it read for the trailer
    (C{knownDigest} when the digest is already known).

    Reading, hashing and compressing a block run in a worker thread, one
    block at a time and in order; the reactor thread only writes finished
    blocks. It is a streaming producer: while the transport's buffer is
    full it stops writing, and once L{AHEAD} blocks wait it stops making
    more, so a peer that stops reading holds back the reading of the file.
    Blocks of a small body are made on the spot: a thread trip costs more.
    """

    def __init__(
        self, f, offset: int, count: int, hasher, knownDigest: Optional[str], progress: Callable[[int], None], reactor,
        throttle=None, encoder: Optional[BlockEncoder] = None,
    ) -> None:
        self.file = f
        self._fd = _descriptor(f)
        self.position = offset
        #: File bytes not yet read.
        self.remaining = count
        self.hasher = hasher
        self.knownDigest = knownDigest
        self.progress = progress
        self.reactor = reactor
        self.encoder = encoder or BlockEncoder()
        self.deferred: Deferred = Deferred()
        self.transport = None
        # Shared with the worker making blocks, under the lock.
        self._lock = threading.Lock()
        self._ready: Deque[tuple] = deque()
        self._working = False
        self._stopped = False
        self._paused = False
        self._pool = workers.poolFor(reactor, workers.HASH) if reactor is not None else None
        #: An L{ftx._io.ratelimit.Throttle} the block bytes wait for, or
        #: L{None}. Under a limit a block goes out in pieces as tokens come:
        #: the rest of the one being sent (C{_piece}, its file bytes
        #: C{_pieceCount}), while C{_throttled} it waits for tokens.
        self.throttle = throttle if throttle is not None and throttle.limited else None
        self._piece: Optional[memoryview] = None
        self._pieceCount = 0
        self._throttled = False

    def begin(self, transport) -> Deferred:
        self.transport = transport
        d = self.deferred
        transport.registerProducer(self, True)
        self._pump()
        return d

    def _makeBlock(self, position: int, count: int) -> tuple:
        # In a worker thread for large bodies: the three costly steps.
        data = _readAt(self.file, self._fd, position, count)
        if self.knownDigest is None:
            self.hasher.update(data)
        payload = self.encoder.encode(data)
        return compression.blockLine(count, len(payload)) + b"\r\n", payload, count

    def _pump(self) -> None:
        """
        Write the blocks that are ready while the transport takes them,
        finish after the last, and keep a worker making blocks while fewer
        than L{AHEAD} wait. Reactor thread.
        """
        while self.transport is not None and not self._paused and not self._throttled:
            if self._piece is not None:
                self._sendPiece()
                continue
            with self._lock:
                block = self._ready.popleft() if self._ready else None
            if block is None:
                break
            line, payload, count = block
            if self.throttle is not None:
                self._piece, self._pieceCount = memoryview(line + payload), count
                continue
            self.transport.writeSequence((line, payload))
            self.progress(count)
        if self.transport is None:
            return
        with self._lock:
            done = self.remaining <= 0 and not self._ready and not self._working and self._piece is None
            start = not self._working and self.remaining > 0 and len(self._ready) < AHEAD
            short = start and self.remaining <= INLINE_MAX
            if start:
                self._working = True
        if done:
            self._finish(None)
        elif short or (start and self._pool is None):
            # A short last block costs less on the spot than a thread trip.
            self._work(inline=True)
            self._pump()
        elif start:
            self._pool.callInThread(self._work)

    def _sendPiece(self) -> None:
        """
        Send as much of the block in hand as the throttle allows now, or
        wait for its tokens.
        """
        piece = self._piece
        allowed = self.throttle.allowance(len(piece))
        if not allowed:
            self._throttled = True
            self.throttle.wait(self._tokensCame)
            return
        self.transport.write(piece[:allowed].tobytes())
        self.throttle.spend(allowed)
        if allowed < len(piece):
            self._piece = piece[allowed:]
        else:
            self._piece = None
            self.progress(self._pieceCount)

    def _tokensCame(self) -> None:
        self._throttled = False
        self._pump()

    def _work(self, inline: bool = False) -> None:
        """
        Make blocks in order until L{AHEAD} wait or the body is read,
        telling the reactor thread about each one. In a worker thread (or
        on the spot for a short body): one call makes many blocks, so a
        loaded machine's slow thread hand-offs come once, not per block.
        """
        while True:
            with self._lock:
                if self._stopped or self.remaining <= 0 or len(self._ready) >= AHEAD:
                    self._working = False
                    break
                position, count = self.position, min(BLOCK_SIZE, self.remaining)
                self.position += count
                self.remaining -= count
            try:
                block = self._makeBlock(position, count)
            except BaseException:
                failure = Failure()
                with self._lock:
                    self._working = False
                    self._stopped = True
                if inline:
                    self._finish(failure)
                else:
                    self.reactor.callFromThread(self._finish, failure)
                return
            with self._lock:
                self._ready.append(block)
                first = len(self._ready) == 1
            if first and not inline:
                self.reactor.callFromThread(self._pump)
        if not inline:
            # The reactor may have looked while this worker still counted as
            # working: it decides again now (to finish, or to start anew).
            self.reactor.callFromThread(self._pump)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self._finish(Failure(ConnectionError("connection lost while sending")))

    def _finish(self, failure: Optional[Failure]) -> None:
        if self.transport is None:
            return
        self.transport.unregisterProducer()
        self.transport = None
        with self._lock:
            self._stopped = True
            self._ready.clear()
        self._piece = None
        if self._throttled:
            self._throttled = False
            self.throttle.cancel()
        d, self.deferred = self.deferred, None
        if failure is not None:
            d.errback(failure)
        else:
            d.callback(self.knownDigest or self.hasher.hexdigest())


def encodeWhole(data: bytes) -> List[bytes]:
    """
    The block lines and payloads of a small body held in memory, for a
    sender that writes header, body and trailer at once (C{mget}'s small
    files): pieces to pass to C{writeSequence}.
    """
    encoder = BlockEncoder()
    pieces: List[bytes] = []
    for start in range(0, len(data), BLOCK_SIZE):
        chunk = data[start : start + BLOCK_SIZE]
        payload = encoder.encode(chunk)
        pieces += [compression.blockLine(len(chunk), len(payload)), b"\r\n", payload]
    return pieces


class BlockReader:
    """
    Follows the blocks of one compressed body of C{length} file bytes on
    the receiving side: L{blockLine} for each block line (it returns how
    many payload bytes to read), L{payload} for those bytes as they come,
    L{blockEnded} after the last of them.

    A raw block's bytes go on as they arrive to C{raw(data, release)}; a
    zstd block is gathered (it is at most L{compression.MAX_BLOCK} bytes)
    and handed whole, still compressed, to C{block(CompressedBlock)}, for
    a worker thread to decode.
    """

    def __init__(
        self, length: int, raw: Callable, block: Callable[[CompressedBlock], None], rawMax: int = compression.MAX_BLOCK
    ) -> None:
        #: File bytes still to come.
        self.remaining = length
        #: The most file bytes a raw block may hold on this connection.
        self.rawMax = rawMax
        self._raw = raw
        self._block = block
        self._fileBytes = 0
        self._stored = 0
        self._pieces: Optional[List[bytes]] = None

    @property
    def complete(self) -> bool:
        return self.remaining == 0 and self._fileBytes == 0

    def blockLine(self, fields) -> int:
        """
        A block line's fields (after the code): returns the payload length.

        @raise ftx.errors.BadRequest: the line is malformed or does not
            fit the body (L{compression.parseBlock}).
        """
        fileBytes, stored = compression.parseBlock(fields, self.remaining, self.rawMax)
        self.remaining -= fileBytes
        self._fileBytes, self._stored = fileBytes, stored
        self._pieces = None if compression.isRaw(fileBytes, stored) else []
        return stored

    @property
    def raw(self) -> bool:
        """
        Whether the block being read is raw (its payload is file bytes).
        """
        return self._pieces is None

    def payload(self, data, release=None) -> None:
        if self._pieces is None:
            self._raw(data, release)
            return
        self.addPiece(bytes(data))
        if release is not None:
            release()

    def addPiece(self, data) -> None:
        """
        Bytes of a zstd block's payload, kept as they are (a reading thread
        hands over a buffer it will not touch again).
        """
        self._pieces.append(data)

    def endBlock(self) -> Optional[CompressedBlock]:
        """
        The block's payload has all arrived: the zstd block to decode, or
        L{None} after a raw one (its bytes went on as they came).
        """
        pieces, self._pieces = self._pieces, None
        fileBytes, self._fileBytes = self._fileBytes, 0
        if pieces is None:
            return None
        return CompressedBlock(pieces[0] if len(pieces) == 1 else b"".join(pieces), fileBytes)

    def blockEnded(self) -> None:
        block = self.endBlock()
        if block is not None:
            self._block(block)


class DecodingSink:
    """
    What a L{ftx._io.background.BackgroundWriter} of a compressed body
    stores into: it decodes zstd blocks (in the worker thread) and passes
    file bytes on to C{sink.store} and C{hasher.update}, so the digest is
    over the file's bytes, never the compressed ones.
    """

    def __init__(self, sink, hasher) -> None:
        self.sink = sink
        self.hasher = hasher

    @property
    def received(self) -> int:
        """
        The file position of the next byte stored, as the sink's (0 when it
        does not say).
        """
        return getattr(self.sink, "received", 0)

    def store(self, item) -> None:
        data = item.decode() if isinstance(item, CompressedBlock) else item
        self.sink.store(data)
        if self.hasher is not None:
            self.hasher.update(data)
