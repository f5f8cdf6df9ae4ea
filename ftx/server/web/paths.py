"""
From a request's path to a storage name, and back to a link.

Twisted splits C{request.path} on C{/} and then unquotes each segment, so a
C{%2F} would come back as a C{/} inside one segment and a later join would
turn it into two. Here the raw path is split first and each segment
unquoted on its own; a segment that unquotes to anything with a C{/} in it
is refused, and the joined name goes through the protocol's own
L{ftx.protocol.names.splitName}, so the web view accepts exactly the names
the protocol does.
"""

from __future__ import annotations

from typing import List, NamedTuple
from urllib.parse import quote_from_bytes, unquote_to_bytes

from ftx.errors import PermissionDenied
from ftx.protocol.names import splitName

__all__ = ["WebPath", "parseRequestPath", "linkTo"]


class WebPath(NamedTuple):
    """
    A checked request path: the storage C{name} (C{b""} for the root) and
    whether the request asked for a folder (a trailing C{/}).
    """

    name: bytes
    folder: bool

    @property
    def segments(self) -> List[bytes]:
        return self.name.split(b"/") if self.name else []


def parseRequestPath(rawPath: bytes) -> WebPath:
    """
    The storage name a raw (still percent-encoded) request path names.

    @raise PermissionDenied: an encoded slash, or a name the protocol
        refuses (C{..}, NUL, control characters, partial-upload names...).
    """
    path = rawPath.split(b"?", 1)[0]
    if not path.startswith(b"/"):
        raise PermissionDenied("the path must start with /")
    folder = path.endswith(b"/")
    raw = path.strip(b"/")
    if not raw:
        return WebPath(b"", True)
    segments = []
    for part in raw.split(b"/"):
        segment = unquote_to_bytes(part)
        if b"/" in segment:
            raise PermissionDenied("an encoded / is not a name")
        segments.append(segment)
    name = b"/".join(segments)
    splitName(name)
    return WebPath(name, folder)


def linkTo(segments: List[bytes], folder: bool = False) -> str:
    """
    The absolute URL path of a name, every byte outside the unreserved set
    percent-encoded (names are any bytes, not only UTF-8).
    """
    path = "/" + "/".join(quote_from_bytes(s, safe="") for s in segments)
    if folder and segments:
        path += "/"
    return path
