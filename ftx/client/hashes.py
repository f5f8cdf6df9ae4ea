"""
L{HashesRequest}: the digests of many files in about one round trip, for
the commands that compare local files with the server's before sending
(L{ftx.cli.unchanged}).
"""

from __future__ import annotations

from typing import List

from ftx.client.exchanges import Request
from ftx.errors import errorFromReply
from ftx.protocol import wire

__all__ = ["HashesRequest"]


class HashesRequest(Request):
    """
    C{hash} of many files, pipelined: commands go out ahead of their
    answers (the server answers them in order, one at a time) while fewer
    than L{WINDOW} of them, and fewer than L{WINDOW_BYTES} bytes, are
    unanswered, so a thousand digests cost about one round trip instead of
    a thousand. Fires with one result per name, in order: the hex SHA-1,
    or the L{ftx.errors.FtxError} the server answered for that name.

    The bound is in bytes because that is what waits in buffers (the
    kernel's, both transports'); the server answers a digest it knows
    at once (L{ftx.server.hashcommand}), so a thousand short names sent
    in one write come back in about one write too, where a window of a
    hundred names took ten round trips, each side idle while the other
    worked.
    """

    #: Commands sent ahead of their answers, at most.
    WINDOW = 4096
    #: Bytes of commands sent ahead of their answers, at most (a longer
    #: command still goes out alone).
    WINDOW_BYTES = 256 << 10

    def __init__(self, names: List[str]) -> None:
        super().__init__(b"")
        self.lines = [wire.formatCommand("hash", wire.encodeName(name)) for name in names]
        self.results: list = []
        self._sent = 0
        self._unanswered = 0

    def start(self, protocol: "object") -> None:
        self.protocol = protocol
        if not self.lines:
            self.complete([])
            return
        self._fill()

    def _fill(self) -> None:
        lines, answered = self.lines, len(self.results)
        while self._sent < len(lines) and (self._sent == answered or (
                self._sent - answered < self.WINDOW
                and self._unanswered + len(lines[self._sent]) <= self.WINDOW_BYTES)):
            self.protocol.sendLine(lines[self._sent])
            self._unanswered += len(lines[self._sent])
            self._sent += 1

    def replyReceived(self, reply: wire.Reply) -> None:
        if self.broken:
            return
        if reply.isError:
            self.results.append(errorFromReply(reply.code, reply.errorMessage(), reply.fields[0] if reply.fields else ""))
        elif reply.code == wire.DIGEST and reply.fields:
            # As C{hash} gives it: a digest that is not one matches nothing.
            self.results.append(reply.fields[0])
        else:
            self.malformed("{} {} in answer to hash".format(reply.code, ascii(reply.text[:80])))
        self._unanswered -= len(self.lines[len(self.results) - 1])
        if len(self.results) == len(self.lines):
            self.complete(self.results)
        else:
            self._fill()
