"""
What the client's methods fire with: L{Entry} for a listed file,
L{DiskSpace} for C{df}, L{Transfer} for a finished download or upload.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ftx.protocol import checksums

__all__ = ["Entry", "DiskSpace", "Transfer"]


class Entry(NamedTuple):
    """
    A file on the server.
    """

    name: str
    size: int
    mtime: int


class DiskSpace(NamedTuple):
    """
    The total and free bytes of the disk that holds the server's files, and
    the bytes used as df(1) counts them (total less the free blocks, where
    blocks reserved for root count as free); L{None} when the server does
    not say (older servers, and the UDP answer).
    """

    total: int
    free: int
    used: Optional[int] = None


class Transfer(NamedTuple):
    """
    A finished transfer: the server's name, the local path, the file's size,
    its digest (checked end to end), how many bytes actually crossed the
    connection (less than C{size} after a resume), and which checksum the
    digest is (L{ftx.protocol.checksums}: C{"xxh128"} when both ends have it).
    """

    name: str
    path: str
    size: int
    digest: str
    transferred: int
    checksum: str = checksums.SHA1

    @property
    def sha1(self) -> Optional[str]:
        """
        The file's SHA-1 when the connection checked by SHA-1, else L{None}
        (ask the server with C{hash} when the SHA-1 itself is wanted).
        """
        return self.digest if self.checksum == checksums.SHA1 else None
