"""
Page-aligned buffers for the kernel to copy file and socket bytes into.

A C{bytearray} of a megabyte comes from C{malloc}'s own mapping, whose
first 16 bytes are C{malloc}'s header: the buffer starts 16 bytes past a
page boundary, while the page cache's pages start on one. The kernel's
copy (C{rep movsb}) then stores each byte 16 bytes past, modulo 4 KiB,
the byte it loads next, and the CPU (4K aliasing, as far as we can tell)
takes those loads for reads of the stores in flight and stalls. Measured
on this machine (AMD EPYC, C{erms} and C{fsrm}), 1 GiB from the page
cache through C{preadv} into a 1 MiB buffer, then XXH3-128: 0.62-0.79
CPU s into a C{bytearray}, 0.63-0.74 s at 1, 8 or 16 bytes past a page,
0.15-0.19 s at 0, 48, 80 or 4080; hashing straight from an C{mmap} of
the file, 0.12-0.16 s. A socket's C{recv_into} and a file C{write} of
the same bytes: 1.45-2.03 CPU s misaligned, 0.62-0.87 s aligned. So
copying the file into user space was not what cost (mapping it would
save 0.03 s per GiB and risk C{SIGBUS}): where the copy landed was.

An anonymous mapping starts on a page, so a memoryview of one is aligned
for every offset that is a multiple of 64, which is what the callers
slice at (they step by powers of two). A fresh mapping costs its
C{mmap}, a fault per page touched and an C{munmap}: about 80 us more per
64 KiB prefix hashed than a bytearray off the heap, so readers that run
once per file borrow a buffer (L{lend}, L{giveBack}) instead.
"""

from __future__ import annotations

import mmap
import threading
from typing import Dict, List

__all__ = ["alignedBuffer", "lend", "giveBack", "KEEP_IDLE", "PAGE", "landing"]

#: The page size: the kernel's copies line up within one.
PAGE = mmap.PAGESIZE

#: Idle buffers kept per size for the next reader: a few threads read at
#: once (the thread pool's hashing, a body thread or two).
KEEP_IDLE = 4

_lock = threading.Lock()
_idle: Dict[int, List[memoryview]] = {}


def alignedBuffer(size: int) -> memoryview:
    """
    A writable, zero-filled buffer of C{size} bytes (at least one) that
    starts on a page boundary, for C{recv_into}, C{preadv}, C{readinto}
    and hashing.

    Its memory is its own anonymous mapping, returned to the system when
    the last view of it is gone; nothing else can map it, so unlike a
    file's mapping it cannot fault when a file shrinks.
    """
    return memoryview(mmap.mmap(-1, max(1, size)))


def landing(position: int) -> int:
    """
    Where in an aligned buffer to receive the file byte at C{position},
    so that it lands at the offset within a page it has in the file.

    A body sent by C{sendfile} reaches the receiver's socket in the
    sender's page-cache pages, each byte at its file offset within a page.
    A body thread that starts receiving after a line and some early bytes
    (C{151 N N}, 21 bytes, then the rest of a 64 KiB read) would otherwise
    land every byte a few bytes past where it came from: the stalled copy
    described above. A compressed upload of random bytes spent four times
    the CPU in C{_copy_to_iter} that a plain one did.
    """
    return position % PAGE


def lend(size: int) -> memoryview:
    """
    An L{alignedBuffer} of C{size} bytes (at least one), one given back
    earlier when there is one: its bytes are what the last borrower left.
    Any thread; hand it back with L{giveBack} once done with it.
    """
    with _lock:
        free = _idle.get(max(1, size))
        if free:
            return free.pop()
    return alignedBuffer(size)


def giveBack(view: memoryview) -> None:
    """
    Return a buffer from L{lend}, which no one uses any more, for the next
    borrower; beyond L{KEEP_IDLE} of its size it goes back to the system.
    """
    with _lock:
        free = _idle.setdefault(len(view), [])
        if len(free) < KEEP_IDLE:
            free.append(view)
