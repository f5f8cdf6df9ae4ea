"""
C{list}: the reply's C{210 NAME SIZE MTIME} lines into
L{ftx.client.results.Entry}s, and C{211 COUNT} to end.

A mirror lists every file of a tree, ten thousand or more, to compare
them. Plain lines (a name with no C{%}, printable ASCII, plain decimal
numbers) are taken straight from the received bytes, many at once
(L{ListRequest.takeLines}) or one at a time (L{ListRequest.fastLine});
any other line goes the usual way, through L{wire.parseReply}, so the
entries and the refusals are the same either way.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional

from ftx.client.exchanges import Request
from ftx.client.results import Entry
from ftx.errors import FtxError
from ftx.protocol import wire
from ftx.protocol.wire import nameText

__all__ = ["ListRequest"]


#: A C{210} line whose name needs no decoding (no C{%}, printable ASCII)
#: and whose numbers are plain decimals of at most 19 digits.
_PLAIN_ENTRY = re.compile(rb"210 ([!-$&-~]+) (0|[1-9][0-9]{0,18}) (0|[1-9][0-9]{0,18})\Z")
_MAX_NUMBER = 2**63 - 1
#: Consecutive plain C{210} lines (as L{_PLAIN_ENTRY}, numbers of at most
#: 18 digits: always below 2**63, and lines well within the longest one
#: allowed), and each one's fields.
_PLAIN_RUN = re.compile(
    rb"(?:210 [!-$&-~]{1,%d} (?:0|[1-9][0-9]{0,17}) (?:0|[1-9][0-9]{0,17})\r\n)+" % (wire.MAX_LINE_LENGTH - 64)
)
#: The same, over the run decoded once (a matched run is ASCII): the names
#: come out as text, with no decode a line.
_PLAIN_FIELDS = re.compile(r"210 ([!-$&-~]+) ([0-9]+) ([0-9]+)\r\n")
#: An L{Entry} from a tuple, without the named tuple's Python C{__new__}.
_newEntry = tuple.__new__


class ListRequest(Request):
    """
    C{list}: fires with the L{Entry}s. C{arrived(entries)}, if given, is
    called on the reactor thread with each batch of entries as it comes,
    before the listing ends (a mirror compares them meanwhile).
    """

    def __init__(self, line: bytes, arrived: Optional[Callable[[List[Entry]], None]] = None) -> None:
        super().__init__(line)
        self.entries: List[Entry] = []
        self._arrived = arrived

    def start(self, protocol) -> None:
        super().start(protocol)
        protocol._lineTaker = self.takeLines

    def takeLines(self, data: bytes, position: int) -> int:
        """
        Take the plain C{210} lines of C{data} from C{position} at once (as
        L{fastLine} takes one), before they are split one by one
        (L{ftx.client.replies.ReplyStream}); returns where the first other
        line, or an incomplete one, starts. A mirror's listing is ten
        thousand lines or more, and the splitting and the calls a line
        were most of the client's cost of it.
        """
        protocol = self.protocol
        if self.broken or protocol.greeted is not None or protocol._agreeing is not None or protocol._probeReplies:
            return position
        run = _PLAIN_RUN.match(data, position)
        if run is None:
            return position
        end = run.end()
        taken = [
            _newEntry(Entry, (name, int(size), int(mtime)))
            for name, size, mtime in _PLAIN_FIELDS.findall(data[position:end].decode("ascii"))
        ]
        self.entries.extend(taken)
        if self._arrived is not None:
            self._arrived(taken)
        return end

    def _stopTaking(self) -> None:
        if self.protocol is not None and getattr(self.protocol, "_lineTaker", None) == self.takeLines:
            self.protocol._lineTaker = None

    def complete(self, result) -> None:
        self._stopTaking()
        super().complete(result)

    def connectionLost(self) -> None:
        self._stopTaking()
        super().connectionLost()

    def fastLine(self, line: bytes) -> bool:
        """
        Take a plain C{210} line straight from the bytes, as
        L{replyReceived} would have: a mirror lists every file of a tree,
        and splitting each line into a L{wire.Reply} first was most of the
        client's cost of it. Any other line (a name with C{%}, an error,
        the end) returns L{False} and takes the usual way.
        """
        match = _PLAIN_ENTRY.match(line)
        if match is None or self.broken:
            return False
        name, size, mtime = match.groups()
        size, mtime = int(size), int(mtime)
        if size > _MAX_NUMBER or mtime > _MAX_NUMBER:
            return False
        self._append(Entry(name.decode("ascii"), size, mtime))
        return True

    def _append(self, entry: Entry) -> None:
        self.entries.append(entry)
        if self._arrived is not None:
            self._arrived([entry])

    def replyReceived(self, reply: wire.Reply) -> None:
        if self.broken:
            return
        if reply.code == wire.LIST_ENTRY:
            try:
                if len(reply.fields) != 3:
                    raise FtxError("wrong number of fields")
                name = nameText(wire.decodeName(reply.fields[0]))
                entry = Entry(name, wire.parseNumber(reply.fields[1], "size"), wire.parseNumber(reply.fields[2], "mtime"))
            except FtxError as e:
                self.malformed("{} in {}".format(e, ascii(reply.text[:80])))
            self._append(entry)
        elif reply.code == wire.LIST_END:
            self.complete(self.entries)
        elif reply.isError:
            super().replyReceived(reply)
        else:
            self.malformed("{} {} in answer to list".format(reply.code, ascii(reply.text[:80])))
