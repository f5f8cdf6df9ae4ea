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
    C{hash} of many files, pipelined: up to L{WINDOW} commands are on the
    wire at once (the server answers them in order, one at a time), so a
    thousand digests cost about one round trip instead of a thousand.
    Fires with one result per name, in order: the hex SHA-1, or the
    L{ftx.errors.FtxError} the server answered for that name.
    """

    #: Commands sent ahead of their answers; bounds what waits in buffers.
    WINDOW = 128

    def __init__(self, names: List[str]) -> None:
        super().__init__(b"")
        self.lines = [wire.formatCommand("hash", wire.encodeName(name)) for name in names]
        self.results: list = []
        self._sent = 0

    def start(self, protocol: "object") -> None:
        self.protocol = protocol
        if not self.lines:
            self.complete([])
            return
        self._fill()

    def _fill(self) -> None:
        while self._sent < len(self.lines) and self._sent - len(self.results) < self.WINDOW:
            self.protocol.sendLine(self.lines[self._sent])
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
        if len(self.results) == len(self.lines):
            self.complete(self.results)
        else:
            self._fill()
