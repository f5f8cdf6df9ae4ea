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
import hashlib
import os
import stat
import threading
from fnmatch import fnmatchcase
from typing import Dict, List, NamedTuple, Optional, Tuple

from zope.interface import Interface, implementer

from ftx.errors import (
    BadOffset,
    Conflict,
    FtxError,
    IntegrityError,
    NoSpace,
    NotFound,
    PermissionDenied,
)
from ftx.wire import EMPTY_SHA1, nameText

PARTIAL_SUFFIX = b".ftx-partial"
READ_CHUNK = 1 << 20


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

    def prefixHasher(name: bytes, length: int) -> Tuple[object, object, int]:
        """
        Open a file, check that it has C{length} bytes, and hash them: the
        open file (positioned at C{length}), the hasher and the size.
        """

    def beginUpload(name: bytes, size: int, offset: int, prefixSha1: Optional[str]) -> "Upload":
        """
        Start receiving a file.
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
    shown = nameText(name)[:200]
    if not name:
        raise PermissionDenied("empty name")
    if b"\x00" in name or b"\\" in name:
        raise PermissionDenied("name contains NUL or backslash: {}".format(shown))
    if name.startswith(b"/"):
        raise PermissionDenied("absolute names are not allowed: {}".format(shown))
    segments = name.split(b"/")
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


class _DigestCache:
    """
    Whole-file SHA-1s keyed by what changes when a file does (device, inode,
    size, modification time), so a repeated C{hash} of an unchanged file is
    answered without reading it again.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._entries: Dict[tuple, str] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    @staticmethod
    def key(st: os.stat_result) -> tuple:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def get(self, st: os.stat_result) -> Optional[str]:
        with self._lock:
            return self._entries.get(self.key(st))

    def put(self, st: os.stat_result, hexdigest: str) -> None:
        with self._lock:
            if len(self._entries) >= self._capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[self.key(st)] = hexdigest


