"""
Names as they cross the wire, and the rules a name must pass before either
side turns it into a path: split on C{/}, no empty, C{.} or C{..} part, no
NUL, backslash or control character, not absolute, bounded in length and
depth. The server checks names from clients with these rules; the client
checks names from the server with the same ones, so neither end can be led
outside its folder by the other.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import List

from ftx.errors import PermissionDenied
from ftx.protocol.wire import nameText

__all__ = [
    "PARTIAL_SUFFIX", "MAX_NAME", "MAX_SEGMENT", "MAX_DEPTH", "MAX_ROOT", "splitName", "matches", "hasControl", "listable",
]

#: What a file being received is called until it is complete, on both
#: sides: C{.NAME.ftx-partial} beside its final name.
PARTIAL_SUFFIX = b".ftx-partial"
#: The longest name, in decoded bytes. It does not depend on where the
#: server's root is: a server whose root path is longer than L{MAX_ROOT}
#: refuses to start instead, so that root, C{/} and any allowed name (and
#: the partial file beside it) stay within Linux's 4,095-byte path limit.
#: Half that limit leaves the client's target folder as much room.
MAX_NAME = 2048
#: The longest segment (the part between two C{/}), in bytes: 255, the
#: limit of every common file system, less the 13 bytes the upload's
#: partial file C{.NAME.ftx-partial} adds, so that every name a client may
#: use can also be uploaded.
MAX_SEGMENT = 255 - len(b".") - len(PARTIAL_SUFFIX)
MAX_DEPTH = 128
#: The longest root path (real path, in bytes) a server may serve names
#: of up to L{MAX_NAME} bytes from: 4,095 - 1 - 2,048 - 13 = 2,033, rounded
#: down.
MAX_ROOT = 2000
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")
# What splitName refuses, but length and depth: empty, absolute, an empty,
# "." or ".." segment, NUL, backslash or control character, a segment too
# long, a partial file's name.
_UNLISTABLE = re.compile(
    rb"\A\Z|\A/|//|/\Z|(?:\A|/)\.\.?(?:/|\Z)|[\x00-\x1f\x7f\\]|[^/]{%d,}|%s(?:/|\Z)"
    % (MAX_SEGMENT + 1, re.escape(PARTIAL_SUFFIX))
)


def hasControl(name: bytes) -> bool:
    """
    Whether C{name} holds a control character (never listed nor accepted).
    """
    return _CONTROL.search(name) is not None


def splitName(name: bytes) -> List[bytes]:
    """
    Split a name from the wire into checked segments.

    @raise PermissionDenied: the name could not be a path under the root.
    """
    shown = _CONTROL_TEXT.sub(lambda m: "\\x{:02x}".format(ord(m.group())), nameText(name)[:200])
    if not name:
        raise PermissionDenied("empty name")
    if b"\x00" in name or b"\\" in name:
        raise PermissionDenied("name contains NUL or backslash: {}".format(shown))
    if _CONTROL.search(name):
        # CR, LF and the like in a name would forge lines in logs and on
        # terminals that show names; no command accepts them.
        raise PermissionDenied("name contains a control character: {}".format(shown))
    if name.startswith(b"/"):
        raise PermissionDenied("absolute names are not allowed: {}".format(shown))
    if len(name) > MAX_NAME:
        raise PermissionDenied("name longer than {} bytes".format(MAX_NAME))
    segments = name.split(b"/")
    if len(segments) > MAX_DEPTH:
        # Deeper trees would be slow to walk and could exhaust the stack of
        # the recursive directory walk behind list.
        raise PermissionDenied("name more than {} levels deep".format(MAX_DEPTH))
    for segment in segments:
        if segment in (b"", b".", b".."):
            raise PermissionDenied("name leaves the root or has an empty part: {}".format(shown))
        if segment.endswith(PARTIAL_SUFFIX):
            raise PermissionDenied("names ending in .ftx-partial are reserved")
        if len(segment) > MAX_SEGMENT:
            raise PermissionDenied("name part longer than {} bytes".format(MAX_SEGMENT))
    return segments


def listable(name: bytes) -> bool:
    """
    Whether a name found in storage may appear in C{list} and C{mget}:
    exactly the names L{splitName} accepts, so that every listed name can
    be fetched, and nothing that cannot be fetched is listed.
    """
    # The same rules as splitName in one regular-expression search,
    # without an exception per file: a listing may hold many thousands
    # of names, and this runs for each.
    if len(name) > MAX_NAME or name.count(b"/") >= MAX_DEPTH:
        return False
    return _UNLISTABLE.search(name) is None


def matches(maskSegments: List[bytes], nameSegments: List[bytes]) -> bool:
    """
    Whether a name matches a mask, segment by segment: wildcards never
    match C{/}.
    """
    if len(maskSegments) != len(nameSegments):
        return False
    return all(fnmatchcase(n, m) for n, m in zip(nameSegments, maskSegments))
