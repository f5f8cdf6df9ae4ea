"""
The server's listing for a mirror (L{Listing}, asked for at once, taken as
it comes or whole), and a download mirror's plan made as it arrives, by looking
here at each file it names (L{planAsListed}), for a run that deletes
nothing and compares by rsync's quick check.

The usual plan walks the whole local tree first (L{ftx.cli.mirrorplan.scanTree}:
an C{lstat}, a name and a record a file), then compares it with the whole
listing. A re-run of ten thousand files spent more of its time there than
anywhere: the walk was the last to end, after the server's own. Without
C{--delete}, what is here and not on the server does not matter; so each
listed file is looked at (one C{fstatat} in its folder, opened once, never
through a link) while the server walks on, and the plan is done when the
listing is. The same plan as L{ftx.cli.mirrorplan.planMirror}'s: what is
missing here, not a regular file (a link, a folder), or of another size or
time is transferred; a partial download beside it is continued.
"""

from __future__ import annotations

import os
import queue
import re
import stat
from typing import Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure

from ftx.cli.mirrorplan import Action, Filters, Plan
from ftx.cli.remotefiles import Tally, hasWildcard
from ftx.cli.terminal import printable
from ftx.client.results import Entry
from ftx.errors import Conflict, UnsafeName
from ftx.protocol.names import PARTIAL_SUFFIX

__all__ = ["Listing", "planAsListed", "remoteFiles"]

_TOP_OPEN = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
#: Below the top, a folder is never entered through a link.
_FOLDER_OPEN = _TOP_OPEN | os.O_NOFOLLOW
#: A name with an empty, C{.} or C{..} part: never looked for here (it is
#: planned, and refused before anything is written, L{ftx.client.safenames}).
_ODD_PART = re.compile(r"(?:\A|/)\.{0,2}(?:/|\Z)")
_ODD_NAMES = frozenset(("", ".", ".."))
_PARTIAL = PARTIAL_SUFFIX.decode("ascii")
_KIND, _FILE = 0o170000, stat.S_IFREG


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class _Folders:
    """
    The local folders under the top, each opened once, relative to the
    one above it and never through a link (L{None}: not a folder here).
    """

    def __init__(self, top: str) -> None:
        self._fds: Dict[str, Optional[int]] = {}
        try:
            self._fds[""] = os.open(top, _TOP_OPEN)
        except OSError:
            self._fds[""] = None

    def fd(self, folder: str) -> Optional[int]:
        fds = self._fds
        if folder in fds:
            return fds[folder]
        parent, _, last = folder.rpartition("/")
        above = self.fd(parent)
        opened = None
        if above is not None:
            try:
                opened = os.open(last, _FOLDER_OPEN, dir_fd=above)
            except (OSError, ValueError):
                pass
        fds[folder] = opened
        return opened

    def close(self) -> None:
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)
        self._fds.clear()


def planAsListed(local: str, folder: str, filters: Filters, arriving: Iterable[List[Entry]]) -> Plan:
    """
    The plan that makes C{local} hold what the server's C{folder} holds,
    without deletions, from the listing's entries as they arrive
    (C{arriving}: lists of them, in the listing's order, until it ends).
    A name not under C{folder} is left out (the caller reports it).
    """
    plan = Plan()
    prefix = folder + "/" if folder else ""
    skip = len(prefix)
    included = filters.included if filters.rules else None
    folders = _Folders(local)
    transfers = plan.transfers
    unchanged = excluded = 0
    lstat = os.stat
    # The listing names the files of one folder one after the other.
    lastHead: Optional[str] = None
    fd: Optional[int] = None
    try:
        for entries in arriving:
            for entry in entries:
                name = entry.name
                if prefix:
                    if not name.startswith(prefix):
                        continue
                    name = name[skip:]
                if included is not None and not included(name):
                    excluded += 1
                    continue
                head, _, base = name.rpartition("/")
                if head != lastHead:
                    lastHead = head
                    fd = folders.fd(head) if not head or _ODD_PART.search(head) is None else None
                st = None
                if fd is not None and base not in _ODD_NAMES:
                    try:
                        st = lstat(base, dir_fd=fd, follow_symlinks=False)
                    except (OSError, ValueError):
                        pass
                if (
                    st is not None and st.st_mode & _KIND == _FILE
                    and st.st_size == entry.size and int(st.st_mtime) == entry.mtime
                ):
                    unchanged += 1
                    continue
                transfers.append(Action(_verb(fd, base, entry.size), name, entry.size, entry))
    finally:
        folders.close()
    plan.unchanged, plan.excluded = unchanged, excluded
    transfers.sort(key=lambda action: action.name)
    return plan