@implementer(IStorage)
class FilesystemStorage:
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
        self.digests = _DigestCache()

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
        under: List[bytes] = []
        if mask:
            maskSegments = splitName(mask)
            plain = not any(c in mask for c in b"*?[")
            if plain and os.path.isdir(self._path(maskSegments)):
                # A directory name lists what is below it.
                under, maskSegments = maskSegments, None
        entries = []
        start = self._path(under) if under else self.root
        if not self._inside(os.path.realpath(start)):
            raise PermissionDenied("name resolves outside the root: {}".format(nameText(mask or b"")))
        for directory, dirnames, filenames in os.walk(start, followlinks=False):
            relative = os.path.relpath(directory, self.root)
            prefix = b"" if relative == b"." else relative + b"/"
            dirnames.sort()
            for filename in filenames:
                if filename.endswith(PARTIAL_SUFFIX) or filename.startswith(b".ftx-tmp-"):
                    continue
                name = prefix + filename
                if maskSegments is not None and not _matches(maskSegments, name.split(b"/")):
                    continue
                full = os.path.join(directory, filename)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if os.path.islink(full) and not self._inside(os.path.realpath(full)):
                    continue
                entries.append(Entry(name, st.st_size, int(st.st_mtime)))
        entries.sort(key=lambda e: e.name)
        return entries

    def openForRead(self, name: bytes) -> Tuple[object, int]:
        fd, st = self._openFile(name)
        return os.fdopen(fd, "rb", buffering=0), st.st_size

    def digest(self, name: bytes, length: Optional[int] = None) -> Tuple[str, int]:
        fd, st = self._openFile(name)
        with os.fdopen(fd, "rb", buffering=0) as f:
            whole = length is None or length == st.st_size
            if length is not None and length > st.st_size:
                raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), st.st_size, length))
            if whole:
                cached = self.digests.get(st)
                if cached is not None:
                    return cached, st.st_size
            count = st.st_size if length is None else length
            hasher = _hashPrefix(f, count, name)
            if whole and _DigestCache.key(os.fstat(f.fileno())) == _DigestCache.key(st):
                self.digests.put(st, hasher.hexdigest())
            return hasher.hexdigest(), count

    def prefixHasher(self, name: bytes, length: int) -> Tuple[object, object, int]:
        fd, st = self._openFile(name)
        f = os.fdopen(fd, "rb", buffering=0)
        try:
            if length > st.st_size:
                raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), st.st_size, length))
            hasher = _hashPrefix(f, length, name)
            return f, hasher, st.st_size
        except BaseException:
            f.close()
            raise

    def cachedDigest(self, f: object) -> Optional[str]:
        """
        The whole-file digest of an open file, if known and still valid.
        """
        return self.digests.get(os.fstat(f.fileno()))  # type: ignore[attr-defined]

    def fileVersion(self, f: object) -> tuple:
        """
        What identifies the content of an open file for the digest cache.
        """
        return _DigestCache.key(os.fstat(f.fileno()))  # type: ignore[attr-defined]

    def rememberDigest(self, f: object, hexdigest: str, version: tuple) -> None:
        """
        Cache a digest computed while sending, but only if the file did not
        change in the meantime (then the digest describes a mix).
        """
        st = os.fstat(f.fileno())  # type: ignore[attr-defined]
        if _DigestCache.key(st) == version:
            self.digests.put(st, hexdigest)

    def diskSpace(self) -> Tuple[int, int]:
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

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
        self, name: bytes, size: int, offset: int = 0, prefixSha1: Optional[str] = None
    ) -> "Upload":
        segments = splitName(name)
        dirFd = self._openDirectory(segments[:-1], create=True)
        try:
            leaf = segments[-1]
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
            raise
        try:
            return Upload(self, name, dirFd, leaf, size, offset, prefixSha1, key)
        except BaseException:
            self._unlockUpload(key)
            os.close(dirFd)
            raise

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
                return size, _hashPrefix(f, size, name).hexdigest()
        finally:
            os.close(dirFd)

    def delete(self, name: bytes) -> None:
        segments = splitName(name)
        try:
            dirFd = self._openDirectory(segments[:-1], create=False)
        except OSError as e:
            raise _osError(e, name)
        try:
            st = os.stat(segments[-1], dir_fd=dirFd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise Conflict("is a directory: {}".format(nameText(name)))
            os.unlink(segments[-1], dir_fd=dirFd)
        except OSError as e:
            raise _osError(e, name)
        finally:
            os.close(dirFd)


def _partialName(leaf: bytes) -> bytes:
    return b"." + leaf + PARTIAL_SUFFIX


def _hashPrefix(f, count: int, name: bytes):
    """
    SHA-1 of the next C{count} bytes of C{f}. hashlib releases the GIL on
    large buffers, so this runs in parallel with the reactor thread.
    """
    hasher = hashlib.sha1()
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    remaining = count
    while remaining > 0:
        got = f.readinto(view[: min(READ_CHUNK, remaining)])
        if not got:
            raise IntegrityError("{} shrank while it was being read".format(nameText(name)))
        hasher.update(view[:got])
        remaining -= got
    return hasher


class Upload:
    """
    A file being received. Bytes go to C{.NAME.ftx-partial} beside the final
    name; only L{finish} with a matching digest renames it into place, so a
    partial upload never appears under its final name. If the transfer is
    cut off the partial file stays, for a later resume.
    """

    def __init__(self, storage, name, dirFd, leaf, size, offset, prefixSha1, key):
        self.storage = storage
        self.name = name
        self.size = size
        self.offset = offset
        self.received = offset
        self._dirFd = dirFd
        self._leaf = leaf
        self._partial = _partialName(leaf)
        self._key = key
        self._closed = False
        self.hasher = hashlib.sha1()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
        if offset == 0:
            flags |= os.O_TRUNC
        try:
            fd = os.open(self._partial, flags, 0o644, dir_fd=dirFd)
        except OSError as e:
            raise _osError(e, name)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        if offset:
            held = os.fstat(fd).st_size
            if held < offset:
                self._file.close()
                raise BadOffset("the server holds {} bytes of {}, fewer than {}".format(held, nameText(name), offset))
            self.hasher = _hashPrefix(self._file, offset, name)
            if self.hasher.hexdigest() != prefixSha1:
                self._file.close()
                raise IntegrityError("the part the server holds differs from yours; upload it again from the start")
            self._file.truncate(offset)

    def write(self, data: bytes) -> None:
        """
        Append received bytes. Errors (a full disk) propagate; the caller
        then discards the rest of the body and calls L{abort}.
        """
        try:
            self._file.write(data)
        except OSError as e:
            raise _osError(e, self.name)
        self.hasher.update(data)
        self.received += len(data)

    def finish(self, sha1: str) -> None:
        """
        Check the digest and move the file to its final name.

        @raise IntegrityError: the digest differs; the partial file is removed.
        """
        if self.received != self.size:
            self.abort(keep=False)
            raise IntegrityError("received {} bytes, expected {}".format(self.received, self.size))
        if self.hasher.hexdigest() != sha1:
            self.abort(keep=False)
            raise IntegrityError("SHA-1 mismatch: the upload of {} was corrupted".format(nameText(self.name)))
        try:
            self._file.close()
            os.replace(self._partial, self._leaf, src_dir_fd=self._dirFd, dst_dir_fd=self._dirFd)
        except OSError as e:
            self.abort(keep=False)
            raise _osError(e, self.name)
        self._release()

    def abort(self, keep: bool) -> None:
        """
        Stop receiving. With C{keep} the partial file stays for a resume.
        """
        if self._closed:
            return
        self._file.close()
        if not keep:
            try:
                os.unlink(self._partial, dir_fd=self._dirFd)
            except OSError:
                pass
        self._release()

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self.storage._unlockUpload(self._key)
            os.close(self._dirFd)
