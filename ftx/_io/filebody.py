"""
Streaming a file as a body: the bytes, then the digest for the trailer.

Both ends send files the same way, the server for downloads and the
client for uploads, so both get C{sendfile} and a digest hashed on
another core where the connection allows it.
"""

from __future__ import annotations

import io
import os
from typing import Callable, Optional

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx._io import buffers, internals, zerocopy
from ftx._io.fileio import READ_CHUNK
from ftx._io.threadedsend import ThreadedSend
from ftx.errors import IntegrityError

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
    Finishes a digest over C{count} bytes of a file from C{offset}, in a
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
        view = buffers.lend(READ_CHUNK)
        try:
            position, end = self._offset, self._offset + self._count
            while position < end and not self._cancelled:
                got = os.preadv(self._fd, [view[: min(READ_CHUNK, end - position)]], position)
                if not got:
                    raise IntegrityError("the file shrank while it was being sent")
                self._hasher.update(view[:got])
                position += got
            return self._hasher.hexdigest()
        finally:
            buffers.giveBack(view)
            os.close(self._fd)


def settleDigest(d: Deferred, failure, aside: Optional[AsideHasher], asideDigest: Optional[Deferred], digest) -> None:
    """
    Fire C{d}, a sender's result, with C{failure}, or else with the body's
    digest: the one an L{AsideHasher} finishes, or C{digest()} when none
    runs. A failed body stops its aside hasher, whose own result nobody
    waits for any more. Every sender that may hash aside ends this way.
    """
    if failure is not None:
        if aside is not None:
            aside.cancel()
            asideDigest.addErrback(lambda _: None)
        d.errback(failure)
    elif asideDigest is not None:
        asideDigest.chainDeferred(d)
    else:
        d.callback(digest())


