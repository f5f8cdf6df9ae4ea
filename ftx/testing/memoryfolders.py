"""
The parts of L{ftx.testing.MemoryStorage} that act on whole folders or pick
a name: C{mkdir}, C{rmtree}, and where a no-clobber or renaming upload
lands. They work on the storage's shared state and answer as
L{ftx.server.filesystem.FilesystemStorage} does.
"""

from __future__ import annotations

import itertools
from typing import List, Optional

from ftx.errors import AlreadyExists, Conflict, NotFound
from ftx.protocol.names import PARTIAL_SUFFIX
from ftx.protocol.wire import nameText
from ftx.server.storage import PUT_NEW, PUT_RENAME, renamedLeaves

__all__ = ["makeFolder", "removeFolder", "freeName", "entries"]


def makeFolder(memory, full: bytes, name: bytes) -> None:
    """
    Create the folder C{full} and those above it.

    @raise AlreadyExists: a file holds the name or one above it.
    """
    with memory.lock:
        if full in memory.files or memory.fileInTheWay(full):
            raise AlreadyExists("a file is in the way of the folder {}".format(nameText(name)))
        made = len(memory.missingFolders(full + b"/"))
        memory.makeFolders(full + b"/")
    if memory.quota is not None and made:
        memory.quota.wrote(0, memory.quota.charge(0, 0, made))


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
        partials = [f for f in memory.partials if f.startswith(below)]
        for f in partials:
            freed += memory.dropPartial(f)
        folders = {f for f in memory.folders if f == full or f.startswith(below)}
        memory.folders -= folders
    if memory.quota is not None:
        # Bytes, and the charge of every file, partial file and folder.
        memory.quota.freed(memory.quota.charge(freed, len(files) + len(partials), len(folders)))
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


def entries(memory, base: bytes) -> List[bytes]:
    """
    For L{ftx.testing.MemoryStorage.folderEntries}: what a listing of the
    folder C{base} (a full name ending in C{/}, or empty for the root)
    would show on disk.
    """
    found = set()
    with memory.lock:
        for full in itertools.chain(memory.files, memory.folders):
            if full.startswith(base) and len(full) > len(base):
                found.add(full[len(base) :].split(b"/", 1)[0])
        for full in memory.partials:
            rest = full[len(base) :] if full.startswith(base) else b""
            if rest and b"/" in rest:
                found.add(rest.split(b"/", 1)[0])
            elif rest:
                found.add(b"." + rest + PARTIAL_SUFFIX)
    return sorted(found)
