"""
The parts of L{ftx.testing.MemoryStorage} that act on whole folders or pick
a name: C{mkdir}, C{rmtree}, and where a no-clobber or renaming upload
lands. They work on the storage's shared state and answer as
L{ftx.server.filesystem.FilesystemStorage} does.
"""

from __future__ import annotations

import itertools
from typing import Optional

from ftx.errors import AlreadyExists, Conflict, NotFound
from ftx.protocol.wire import nameText
from ftx.server.storage import PUT_NEW, PUT_RENAME, renamedLeaves

__all__ = ["makeFolder", "removeFolder", "freeName"]


def makeFolder(memory, full: bytes, name: bytes) -> None:
    """
    Create the folder C{full} and those above it.

    @raise AlreadyExists: a file holds the name or one above it.
    """
    with memory.lock:
        if full in memory.files or memory.fileInTheWay(full):
            raise AlreadyExists("a file is in the way of the folder {}".format(nameText(name)))
        memory.makeFolders(full + b"/")


def removeFolder(memory, full: bytes, name: bytes) -> int:
    """
    Remove the folder C{full}, its files, folders and partial uploads;
    returns how many files went.
    """
    below = full + b"/"
    with memory.lock:
        if full in memory.files:
            raise Conflict("not a folder: {}".format(nameText(name)))
        if full not in memory.folders:
            raise NotFound("no such folder: {}".format(nameText(name)))
        files = [f for f in memory.files if f.startswith(below)]
        freed = 0
        for f in files:
            freed += len(memory.files.pop(f).data)
        memory.used -= freed
        for f in [f for f in memory.partials if f.startswith(below)]:
            freed += memory.dropPartial(f)
        memory.folders = {f for f in memory.folders if f != full and not f.startswith(below)}
    if memory.quota is not None and freed:
        memory.quota.freed(freed)
    return len(files)


def freeName(memory, full: bytes, mode: str) -> Optional[bytes]:
    """
    The full name a completed upload to C{full} takes under C{mode}, with
    the lock held: C{full} when free, else (to rename) the first free
    L{renamedLeaves} name; L{None} when a replace is wanted.

    @raise AlreadyExists: L{PUT_NEW} and the name is taken.
    """
    if mode not in (PUT_NEW, PUT_RENAME):
        return None
    folder, slash, leaf = full.rpartition(b"/")
    candidates = [full]
    if mode == PUT_RENAME:
        candidates = itertools.chain(candidates, (folder + slash + other for other in renamedLeaves(leaf)))
    for candidate in candidates:
        if candidate not in memory.files and candidate not in memory.folders:
            return candidate
    raise AlreadyExists("{} already exists on the server; nothing was changed".format(nameText(full)))
