"""
Byte ranges (RFC 9110 section 14) and the producer that streams one.

One range per response: C{bytes=FIRST-LAST}, C{bytes=FIRST-} and
C{bytes=-SUFFIX}. A request for several ranges gets the whole file with
200, which the RFC allows and every resuming client (C{curl -C -},
browsers, download managers) handles; none of them asks for several.
"""

from __future__ import annotations

from typing import Optional, Tuple

from twisted.internet.interfaces import IPullProducer
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


@implementer(IPullProducer)
class RangeProducer:
    """
    Streams C{count} bytes of an open file from C{offset} into a request,
    one chunk each time the transport asks (a pull producer, so a slow
    client holds at most one chunk), then finishes the request and closes
    the file. A file that shrank mid-send ends the response early: the
    client sees fewer bytes than C{Content-Length} and knows it is cut.
    """

    _log = Logger()

    def __init__(self, request, f, offset: int, count: int) -> None:
        self.request = request
        self.file = f
        self.left = count
        self._done = False
        self._registered = False
        f.seek(offset)

    def start(self) -> None:
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        if self.left == 0:
            self._finish(complete=True)
            return
        self._registered = True
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self._done:
            return
        try:
            data = self.file.read(min(SEND_CHUNK, self.left))
        except OSError:
            self._log.failure("reading a file for a web download failed")
            data = b""
        if not data:
            self._finish(complete=False)
            return
        self.left -= len(data)
        self.request.write(data)
        if self.left <= 0:
            self._finish(complete=True)

    def stopProducing(self) -> None:
        """
        The client went away: close the file, write nothing more.
        """
        if not self._done:
            self._done = True
            self.file.close()

    def _finish(self, complete: bool) -> None:
        self._done = True
        self.file.close()
        if self._registered:
            self.request.unregisterProducer()
        if complete:
            self.request.finish()
        else:
            # Short of Content-Length: closing is the only honest end.
            self.request.loseConnection()
