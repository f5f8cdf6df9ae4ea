"""
What the commands need to know about names on the server and files here:
whether a name is a file or a folder, a folder named as a user types it
(C{photos/}, C{photos/.}, C{.}), the local digest to compare with the
server's, the server's modification time put on a download, and the
summary a batch ends with.
"""

from __future__ import annotations

import hashlib
import os
from typing import List, Optional, Tuple

from twisted.python.failure import Failure

from ftx.client.results import Entry
from ftx.errors import BadRequest, ConnectionLost, FtxError

__all__ = ["escapeMask", "hasWildcard", "folderForm", "lookUp", "localSha1", "keepMtime", "Tally", "useR"]


def escapeMask(name: str) -> str:
    """
    A mask that matches exactly C{name}, wildcard characters and all.
    """
    return "".join("[{}]".format(c) if c in "*?[" else c for c in name)


def hasWildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


def folderForm(text: str) -> Tuple[str, bool]:
    """
    C{text} as the server's name, and whether the user wrote it as a folder:
    a trailing C{/} or C{/.}, or C{.} alone, means the folder itself
    (C{("photos", True)}); C{""} stands for the root.
    """
    name, folder = text, False
    while True:
        if name in (".", "./"):
            return "", True
        if name.endswith("/"):
            name, folder = name[:-1], True
        elif name.endswith("/."):
            name, folder = name[:-2], True
        else:
            break
    while name.startswith("./"):
        name = name[2:]
    return name, folder


def lookUp(ctx, name: str) -> Tuple[Optional[Entry], List[Entry]]:
    """
    What C{name} is on the server: C{(entry, [])} for a file,
    C{(None, files below it)} for a folder (an empty folder looks like a
    missing name: the listing shows files only), C{(None, [])} otherwise.
    """
    if not name:
        return None, ctx.call("list", None)
    # Without wildcard characters the mask is the name itself, and a
    # folder's name lists what is below it.
    found = ctx.call("list", escapeMask(name))
    for entry in found:
        if entry.name == name:
            return entry, []
    return None, [e for e in found if e.name.startswith(name + "/")]


def useR(command: str, name: str) -> BadRequest:
    """
    The error for a folder given to a command without C{-r}.
    """
    return BadRequest("{} is a folder; use -r ('ftx {} -r {}')".format(name or ".", command, name or "."))


def localSha1(path: str) -> str:
    from ftx._io.fileio import hashToEnd

    with open(path, "rb", buffering=0) as f:
        return hashToEnd(f, hashlib.sha1()).hexdigest()


def keepMtime(path: str, mtime: Optional[int]) -> None:
    """
    Give a downloaded file the server's modification time, as C{rsync -t}
    and C{wget} do; a file system that refuses keeps the time of download.
    """
    if mtime is None:
        return
    try:
        # Not when it has that time already: a change of status would make
        # the local digest cache (keyed by ctime too) forget the file.
        if os.stat(path).st_mtime_ns == mtime * 10**9:
            return
        os.utime(path, (mtime, mtime))
    except (OSError, OverflowError):
        pass


class Tally:
    """
    How a batch went, file by file: each failure is reported as it happens
    (by the caller), and L{finish} ends with one line that carries the
    first failure's class, hence the exit status.
    """

    def __init__(self, count: int = 0) -> None:
        self.count = count
        self.failures: List[FtxError] = []

    def failed(self, error: FtxError, reporter=None, label: str = "") -> None:
        """
        Count a failure; with a C{reporter}, say it now when the batch has
        more than one file (a single file's error is the one L{finish}
        raises, said once).
        """
        self.failures.append(error)
        if reporter is not None and self.count > 1:
            text = str(error)
            reporter.error("{}: {}".format(label, text) if label and not text.startswith(label) else text)

    def failedInBatch(self, error, reporter=None, label: str = "") -> None:
        """
        L{failed}, for one file of a batch run at once (C{error} an
        exception or a L{Failure}): a lost connection ends the whole batch
        and anything but an L{FtxError} is a bug, so both are raised (a
        Failure's with its traceback) instead of counted.
        """
        value = error.value if isinstance(error, Failure) else error
        if isinstance(value, ConnectionLost) or not isinstance(value, FtxError):
            if value is not error:
                error.raiseException()
            raise value
        self.failed(value, reporter, label)

    def finish(self) -> None:
        if not self.failures:
            return
        first = self.failures[0]
        if self.count <= 1 and len(self.failures) == 1:
            raise first
        raise type(first)("{} of {} files failed (the first: {})".format(len(self.failures), self.count, first))
