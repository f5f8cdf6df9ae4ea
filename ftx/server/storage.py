"""
The storage contract of the server: L{IStorage}, what every backend
provides, and L{Entry}, one listed file. The filesystem backend is
L{ftx.server.filesystem.FilesystemStorage}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, NamedTuple, Optional, Tuple

from zope.interface import Interface

if TYPE_CHECKING:
    from ftx.server.partial import Upload

__all__ = ["IStorage", "Entry"]


class Entry(NamedTuple):
    """
    One regular file under the root.
    """

    name: bytes
    size: int
    mtime: int


class IStorage(Interface):
    """
    Where the server keeps files. The filesystem is the one backend today;
    the interface is the seam for another.
    """

    def listFiles(mask: Optional[bytes]) -> List[Entry]:
        """
        Regular files matching C{mask} (every file when L{None}).
        """

    def openForRead(name: bytes) -> Tuple[object, int]:
        """
        Open a file for sending: a binary file object and its size.
        """

    def digest(name: bytes, length: Optional[int]) -> Tuple[str, int]:
        """
        SHA-1 of the file or its first C{length} bytes, and that length.
        """

    def prefixHasher(name: bytes, length: int, also: object) -> Tuple[object, object, int]:
        """
        Open a file, check that it has C{length} bytes, and hash them by
        SHA-1 (and into C{also}, if given): the open file (positioned at
        C{length}), the SHA-1 hasher and the size.
        """

    def readSmall(f: object, size: int, checksum: str) -> Tuple[bytes, str]:
        """
        The bytes of a small open file and their digest by C{checksum}
        (cached if known).
        """

    def beginUpload(name: bytes, size: int, offset: int, prefixSha1: Optional[str], checksum: str) -> "Upload":
        """
        Start receiving a file, to be checked by C{checksum}.
        """

    def partialUpload(name: bytes) -> Tuple[int, str]:
        """
        Bytes kept from an interrupted upload and their SHA-1.
        """

    def delete(name: bytes) -> None:
        """
        Remove a file.
        """

    def diskSpace() -> Tuple[int, int]:
        """
        Total and free bytes.
        """