def _verb(fd: Optional[int], base: str, size: int) -> str:
    """
    C{continue} when a partial download of the file is here, a regular
    file no longer than the server's; else C{get}.
    """
    if fd is None:
        return "get"
    try:
        st = os.stat("." + base + _PARTIAL, dir_fd=fd, follow_symlinks=False)
    except (OSError, ValueError):
        return "get"
    return "continue" if stat.S_ISREG(st.st_mode) and st.st_size <= size else "get"


class Listing:
    """
    The server's listing of a folder, asked for at once and waited for
    later (L{files}): the server walks its tree while this side walks the
    local one, on the other core.
    """

    def __init__(self, ctx, folder: str, streamed: bool = False) -> None:
        self.folder = folder
        if hasWildcard(folder):
            # A mask with wildcards lists one level only: list the folder
            # above that has none, and keep what is under this one.
            fixed = []
            for segment in folder.split("/"):
                if hasWildcard(segment):
                    break
                fixed.append(segment)
            asked = "/".join(fixed) or None
        else:
            asked = folder or None
        client = ctx.connection.client
        self._answer: "queue.Queue" = queue.Queue(1)
        #: With C{streamed}, each batch of entries as it comes, then L{None}
        #: once the listing has ended (L{arriving}).
        self._batches: "Optional[queue.SimpleQueue]" = queue.SimpleQueue() if streamed else None
        arrived = self._batches.put if streamed else None

        def ended(result):
            self._answer.put(result)
            if arrived is not None:
                arrived(None)

        ctx.connection.runner.reactor.callFromThread(
            lambda: maybeDeferred(client.list, asked, arrived).addBoth(ended))

    def arriving(self):
        """
        The listing's entries, a batch at a time as they come, until it
        ends (whether it came whole or failed: L{files} says).
        """
        return iter(self._batches.get, None)

    def files(self, ctx, tally: Tally) -> Tuple[Dict[str, Entry], List[Entry]]:
        """
        Wait for the listing: L{remoteFiles} of what came.
        """
        found = self._answer.get()
        if isinstance(found, Failure):
            found.raiseException()
        return remoteFiles(ctx, self.folder, found, tally)


def remoteFiles(ctx, folder: str, found: List[Entry], tally: Tally) -> Tuple[Dict[str, Entry], List[Entry]]:
    """
    The files under the server's C{folder} in its listing C{found}, by
    name relative to it, and the listing itself. A name outside C{folder}
    is reported and left out; the names of files to download are checked
    further when planned (L{_safeTransfers}): on a re-run most names are
    only compared.

    @raise Conflict: C{folder} is a file.
    """
    prefix = folder + "/" if folder else ""
    tally.count = len(found)
    if not folder:
        # The whole tree: every listed name is under it.
        files = {entry.name: entry for entry in found}
        if "" in files:
            raise Conflict("the server listed a file with no name")
        return files, found
    if hasWildcard(folder):
        found = [e for e in found if e.name == folder or e.name.startswith(prefix)]
    files: Dict[str, Entry] = {}
    for entry in found:
        if entry.name == folder:
            raise Conflict("{} is a file on the server, not a folder".format(printable(folder)))
        if not entry.name.startswith(prefix):
            tally.failed(UnsafeName("refused the name {} from the server: it is not under {}".format(
                ascii(entry.name), ascii(folder)), _raw(entry.name)), ctx.reporter)
            continue
        files[entry.name[len(prefix):]] = entry
    tally.count = len(found)
    return files, found
