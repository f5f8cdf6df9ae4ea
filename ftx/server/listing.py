"""
The reply to C{list}: one C{210 NAME SIZE MTIME} line a file, then
C{211 COUNT}, written a few hundred lines at a time (L{listCommand}).

A mirror's re-run lists every file of the tree, ten thousand or more, to
compare them: formatting each line through L{wire.formatLine} and
L{wire.encodeName} (two calls, a list, three C{str()} and an encode a
line) was a quarter of the server's cost of the listing. A name of only
the characters percent-encoding leaves as they are (the usual case) is
written as it is, with one C{bytes} C{%} format a line; any other goes
through L{wire.encodeName}, so the lines are the same bytes either way.

On the filesystem, L{walkReply} makes the lines while it walks, in the
worker thread (L{listedReply}): no L{ftx.server.storage.StoredFile} a
file, no sort of the whole tree, no C{lstat} a folder, and a folder's
encoded name made once for every file in it. The lines made so far are
handed on every L{CHUNK} lines (C{emit}, which the protocol writes from
the reactor thread): the client reads and parses the first folders while
the server walks the last ones, where it used to wait for the whole walk
and then parse ten thousand lines.
"""

from __future__ import annotations

import os
import re
import sys
from functools import partial
from operator import itemgetter
from typing import Callable, Iterable, List, Optional, Tuple

from twisted.internet.defer import inlineCallbacks

from ftx.protocol import wire
from ftx.protocol.names import MAX_NAME, MAX_SEGMENT, PARTIAL_SUFFIX, listable
from ftx.protocol.wire import decodeName, encodeName, nameText
from ftx.server.connection import checkArity

__all__ = ["CHUNK", "listCommand", "listingReply", "listedReply", "walkReply"]

#: The listing lines handed on at once while walking (about 40 bytes
#: each): enough that each write is worth its trip to the reactor.
CHUNK = 800

#: What L{wire.encodeName} leaves as it is: letters, digits and C{-._~/}.
_PLAIN = re.compile(rb"[A-Za-z0-9_.~/-]+\Z")

_KIND, _FILE, _LINK = 0o170000, 0o100000, 0o120000
_FOLDER_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_byKey = itemgetter(0)
#: What could make a file's name (one part, no C{/}) unlisted
#: (L{listable}'s rules): a control character or backslash, a part too
#: long, a partial file's suffix. Searched over a folder's names joined
#: with C{/}.
_SUSPECT = re.compile(rb"[\x00-\x1f\x7f\\]|[^/]{%d,}|%s(?:/|\Z)" % (MAX_SEGMENT + 1, re.escape(PARTIAL_SUFFIX)))
_LINE = b"%d %%s%%s %%d %%d\r\n" % wire.LIST_ENTRY

if sys.getfilesystemencoding().lower().replace("-", "") == "utf8":

    def _fsencode(name: str) -> bytes:
        return name.encode("utf-8", "surrogateescape")

else:  # pragma: no cover - Linux servers use UTF-8 names
    _fsencode = os.fsencode


def _encoded(name: bytes) -> bytes:
    return name if _PLAIN.match(name) is not None else encodeName(name).encode("ascii")


@inlineCallbacks
def listCommand(connection, args):
    """
    C{list [MASK]} on C{connection} (L{ftx.server.connection.IConnection}):
    the lines are written as the walk in a worker thread makes them.
    """
    checkArity(args, 0, 1, "list [MASK]")
    mask = decodeName(args[0]) if args else None
    connection.permit("read", mask)

    def write(data: bytes) -> None:
        if not connection.disconnected:
            connection.transport.write(data)

    emit = partial(connection.reactor.callFromThread, write)
    rest, count = yield connection.threaded(listedReply, connection.storage, mask, emit)
    write(rest)
    connection.log.info(
        "{peer} list {mask}: {count} entries", peer=connection.peer, mask=nameText(mask or b"*"), count=count
    )


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


