"""
Whether a name the server chose may become a local path.

A server decides which names it sends in answer to C{mget}, C{list} and the
headers of C{sget}/C{cget}. A hostile one can answer C{mget *.jpg} with
C{.ssh/authorized_keys} or C{../../.bashrc} (the class of scp's
CVE-2019-6111), so the client checks every such name before it writes
anything: it must pass the rules the server applies to names from clients
(L{ftx.protocol.names.splitName}: no empty, C{.} or C{..} part, no NUL,
backslash or control character, not absolute), match the mask that was
asked for by the server's own matching rules, and stay inside the target
folder once existing local links are followed. A name that fails is
refused with L{UnsafeName}: that file is not written, and the rest of a
batch goes on.

The checks see the local tree as it is when the file starts; a local user
who swaps a folder for a link in the middle of a download is outside what
a hostile server can do, and not what this module guards against.
"""

from __future__ import annotations

import os
import stat
from typing import List, Optional

from ftx.errors import PermissionDenied, UnsafeName
from ftx.protocol.names import PARTIAL_SUFFIX, matches, splitName
from ftx.protocol.wire import nameText

__all__ = ["UnsafeName", "checked", "checkedSegments", "matchesMask", "confined", "localTarget", "baseName"]

_WILDCARDS = b"*?["


def _shown(name: bytes) -> str:
    # repr-style: the message may reach a terminal or a log.
    return ascii(nameText(name[:200]))


def checkedSegments(name: bytes) -> List[bytes]:
    """
    The segments of a server-chosen name, checked by the rules the server
    applies to names from clients.

    @raise UnsafeName: the name could not be a path under a folder.
    """
    try:
        return splitName(name)
    except PermissionDenied as e:
        raise UnsafeName("refused the name {}: {}".format(_shown(name), _reason(e)), name)


def _reason(error: PermissionDenied) -> str:
    # splitName's message ends with the name itself; ours already shows it.
    return str(error).split(":", 1)[0]


def matchesMask(mask: Optional[bytes], name: bytes) -> bool:
    """
    Whether the server could rightly send C{name} for C{mask}, by its own
    rules (L{ftx.server.storage.IStorage.listFiles}): every name for no
    mask; for a mask without wildcards, that name or anything below the
    folder it names; otherwise a segment-by-segment match in which
    wildcards never match C{/}.
    """
    if not mask:
        return True
    if not any(c in mask for c in _WILDCARDS) and (name == mask or name.startswith(mask + b"/")):
        return True
    return matches(mask.split(b"/"), name.split(b"/"))


def confined(directory: str, segments: List[bytes]) -> str:
    """
    The local path of C{segments} under C{directory}, once it is certain
    that neither the path nor the partial file beside it leads outside
    C{directory} through a link that exists here (C{photos -> /etc}, or a
    link in place of the file itself, which C{cget} would write through).

    @raise UnsafeName: it would.
    """
    parts = [os.fsdecode(s) for s in segments]
    path = os.path.join(directory, *parts)
    partial = os.path.join(os.path.dirname(path), "." + parts[-1] + os.fsdecode(PARTIAL_SUFFIX))
    # Only what exists can lead elsewhere, and only links do: each part is
    # looked at with lstat (the parts before it resolved by the system),
    # and resolved in full only when it is a link. Resolving every path in
    # full (os.path.realpath) took 0.26 ms a file against 0.07 ms for the
    # whole check this way, on the loaded 2-core test machine: time spent
    # in the reactor thread for every small file of an mget.
    resolvedTop: List[str] = []

    def exists(candidate: str) -> bool:
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            if not resolvedTop:
                resolvedTop.append(os.path.realpath(directory))
            top = resolvedTop[0]
            resolved = os.path.realpath(candidate)
            if os.path.commonpath([top, resolved]) != top or resolved == top:
                name = b"/".join(segments)
                raise UnsafeName(
                    "refused the name {}: it leads outside {} through a local link".format(
                        _shown(name), ascii(directory or ".")
                    ),
                    name,
                )
        return True

    for depth in range(1, len(parts)):
        if not exists(os.path.join(directory, *parts[:depth])):
            # Folders still to be made: nothing below can be a link.
            return path
    exists(path)
    exists(partial)
    return path


def localTarget(directory: str, name: bytes, mask: Optional[bytes] = None) -> str:
    """
    Where a file the server sent as C{name}, in answer to C{mask}, goes
    under C{directory}; every check of this module passed.

    @raise UnsafeName: the name is malformed, does not match C{mask}, or
        would land outside C{directory}.
    """
    return confined(directory, checked(name, mask))


def checked(name: bytes, mask: Optional[bytes]) -> List[bytes]:
    """
    The segments of C{name}, sent in answer to C{mask}, once both
    L{checkedSegments} and L{matchesMask} passed.

    @raise UnsafeName: either did not.
    """
    segments = checkedSegments(name)
    if not matchesMask(mask, name):
        raise UnsafeName(
            "refused the name {} from the server: it does not match {}".format(_shown(name), _shown(mask or b"")), name
        )
    return segments


def baseName(name: bytes) -> bytes:
    """
    The last segment of a checked name: what C{sget NAME} saves as when no
    local path is given. A name from a listing is as much the server's
    choice as a name in an C{mget}.

    @raise UnsafeName: the name is malformed.
    """
    return checkedSegments(name)[-1]
