"""
The root jail and every filesystem operation the server performs.

This is the only module that turns names from the wire into paths. A name
is checked segment by segment, then the file is opened and the *opened*
file's real path is checked again, so a symbolic link swapped in between
the check and the use still cannot lead outside the root.

Everything here is synchronous. Calls whose cost grows with a file's size
or a tree's size (L{Storage.listFiles}, L{Storage.digest}) are meant to run
in a thread; the server does that.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Tuple

from zope.interface import Interface, implementer

from ftx.errors import (
    Conflict,
    FtxError,
    NoSpace,
    NotFound,
    PermissionDenied,
)
from ftx.checksums import SHA1
from ftx.digestreads import DigestReads
from ftx.digests import DigestCache
from ftx.fileio import hashPrefix
from ftx.wire import EMPTY_SHA1, nameText

if TYPE_CHECKING:
    from ftx.upload import Upload

PARTIAL_SUFFIX = b".ftx-partial"
MAX_NAME = 4096
MAX_DEPTH = 128
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")


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


def _osError(error: OSError, name: bytes) -> FtxError:
    """
    Map an operating-system error to the wire error a client can act on.
    """
    shown = nameText(name)
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound("no such file: {}".format(shown))
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied("permission denied: {}".format(shown))
    if error.errno == errno.EISDIR:
        return Conflict("is a directory: {}".format(shown))
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace("no space left on the server for {}".format(shown))
    if error.errno == errno.ENAMETOOLONG:
        return PermissionDenied("name too long: {}".format(shown[:80]))
    return FtxError("cannot access {}: {}".format(shown, error.strerror))


def splitName(name: bytes) -> List[bytes]:
    """
    Split a name from the wire into checked segments.

    @raise PermissionDenied: the name could not be a path under the root.
    """
    shown = _CONTROL_TEXT.sub(lambda m: "\\x{:02x}".format(ord(m.group())), nameText(name)[:200])
    if not name:
        raise PermissionDenied("empty name")
    if b"\x00" in name or b"\\" in name:
        raise PermissionDenied("name contains NUL or backslash: {}".format(shown))
    if _CONTROL.search(name):
        # CR, LF and the like in a name would forge lines in logs and on
        # terminals that show names; no command accepts them.
        raise PermissionDenied("name contains a control character: {}".format(shown))
    if name.startswith(b"/"):
        raise PermissionDenied("absolute names are not allowed: {}".format(shown))
    if len(name) > MAX_NAME:
        raise PermissionDenied("name longer than {} bytes".format(MAX_NAME))
    segments = name.split(b"/")
    if len(segments) > MAX_DEPTH:
        # Deeper trees would be slow to walk and could exhaust the stack of
        # the recursive directory walk behind list.
        raise PermissionDenied("name more than {} levels deep".format(MAX_DEPTH))
    for segment in segments:
        if segment in (b"", b".", b".."):
            raise PermissionDenied("name leaves the root or has an empty part: {}".format(shown))
        if segment.endswith(PARTIAL_SUFFIX):
            raise PermissionDenied("names ending in .ftx-partial are reserved")
        if len(segment) > 255:
            raise PermissionDenied("name part longer than 255 bytes")
    return segments


def _matches(maskSegments: List[bytes], nameSegments: List[bytes]) -> bool:
    if len(maskSegments) != len(nameSegments):
        return False
    return all(fnmatchcase(n, m) for n, m in zip(nameSegments, maskSegments))


@implementer(IStorage)
class FilesystemStorage(DigestReads):
    """
    Files in one directory tree on the local filesystem.

    Symbolic links are followed only when what they point to stays inside
    the root; a link that leads outside behaves as if it did not exist for
    listing and is refused for every other use. Listing does not descend
    into linked directories, so a link loop cannot make it run forever.
    """

    def __init__(self, root: "str | bytes") -> None:
        if isinstance(root, str):
            root = os.fsencode(root)
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ValueError("root is not a directory: {!r}".format(root))
        self._rootPrefix = self.root.rstrip(b"/") + b"/"
        self._uploading: set = set()
        self._lock = threading.Lock()
        self.digests = DigestCache()
        #: An L{ftx.limits.Quota} when the root has one.
        self.quota = None

    # -- confinement ----------------------------------------------------

    def _inside(self, real: bytes) -> bool:
        return real == self.root or real.startswith(self._rootPrefix)

    def _checkOpened(self, fd: int, name: bytes) -> None:
        """
        Refuse an open file whose real location is outside the root. This is
        the check that closes the race between resolving a name and opening
        it: it looks at what was actually opened.
        """
        try:
            real = os.fsencode(os.readlink("/proc/self/fd/{}".format(fd)))
        except OSError:
            real = os.path.realpath(self._path(splitName(name)))
        if not self._inside(real):
            raise PermissionDenied("name resolves outside the root: {}".format(nameText(name)))

    def _path(self, segments: List[bytes]) -> bytes:
        return os.path.join(self.root, *segments)

    def _openDirectory(self, segments: List[bytes], create: bool) -> int:
        """
        Open the directory holding a name (creating missing levels when
        C{create}), checked to be inside the root. Returns a directory fd.
        """
        current = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for segment in segments:
                try:
                    nxt = os.open(segment, os.O_RDONLY | os.O_DIRECTORY, dir_fd=current)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(segment, 0o755, dir_fd=current)
                    except FileExistsError:
                        pass
                    nxt = os.open(segment, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
                os.close(current)
                current = nxt
                self._checkOpened(current, b"/".join(segments) or b".")
            return current
        except BaseException:
            os.close(current)
            raise

    def _openFile(self, name: bytes) -> Tuple[int, os.stat_result]:
        segments = splitName(name)
        try:
            # O_NONBLOCK keeps a FIFO planted in the root from blocking the
            # open; anything but a regular file is refused right after.
            fd = os.open(self._path(segments), os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            raise _osError(e, name)
        try:
            self._checkOpened(fd, name)
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise Conflict("is a directory: {}".format(nameText(name)))
            if not stat.S_ISREG(st.st_mode):
                raise PermissionDenied("not a regular file: {}".format(nameText(name)))
            os.set_blocking(fd, True)
            return fd, st
        except BaseException:
            os.close(fd)
            raise

    # -- reading --------------------------------------------------------

    def listFiles(self, mask: Optional[bytes] = None) -> List[Entry]:
        maskSegments: Optional[List[bytes]] = None
        prefix = b""
        startFd = None
        if mask:
            maskSegments = splitName(mask)
            if not any(c in mask for c in b"*?["):
                # A directory name lists what is below it. Opened and
                # checked like any directory, so a link swapped in later
                # cannot redirect the walk.
                try:
                    startFd = self._openDirectory(maskSegments, create=False)
                    prefix, maskSegments = mask + b"/", None
                except OSError:
                    startFd = None
        if startFd is None:
            startFd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        entries = []
        try:
            # fwalk works on directory fds and does not descend into linked
            # directories, so neither a swap nor a link loop can lead it out.
            for directory, dirnames, filenames, dirFd in os.fwalk(b".", dir_fd=startFd, follow_symlinks=False):
                here = prefix + (directory[2:] + b"/" if directory != b"." else b"")
                dirnames.sort()
                for filename in filenames:
                    if filename.endswith(PARTIAL_SUFFIX) or filename.startswith(b".ftx-tmp-") or _CONTROL.search(filename):
                        continue
                    name = here + filename
                    if maskSegments is not None and not _matches(maskSegments, name.split(b"/")):
                        continue
                    st = self._listedStat(dirFd, filename)
                    if st is not None:
                        entries.append(Entry(name, st.st_size, int(st.st_mtime)))
        finally:
            os.close(startFd)
        entries.sort(key=lambda e: e.name)
        return entries

    def _listedStat(self, dirFd: int, filename: bytes) -> Optional[os.stat_result]:
        """
        The status of a regular file to list, or L{None} to leave it out. A
        symbolic link is listed with its target's status only when the
        target, as actually opened, is a regular file inside the root.
        """
        try:
            st = os.stat(filename, dir_fd=dirFd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                fd = os.open(filename, getattr(os, "O_PATH", os.O_RDONLY) | os.O_NONBLOCK, dir_fd=dirFd)
                try:
                    if not self._inside(os.fsencode(os.readlink("/proc/self/fd/{}".format(fd)))):
                        return None
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
        except OSError:
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def openForRead(self, name: bytes) -> Tuple[object, int]:
        fd, st = self._openFile(name)
        return os.fdopen(fd, "rb", buffering=0), st.st_size

    def diskSpace(self) -> Tuple[int, int]:
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize
        if self.quota is not None:
            free = min(free, self.quota.available())
        return st.f_blocks * st.f_frsize, free

    # -- writing --------------------------------------------------------

    def _lockUpload(self, key: tuple, name: bytes) -> None:
        with self._lock:
            if key in self._uploading:
                raise Conflict("an upload to {} is already in progress".format(nameText(name)))
            self._uploading.add(key)

    def _unlockUpload(self, key: tuple) -> None:
        with self._lock:
            self._uploading.discard(key)

    def beginUpload(
        self, name: bytes, size: int, offset: int = 0, prefixSha1: Optional[str] = None, checksum: str = SHA1
    ) -> "Upload":
        """
        Start receiving C{name}. With a quota, C{size - offset} bytes are
        reserved first, so a refusal creates nothing. A name that is a
        symbolic link is replaced by the upload, never written through.
        """
        from ftx.upload import Upload

        segments = splitName(name)
        if self.quota is not None:
            self.quota.reserve(size - offset, name)
        try:
            try:
                dirFd = self._openDirectory(segments[:-1], create=True)
            except OSError as e:
                raise _osError(e, name)
        except BaseException:
            if self.quota is not None:
                self.quota.release(size - offset)
            raise
        try:
            leaf = segments[-1]
            self._refuseOutwardLink(dirFd, leaf, name)
            try:
                st = os.stat(leaf, dir_fd=dirFd)
            except FileNotFoundError:
                st = None
            except OSError as e:
                raise _osError(e, name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise Conflict("is a directory: {}".format(nameText(name)))
            key = (os.fstat(dirFd).st_ino, leaf)
            self._lockUpload(key, name)
        except BaseException:
            os.close(dirFd)
            if self.quota is not None:
                self.quota.release(size - offset)
            raise
        try:
            # From here the Upload owns the reservation and settles it.
            return Upload(self, name, dirFd, leaf, size, offset, prefixSha1, key, checksum)
        except BaseException:
            self._unlockUpload(key)
            os.close(dirFd)
            raise

    def _refuseOutwardLink(self, dirFd: int, leaf: bytes, name: bytes) -> None:
        """
        Refuse a write or delete of a symbolic link that leads outside the
        root, as every other command does. Neither ever acts on the target
        (put replaces the link, delete removes it), so a link swapped in
        after this check still cannot make them touch anything outside.
        """
        try:
            st = os.stat(leaf, dir_fd=dirFd, follow_symlinks=False)
        except OSError:
            return
        if not stat.S_ISLNK(st.st_mode):
            return
        try:
            fd = os.open(leaf, getattr(os, "O_PATH", os.O_RDONLY) | os.O_NONBLOCK, dir_fd=dirFd)
        except OSError:
            # Dangling or a loop: judge by where the link text points.
            base = os.fsencode(os.readlink("/proc/self/fd/{}".format(dirFd)))
            real = os.path.realpath(os.path.join(base, leaf))
        else:
            try:
                real = os.fsencode(os.readlink("/proc/self/fd/{}".format(fd)))
            finally:
                os.close(fd)
        if not self._inside(real):
            raise PermissionDenied("name resolves outside the root: {}".format(nameText(name)))

    def partialUpload(self, name: bytes) -> Tuple[int, str]:
        segments = splitName(name)
        try:
            dirFd = self._openDirectory(segments[:-1], create=False)
        except OSError:
            return 0, EMPTY_SHA1
        try:
            try:
                fd = os.open(_partialName(segments[-1]), os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirFd)
            except OSError:
                return 0, EMPTY_SHA1
            with os.fdopen(fd, "rb", buffering=0) as f:
                size = os.fstat(fd).st_size
                return size, hashPrefix(f, size, name).hexdigest()
        finally:
            os.close(dirFd)

    def delete(self, name: bytes) -> None:
        segments = splitName(name)
        try:
            dirFd = self._openDirectory(segments[:-1], create=False)
        except OSError as e:
            raise _osError(e, name)
        try:
            self._refuseOutwardLink(dirFd, segments[-1], name)
            st = os.stat(segments[-1], dir_fd=dirFd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise Conflict("is a directory: {}".format(nameText(name)))
            os.unlink(segments[-1], dir_fd=dirFd)
            if self.quota is not None and stat.S_ISREG(st.st_mode):
                self.quota.freed(st.st_size)
        except OSError as e:
            raise _osError(e, name)
        finally:
            os.close(dirFd)


def _partialName(leaf: bytes) -> bytes:
    return b"." + leaf + PARTIAL_SUFFIX  # the same as ftx.upload.partialName
