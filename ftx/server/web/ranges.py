"""
Byte ranges (RFC 9110 section 14) and the producer that streams one,
as fast as the client reads and no faster than the rate limits allow.

One range per response: C{bytes=FIRST-LAST}, C{bytes=FIRST-} and
C{bytes=-SUFFIX}. A request for several ranges gets the whole file with
200, which the RFC allows and every resuming client (C{curl -C -},
browsers, download managers) handles; none of them asks for several.
"""

from __future__ import annotations

from typing import Optional, Tuple

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["Unsatisfiable", "parseRange", "RangeProducer", "SEND_CHUNK"]

#: Bytes read from the file per C{resumeProducing}: what one slow client
#: can make the server hold, and the size of each read on the reactor
#: thread (a page-cache read of 256 KiB takes well under a millisecond).
SEND_CHUNK = 256 * 1024


class Unsatisfiable(Exception):
    """
    The range starts beyond the end of the file: answered with 416.
    """


def parseRange(header: Optional[bytes], size: int) -> Optional[Tuple[int, int]]:
    """
    The C{(first, last)} byte positions (inclusive) a C{Range} header asks
    for, or L{None} to send the whole file (no header, a unit other than
    bytes, several ranges, or a header that does not parse, which the RFC
    says to ignore).

    @raise Unsatisfiable: a well-formed range that holds no byte of the file.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == b"") or not (last.isdigit() or last == b""):
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise Unsatisfiable()
    return start, min(end, size - 1)


@implementer(IPushProducer)
class RangeProducer:
    """
    Streams C{count} bytes of an open file from C{offset} into a request,
    one chunk at a time, then finishes the request and closes the file. A
    file that shrank mid-send ends the response early: the client sees
    fewer bytes than C{Content-Length} and knows it is cut.

    It is a push producer that schedules its own chunks on C{reactor} (a
    L{Clock} in tests): the connection pauses it when its buffer is full (a
    slow client holds at most one chunk), and a rate-limited C{throttle} (an
    L{ftx._io.ratelimit.Throttle}) makes it wait, holding nothing, until
    the tokens come. (As a pull producer, Twisted's HTTP channel would call
    it in a loop while it waits, and would not pause it when it
    re-registered behind a full buffer.) A file whose bytes come from
    elsewhere (an object store's read-ahead,
    L{ftx.server.s3.reads.S3File.whenReadable}) is read only once C{read}
    would not wait, so that the event loop never blocks on it.
    """

    _log = Logger()

    def __init__(self, request, f, offset: int, count: int, reactor, throttle=None) -> None:
        self.request = request
        self.file = f
        self.left = count
        self.reactor = reactor
        self.throttle = throttle if throttle is not None and throttle.limited else None
        self._done = False
        self._registered = False
        self._paused = False
        self._waitingForTokens = False
        self._waitingForData = False
        self._call = None
        f.seek(offset)

    def start(self) -> None:
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        if self.left == 0:
            self._finish(complete=True)
            return
        self._registered = True
        self.request.registerProducer(self, True)
        self._schedule()

    def pauseProducing(self) -> None:
        self._paused = True
        self._cancelCall()

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def _stopped(self) -> bool:
        return self._done or self._paused or self._waitingForTokens or self._waitingForData

    def _schedule(self) -> None:
        if self._call is None and not self._stopped():
            self._call = self.reactor.callLater(0, self._sendChunk)

    def _cancelCall(self) -> None:
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _sendChunk(self) -> None:
        self._call = None
        if self._stopped():
            return
        whenReadable = getattr(self.file, "whenReadable", None)
        ready = whenReadable(self.reactor) if whenReadable is not None else None
        if ready is not None:
            self._waitingForData = True
            ready.addCallback(self._dataCame)
            return
        want = min(SEND_CHUNK, self.left)
        if self.throttle is not None:
            want = self.throttle.allowance(want)
            if not want:
                self._waitingForTokens = True
                self.throttle.wait(self._tokensCame)
                return
        try:
            data = self.file.read(want)
        except OSError:
            self._log.failure("reading a file for a web download failed")
            data = b""
        if not data:
            self._finish(complete=False)
            return
        self.left -= len(data)
        if self.throttle is not None:
            self.throttle.spend(len(data))
        # A write that fills the connection's buffer pauses this producer
        # before it returns; the connection resumes it once it drained.
        self.request.write(data)
        if self.left <= 0:
            self._finish(complete=True)
        else:
            self._schedule()

    def _tokensCame(self) -> None:
        self._waitingForTokens = False
        self._schedule()

    def _dataCame(self, _) -> None:
        self._waitingForData = False
        self._schedule()

    def stopProducing(self) -> None:
        """
        The client went away: close the file, write nothing more.
        """
        if not self._done:
            self._done = True
            self._cancelCall()
            if self.throttle is not None:
                self.throttle.cancel()
            self.file.close()

    def _finish(self, complete: bool) -> None:
        self._done = True
        self._cancelCall()
        if self.throttle is not None:
            self.throttle.cancel()
        self.file.close()
        if self._registered:
            self._registered = False
            self.request.unregisterProducer()
        if complete:
            self.request.finish()
        else:
            # Short of Content-Length: closing is the only honest end.
            self.request.loseConnection()