def _descriptorOf(f) -> Optional[int]:
    """
    The operating-system file descriptor behind C{f}, or L{None} when it
    has none (an in-memory file: C{io.BytesIO.fileno} raises
    C{io.UnsupportedOperation}), so that its bytes take the copying path.
    """
    try:
        fd = f.fileno()
    except (AttributeError, io.UnsupportedOperation, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


@implementer(interfaces.IPullProducer)
class BodySender:
    """
    Streams C{count} bytes of an open file from C{offset} to a transport,
    each time the transport has room, and fires with the digest the trailer
    needs. Like Twisted's C{FileSender}, but bounded by a byte count.

    On a plain socket, from a file with a descriptor, the bytes go by
    C{sendfile} (L{ftx._io.zerocopy}) and the digest comes from the cache or
    from an L{AsideHasher} on another core; otherwise (TLS, in-memory
    transports or files, no C{reactor}) they are read, hashed and written
    in L{SEND_CHUNK} pieces.
    Either way a client that stops reading stops the sending, and nothing
    but the socket's own buffer holds the file's bytes.

    With C{sendThread}, a C{sendfile} body without a rate limit goes out
    from a thread of its own (L{ftx._io.threadedsend}) instead of a turn of
    the reactor at a time: right for a process that holds one connection
    and waits for it (the C{ftx} command), wrong for a server.
    """

    def __init__(
        self, f, offset: int, count: int, hasher, knownDigest: Optional[str], progress: Callable[[int], None], reactor=None,
        throttle=None, sendThread: bool = False,
    ):
        self.file = f
        self.position = offset
        self.remaining = count
        self.hasher = hasher
        self.knownDigest = knownDigest
        self.progress = progress
        self.reactor = reactor
        #: An L{ftx._io.ratelimit.Throttle}, or L{None}: no rate limit.
        self.throttle = throttle
        self._unregistered = False
        self.deferred: Deferred = Deferred()
        self.transport = None
        self._socket = None
        self._fd: Optional[int] = None
        self._aside: Optional[AsideHasher] = None
        self._asideDigest: Optional[Deferred] = None
        self._sendThread = sendThread
        self._thread: Optional[ThreadedSend] = None

    def begin(self, transport) -> Deferred:
        self.transport = transport
        d = self.deferred
        sock = internals.socketOf(transport)
        fd = _descriptorOf(self.file) if sock is not None else None
        if fd is not None and self.reactor is not None and (
            self.knownDigest is not None or self.remaining >= HASH_ASIDE_MIN
        ):
            self._socket = sock
            self._fd = fd
            # A sending thread hashes as it sends (L{ftx._io.threadedsend});
            # a rate limit keeps the reactor's turns.
            self._sendThread = self._sendThread and (self.throttle is None or not self.throttle.limited)
            if self.knownDigest is None and not self._sendThread:
                self._aside = AsideHasher(fd, self.position, self.remaining, self.hasher)
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
        allowed = self.remaining
        if self.throttle is not None and self.throttle.limited:
            allowed = self.throttle.allowance(min(allowed, zerocopy.TURN))
            if not allowed:
                # Unregistered, nothing calls this (Twisted's TLS would call
                # a pull producer in a loop) until the throttle has tokens.
                self.transport.unregisterProducer()
                self._unregistered = True
                self.throttle.wait(self._tokensCame)
                return
        if self._socket is not None:
            self._sendDirect(allowed)
        else:
            self._sendCopy(allowed)

    def _tokensCame(self) -> None:
        if self.transport is not None:
            self._unregistered = False
            self.transport.registerProducer(self, False)

    def _spent(self, count: int) -> None:
        if self.throttle is not None:
            self.throttle.spend(count)

    def _sendDirect(self, allowed: int) -> None:
        transport = self.transport
        if not internals.transportIdle(transport):
            # The header line is still queued; the transport asks again
            # once it has written it.
            return
        if self._sendThread:
            self._startThread()
            return
        try:
            sent = zerocopy.sendSome(self._socket, self._fd, self.position, allowed)
        except (EOFError, OSError) as e:
            self._finish(Failure(zerocopy.whySendingStopped(e)))
            return
        self.position += sent
        self.remaining -= sent
        if sent:
            self._spent(sent)
            self.progress(sent)
        if self.remaining <= 0:
            self._finish(None)
        else:
            # Either the socket is full or this turn is used up: an empty
            # write pass calls resumeProducing again once the socket can
            # take more, after the other connections had their turn.
            internals.wakeWriter(transport)

    def _startThread(self) -> None:
        """
        Leave the rest of the body to a sending thread: the transport, idle
        now, writes nothing until L{_threadFinished} (nothing else is sent
        on the connection meanwhile: a body is the only thing in flight).
        """
        try:
            hasher = self.hasher if self.knownDigest is None else None
            thread = ThreadedSend(self._socket, self._fd, self.position, self.remaining, hasher)
        except OSError as e:
            self._finish(Failure(ConnectionError("sending failed: {}".format(e.strerror))))
            return
        self.transport.unregisterProducer()
        self._unregistered = True
        self._thread = thread
        thread.start(self.reactor, self._threadProgress, self._threadFinished)

    def _threadProgress(self, count: int) -> None:
        if self.transport is None:
            return
        self.position += count
        self.remaining -= count
        self._spent(count)
        self.progress(count)

    def _threadFinished(self, sent: int) -> None:
        thread, self._thread = self._thread, None
        if self.transport is None or thread is None:
            return
        if self.remaining <= 0:
            self._finish(None)
        elif isinstance(thread.error, EOFError):
            self._finish(Failure(IntegrityError("the file shrank while it was being sent")))
        else:
            reason = getattr(thread.error, "strerror", None) or str(thread.error or "stopped")
            self._finish(Failure(ConnectionError("sending failed: {}".format(reason))))

    def _sendCopy(self, allowed: int) -> None:
        if self._stepAsideUntilReadable():
            return
        try:
            chunk = self.file.read(min(SEND_CHUNK, allowed))
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
        self._spent(len(chunk))
        self.transport.write(chunk)
        self.progress(len(chunk))

    def _stepAsideUntilReadable(self) -> bool:
        """
        A file whose bytes arrive from elsewhere (an object store's
        read-ahead, L{ftx.server.s3.reads.S3File}) says when C{read} would
        wait: then the sender leaves the transport until it would not,
        instead of blocking the event loop (unregistered, a pull producer
        is not polled in a loop by a TLS transport either).
        """
        whenReadable = getattr(self.file, "whenReadable", None)
        ready = whenReadable(self.reactor) if whenReadable is not None and self.reactor is not None else None
        if ready is None:
            return False
        transport = self.transport
        transport.unregisterProducer()

        def readable(_) -> None:
            if self.transport is transport:
                transport.registerProducer(self, False)

        ready.addCallback(readable)
        return True

    def stopProducing(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._finish(Failure(ConnectionError("connection lost while sending")))

    def _finish(self, failure: Optional[Failure]) -> None:
        if self.transport is None:
            return
        if not self._unregistered:
            self.transport.unregisterProducer()
        self.transport = None
        if self.throttle is not None:
            self.throttle.cancel()
        d, self.deferred = self.deferred, None
        settleDigest(d, failure, self._aside, self._asideDigest, lambda: self.knownDigest or self.hasher.hexdigest())
