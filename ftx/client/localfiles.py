"""
Where the client puts what it receives.

A download goes to a hidden partial file beside its final name and is
renamed into place only once its digest checks out. The partial file is kept
when a transfer is cut off, so ``cget`` can continue it. Names come from
the server and are checked like the server checks names from clients: a
hostile server cannot make the client write outside the target folder.
"""

from __future__ import annotations

import errno
import os
from typing import Optional

from ftx._io.fileio import writeAll
from ftx.client import safenames
from ftx.errors import PermissionDenied

__all__ = [
    "PARTIAL_SUFFIX",
    "PartialFile",
    "discard",
    "existingSize",
    "localError",
    "localPath",
    "makeParents",
    "openPartial",
    "openPartialFd",
    "partialPath",
]

PARTIAL_SUFFIX = ".ftx-partial"


def localPath(directory: str, name: bytes, mask: Optional[bytes] = None) -> str:
    """
    The local path for a name received from the server, inside
    C{directory} (L{ftx.client.safenames.localTarget}).

    @raise ftx.errors.UnsafeName: the name is malformed, does not match
        C{mask}, or would leave C{directory}.
    """
    return safenames.localTarget(directory, name, mask)


def partialPath(path: str) -> str:
    """
    The partial file that stands for C{path} while it is being received.
    """
    head, tail = os.path.split(path)
    return os.path.join(head, "." + tail + PARTIAL_SUFFIX)


def openPartial(partial: str, truncate: bool):
    """
    Open a partial file for writing, unbuffered, never through a link: a
    link in its place could point anywhere. (L{safenames.confined} refused
    such a link when the file was planned; this closes the gap after.)
    """
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if truncate:
        flags |= os.O_TRUNC
    return open(os.open(partial, flags, 0o666), "wb" if truncate else "r+b", buffering=0)


def openPartialFd(partial: str) -> int:
    """
    L{openPartial} truncating, as a bare descriptor: for a small file
    written whole at once (L{ftx.client.smallfiles}).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(partial, flags, 0o666)


def existingSize(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def makeParents(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)


class PartialFile:
    """
    A file being received: appended to from C{offset}, hashed as it grows,
    moved to its final name by L{finish}.
    """

    def __init__(self, path: str, offset: int, hasher) -> None:
        self.path = path
        self.partial = partialPath(path)
        makeParents(path)
        self.hasher = hasher
        self.received = offset
        self._file = openPartial(self.partial, truncate=not offset)
        if offset:
            self._file.seek(offset)
            self._file.truncate(offset)

    def store(self, data: bytes) -> None:
        """
        Append without hashing: the caller feeds C{hasher} itself (in a
        worker thread, L{ftx._io.background.BackgroundWriter}).
        """
        writeAll(self._file, data)
        self.received += len(data)

    def finish(self, expected: str) -> bool:
        """
        Close, check the digest and rename into place. On a mismatch the
        partial file is removed (its content is wrong, not merely short)
        and L{False} is returned.
        """
        self._file.close()
        if self.hasher.hexdigest() != expected:
            discard(self.partial)
            return False
        os.replace(self.partial, self.path)
        return True

    def keep(self) -> None:
        """
        Stop, keeping what arrived for a later ``cget``.
        """
        if not self._file.closed:
            self._file.close()


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def localError(error: OSError, path: str):
    """
    The L{ftx.errors} exception for a local file problem, so the command
    line reports a missing local file the same way as a missing remote one.
    """
    from ftx.errors import Conflict, FtxError, NotFound

    if error.errno == errno.ENOENT:
        return NotFound("no such local file: {}".format(path))
    if error.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied("cannot read local file: {}".format(path))
    if error.errno == errno.EISDIR:
        return Conflict("is a directory: {}".format(path))
    return FtxError("{}: {}".format(path, error.strerror))
