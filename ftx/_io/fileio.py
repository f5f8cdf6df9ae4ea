"""
Reading and writing open files, the same way on the client and the server.

These work on files already opened (by L{ftx.server.storage} inside the root, or
by the client on its own disk); they never look at paths.
"""

from __future__ import annotations

import errno
import hashlib
import os

from ftx._io import buffers
from ftx.errors import IntegrityError
from ftx.protocol.wire import nameText

#: Bytes read at a time when hashing a file.
READ_CHUNK = 1 << 20
#: The most one C{write} stores. Writes that each cover a whole aligned
#: MiB of a new file cost a median 1.45-1.90 system CPU s per GiB on this
#: project's VM, against 0.36-0.45 for 256 KiB writes or 1 MiB ones off
#: the MiB boundaries (C{bench/writeshape.py}, a fresh process each; all of
#: it in the copy into the page cache; our guess: large folios taken from
#: memory the host had reclaimed). A compressed body's raw blocks arrived
#: exactly so; a plain body's writes seldom line up.
WRITE_PIECE = 256 << 10


def writeAll(f, data) -> None:
    """
    Write all of C{data} to the unbuffered file C{f}. A raw write may store
    fewer bytes than asked (it does just before a disk fills up); the rest
    is written again, so a file never silently lacks bytes its digest
    covers, and a write that stores nothing is a full disk.
    """
    view = memoryview(data)
    while view:
        written = f.write(view[:WRITE_PIECE])
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def writeAllTo(fd: int, data) -> None:
    """
    L{writeAll} for a bare file descriptor: a small file written whole
    needs no file object, whose creation costs an C{fstat} a file.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:WRITE_PIECE])
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def hashToEnd(f, hasher):
    """
    Feed C{hasher} the rest of the unbuffered file C{f}, read into a
    page-aligned buffer (L{buffers}: the kernel's copy into one costs less
    than into a C{bytes} it allocates); returns C{hasher}.
    """
    view = buffers.lend(READ_CHUNK)
    try:
        while True:
            got = f.readinto(view)
            if not got:
                return hasher
            hasher.update(view[:got])
    finally:
        buffers.giveBack(view)


def hashPrefix(f, count: int, name: bytes, also=None):
    """
    SHA-1 of the next C{count} bytes of C{f}. hashlib releases the GIL on
    large buffers, so this runs in parallel with the reactor thread.

    C{also}, a hasher of the connection's checksum, is fed the same bytes
    in the same pass: a resume checks the prefix by SHA-1 but goes on to
    check the whole file by the connection's checksum.
    """
    hasher = hashlib.sha1()
    view = buffers.lend(READ_CHUNK)
    try:
        remaining = count
        while remaining > 0:
            got = f.readinto(view[: min(READ_CHUNK, remaining)])
            if not got:
                raise IntegrityError("{} shrank while it was being read".format(nameText(name)))
            hasher.update(view[:got])
            if also is not None:
                also.update(view[:got])
            remaining -= got
    finally:
        buffers.giveBack(view)
    return hasher
