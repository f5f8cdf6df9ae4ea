"""
The reply to C{list}: one C{210 NAME SIZE MTIME} line a file, then
C{211 COUNT}, as one piece of bytes.

A mirror's re-run lists every file of the tree, ten thousand or more, to
compare them: formatting each line through L{wire.formatLine} and
L{wire.encodeName} (two calls, a list, three C{str()} and an encode a
line) was a quarter of the server's cost of the listing. A name of only
the characters percent-encoding leaves as they are (the usual case) is
written as it is, with one C{bytes} C{%} format a line; any other goes
through L{wire.encodeName}, so the lines are the same bytes either way.
"""

from __future__ import annotations

import re
from typing import Iterable, List

from ftx.protocol import wire
from ftx.protocol.wire import encodeName

__all__ = ["listingReply"]

#: What L{wire.encodeName} leaves as it is: letters, digits and C{-._~/}.
_PLAIN = re.compile(rb"[A-Za-z0-9_.~/-]+\Z")


def listingReply(entries: Iterable) -> bytes:
    """
    The whole reply to C{list} for C{entries} (L{ftx.server.storage.StoredFile}s,
    in the order to send), ending with C{211 COUNT} and CR LF.
    """
    plain = _PLAIN.match
    lines: List[bytes] = []
    for entry in entries:
        name = entry.name
        if plain(name) is None:
            name = encodeName(name).encode("ascii")
        lines.append(b"%d %s %d %d\r\n" % (wire.LIST_ENTRY, name, entry.size, entry.mtime))
    lines.append(wire.formatLine(wire.LIST_END, len(lines)) + wire.LINE_END)
    return b"".join(lines)