def listedReply(storage, mask: Optional[bytes], emit: Optional[Callable[[bytes], None]] = None) -> Tuple[bytes, int]:
    """
    The reply to C{list MASK} and how many files it names; runs in a worker
    thread. A storage with C{listingReply} (the filesystem) makes it as it
    walks, and hands the lines made so far to C{emit} as it goes: then the
    reply returned is the rest; any other storage, or a mask it leaves to
    L{listFiles}, the usual way, whole.
    """
    walk = getattr(storage, "listingReply", None)
    made = walk(mask, emit) if walk is not None else None
    if made is None:
        entries = storage.listFiles(mask)
        return listingReply(entries), len(entries)
    return made


def walkReply(
    fd: int, prefix: bytes, listedStat: Callable[[int, bytes], Optional[os.stat_result]],
    emit: Optional[Callable[[bytes], None]] = None,
) -> Tuple[bytes, int]:
    """
    The reply to C{list} for every file below the folder open as C{fd}
    (left open), named C{prefix + NAME}: the lines of
    L{ftx.server.filesystem.FilesystemStorage.listFiles}, in its order (by
    the names' bytes), without making its list.

    Each folder's entries are sorted with a folder's name followed by C{/}:
    depth first in that order is the order of the whole names. Links are
    never followed into folders (a folder is opened with C{O_NOFOLLOW}
    under the one above it, as C{os.fwalk} does); a link to a file is
    listed only as C{listedStat(fd, name)} allows. A folder whose names
    could none be listed (L{listable}: a bad part, too long, too deep) is
    not entered.

    With C{emit}, the lines made so far are passed to it after each folder
    once they are L{CHUNK} or more, and the reply returned is only
    what is left: the lines not emitted and C{211 COUNT} (the count of
    them all).
    """
    lines = _Lines(emit)
    _walkFolder(fd, prefix, _encoded(prefix) if prefix else b"", lines, listedStat)
    count = lines.count + len(lines)
    lines.append(wire.formatLine(wire.LIST_END, count) + wire.LINE_END)
    return b"".join(lines), count


class _Lines(list):
    """
    The lines of a listing not handed on yet; L{folderDone} hands them to
    C{emit} once they are L{CHUNK} or more.
    """

    def __init__(self, emit: Optional[Callable[[bytes], None]]) -> None:
        super().__init__()
        self.emit = emit
        #: Lines handed on so far.
        self.count = 0

    def folderDone(self) -> None:
        if self.emit is None or len(self) < CHUNK:
            return
        chunk = b"".join(self)
        self.count += len(self)
        del self[:]
        self.emit(chunk)


def _walkFolder(fd: int, prefix: bytes, shown: bytes, lines: _Lines, listedStat) -> None:
    try:
        scan = os.scandir(fd)
    except OSError:
        return
    found = []
    with scan:
        for entry in scan:
            name = _fsencode(entry.name)
            if entry.is_dir(follow_symlinks=False):
                found.append((name + b"/", None))
            else:
                found.append((name, entry))
    found.sort(key=_byKey)
    fileNames = [name for name, entry in found if entry is not None]
    # The names of a folder checked at once: when none of them has a part
    # L{listable} could refuse, each is listable (the prefix is, and the
    # rest is one part), with no check a file.
    joined = b"/".join(fileNames)
    everyName = not fileNames or (
        len(prefix) + max(map(len, fileNames)) <= MAX_NAME and _SUSPECT.search(joined) is None
        and (not prefix or listable(prefix + b"-"))
    )
    # And when every name is written as it is (C{/} is plain too), none is
    # looked at again.
    plain = _PLAIN.match if _PLAIN.match(joined) is None else _isPlain
    line = _LINE
    append = lines.append
    for name, entry in found:
        if entry is None:
            folder = prefix + name
            # A name one level below: if it cannot be listed, none can.
            if not listable(folder + b"-"):
                continue
            try:
                below = os.open(name[:-1], _FOLDER_OPEN, dir_fd=fd)
            except OSError:
                continue
            try:
                _walkFolder(below, folder, shown + _encoded(name), lines, listedStat)
            finally:
                os.close(below)
            continue
        if not everyName and not listable(prefix + name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        kind = st.st_mode & _KIND
        if kind == _LINK:
            st = listedStat(fd, name)
            if st is None:
                continue
        elif kind != _FILE:
            continue
        append(line % (shown, name if plain(name) else _encoded(name), st.st_size, int(st.st_mtime)))
    lines.folderDone()


def _isPlain(name: bytes) -> bool:
    return True
