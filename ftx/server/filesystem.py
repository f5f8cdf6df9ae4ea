"""
The root jail and every filesystem operation the server performs.

This is the only module that turns names from the wire into paths. A name
is checked segment by segment, then the file is opened and the *opened*
file's real path is checked again, so a symbolic link swapped in between
the check and the use still cannot lead outside the root.

Everything here is synchronous. Calls whose cost grows with a file's size
or a tree's size (L{FilesystemStorage.listFiles}, L{FilesystemStorage.digest},
L{FilesystemStorage.sweep}) are meant to run in a thread; the server does
that (L{ftx.server.storage.IStorage} says which call runs where).
"""

from __future__ import annotations

import os
import stat
from typing import Callable, List, Optional, Tuple

from zope.interface import implementer

from ftx._io.fileio import hashPrefix
from ftx.errors import AlreadyExists, Conflict, PermissionDenied
from ftx.protocol.checksums import SHA1
from ftx.protocol.names import MAX_ROOT, listable, matches, splitName
from ftx.protocol.wire import EMPTY_SHA1, nameText
from ftx.server.digestreads import DigestReader
from ftx.server.digests import DigestCache, PrefixCheckpoints
from ftx.server.folderops import makeFolder, removeFolder
from ftx.server.listing import walkReply
from ftx.server.oserrors import errorFromOS
from ftx.server.partial import Upload, partialName, sweepTree
from ftx.server.storage import (
    PUT_NEW,
    PUT_REPLACE,
    IStorage,
    QuotaReservation,
    StoredFile,
    SweepResult,
    UploadClaims,
)

__all__ = ["FilesystemStorage"]


class _Shared:
    """
    What a root storage and its L{FilesystemStorage.child} views have in
    common: the same file may be reached through either.
    """

    def __init__(self, quota) -> None:
        self.claims = UploadClaims()
        self.digests = DigestCache()
        self.checkpoints = PrefixCheckpoints()
        self.quota = quota


@implementer(IStorage)
class FilesystemStorage:
    """
    Files in one directory tree on the local filesystem.

    Symbolic links are followed only when what they point to stays inside
    the root; a link that leads outside behaves as if it did not exist for
    listing and is refused for every other use. Listing does not descend
    into linked directories, so a link loop cannot make it run forever.

    @ivar root: the real path of the root folder (bytes).
    @ivar digests: the L{DigestCache} of whole-file digests.
    """

    def __init__(
        self,
        root: "str | bytes",
        quota=None,
        *,
        freeSpace: Optional[Callable[[], int]] = None,
        _shared: Optional[_Shared] = None,
    ) -> None:
        """
        @param freeSpace: returns the bytes free on the disk under the
            root; by default the file system's count (C{statvfs}). Tests
            pass their own to play a nearly full disk.
        """
        if isinstance(root, str):
            root = os.fsencode(root)
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ValueError("root is not a directory: {!r}".format(root))
        if len(self.root) > MAX_ROOT:
            # Names up to MAX_NAME bytes must fit under it (docs/protocol.rst).
            raise ValueError("root path longer than {} bytes: {!r}".format(MAX_ROOT, root[:80]))
        self._rootPrefix = self.root.rstrip(b"/") + b"/"
        self._shared = _Shared(quota) if _shared is None else _shared
        self._freeSpace = freeSpace
        self.digests = self._shared.digests
        self._reads = DigestReader(self._openFile, self.digests, self._shared.checkpoints)

    @property
    def quota(self):
        """
        An L{ftx.server.limits.Quota} when the root has one, else L{None};
        the same for the root and every view of it.
        """
        return self._shared.quota

    @quota.setter
    def quota(self, quota) -> None:
        self._shared.quota = quota

    @property
    def location(self) -> str:
        return os.fsdecode(self.root)

    def child(self, path: bytes) -> "FilesystemStorage":
        """
        A storage confined to the folder C{path} under this one (created if
        missing), which must resolve inside this root.

        @raise PermissionDenied: the folder leads outside the root.
        """
        folder = os.path.join(self.root, *splitName(path))
        os.makedirs(folder, mode=0o755, exist_ok=True)
        real = os.path.realpath(folder)
        if not (real + b"/").startswith(self._rootPrefix):
            raise PermissionDenied("the home folder {} leads outside the root".format(nameText(path)))
        if len(real) > MAX_ROOT:
            raise PermissionDenied("the home folder {} has a path longer than {} bytes".format(nameText(path), MAX_ROOT))
        return FilesystemStorage(real, freeSpace=self._freeSpace, _shared=self._shared)

    def sweep(self, ttl: float, now: float) -> SweepResult:
        result = sweepTree(self.root, self._shared.claims, ttl, now)
        if self.quota is not None:
            self.quota.recount(self.quota.charge(result.used, result.files, result.folders))
        return result

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

    def _openDirectory(self, segments: List[bytes], create: bool, made: Optional[List[bytes]] = None) -> int:
        """
        Open the directory holding a name (creating missing levels when
        C{create}, each one it makes appended to C{made}), checked to be
        inside the root. Returns a directory fd.
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
                        if made is not None:
                            made.append(segment)
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
            raise errorFromOS(e, name)
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

    def listFiles(self, mask: Optional[bytes] = None) -> List[StoredFile]:
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
                    name = here + filename
                    # Exactly the names a client could ask for (splitName's
                    # rules, docs/protocol.rst): never hide what a client
                    # could store, never list what it could not fetch.
                    if not listable(name):
                        continue
                    if maskSegments is not None and not matches(maskSegments, name.split(b"/")):
                        continue
                    st = self._listedStat(dirFd, filename)
                    if st is not None:
                        entries.append(StoredFile(name, st.st_size, int(st.st_mtime)))
        finally:
            os.close(startFd)
        entries.sort(key=lambda e: e.name)
        return entries

    def listingReply(self, mask: Optional[bytes] = None, emit=None) -> Optional[Tuple[bytes, int]]:
        """
        The reply to C{list} of everything, or of a folder C{mask}, made as
        the tree is walked (L{walkReply}, which hands C{emit} the lines as
        it goes), and its count of files; L{None} for any other mask, which
        L{listFiles} answers.
        """
        if mask and any(c in mask for c in b"*?["):
            return None
        try:
            if mask:
                fd = self._openDirectory(splitName(mask), create=False)
            else:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            return walkReply(fd, mask + b"/" if mask else b"", self._listedStat, emit)
        finally:
            os.close(fd)

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

    # -- digests (L{DigestReader}) ------------------------------------------

    def digest(self, name: bytes, length: Optional[int] = None) -> Tuple[str, int]:
        return self._reads.digest(name, length)

    def prefixHasher(self, name: bytes, length: int, also=None) -> Tuple[object, object, int]:
        return self._reads.prefixHasher(name, length, also)

    def readSmall(self, f, size: int, checksum: str = SHA1) -> Tuple[bytes, str]:
        return self._reads.readSmall(f, size, checksum)

    def cachedDigest(self, f, checksum: str = SHA1) -> Optional[str]:
        return self._reads.cachedDigest(f, checksum)

    def fileVersion(self, f) -> tuple:
        return self._reads.fileVersion(f)

    def rememberDigest(self, f, hexdigest: str, version: tuple, checksum: str = SHA1) -> None:
        self._reads.rememberDigest(f, hexdigest, version, checksum)

    # -- space ----------------------------------------------------------

    def diskSpace(self) -> Tuple[int, int]:
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize if self._freeSpace is None else self._freeSpace()
        if self.quota is not None:
            free = min(free, self.quota.available())
        return st.f_blocks * st.f_frsize, free

    def usedSpace(self) -> int:
        st = os.statvfs(self.root)
        # As df(1): blocks reserved for root are free (f_bfree), not used.
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    # -- folders (L{ftx.server.folderops}) ----------------------------------

    def makeFolder(self, name: bytes) -> None:
        makeFolder(self._openDirectory, self.quota, name)

    def removeFolder(self, name: bytes) -> int:
        return removeFolder(self._openDirectory, self._refuseOutwardLink, self.quota, name)

    # -- writing --------------------------------------------------------

    def beginUpload(
        self, name: bytes, size: int, offset: int = 0, prefixSha1: Optional[str] = None, checksum: str = SHA1,
        mode: str = PUT_REPLACE,
    ) -> Upload:
        """
        Start receiving C{name}. With a quota, C{size - offset} bytes are
        reserved first, so a refusal creates nothing. A name that is a
        symbolic link is replaced by the upload, never written through.
        """
        segments = splitName(name)
        folders = segments[:-1]
        missing = self._missingFolders(folders) if self.quota is not None else 0
        reservation = QuotaReservation(self.quota, size - offset, name, missing)
        made: List[bytes] = []
        try:
            try:
                dirFd = self._openDirectory(folders, create=True, made=made)
            except OSError as e:
                raise errorFromOS(e, name)
            finally:
                reservation.foldersCreated(len(made))
        except BaseException:
            reservation.settle()
            raise
        try:
            leaf = segments[-1]
            self._refuseOutwardLink(dirFd, leaf, name)
            try:
                st = os.stat(leaf, dir_fd=dirFd)
            except FileNotFoundError:
                st = None
            except OSError as e:
                raise errorFromOS(e, name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise Conflict("is a directory: {}".format(nameText(name)))
            if st is not None and mode == PUT_NEW:
                raise AlreadyExists("{} already exists on the server; nothing was changed".format(nameText(name)))
            # The folder's inode, not its path: a home view and the root
            # reach the same name by different paths. The sweep uses the
            # same key (L{ftx.server.partial.sweepTree}).
            release = self._shared.claims.claim((os.fstat(dirFd).st_ino, leaf), name)
        except BaseException:
            os.close(dirFd)
            reservation.settle()
            raise
        try:
            # From here the Upload owns the reservation and settles it.
            # (Positional arguments: tests wrap Upload.__init__.)
            upload = Upload(name, dirFd, leaf, size, offset, prefixSha1, release, reservation, checksum)
            upload.mode = mode
            return upload
        except BaseException:
            release()
            os.close(dirFd)
            raise

    def _missingFolders(self, segments: List[bytes]) -> int:
        """
        How many of the folders C{segments} lead through do not exist yet:
        what an upload will create, to be reserved from the quota before
        anything is created.
        """
        current = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for depth, segment in enumerate(segments):
                try:
                    nxt = os.open(segment, os.O_RDONLY | os.O_DIRECTORY, dir_fd=current)
                except OSError:
                    return len(segments) - depth
                os.close(current)
                current = nxt
            return 0
        finally:
            os.close(current)

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
                fd = os.open(partialName(segments[-1]), os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirFd)
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
            raise errorFromOS(e, name)
        try:
            self._refuseOutwardLink(dirFd, segments[-1], name)
            st = os.stat(segments[-1], dir_fd=dirFd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise Conflict("is a directory: {}".format(nameText(name)))
            os.unlink(segments[-1], dir_fd=dirFd)
            if self.quota is not None and stat.S_ISREG(st.st_mode):
                self.quota.freed(self.quota.charge(st.st_size, 1))
        except OSError as e:
            raise errorFromOS(e, name)
        finally:
            os.close(dirFd)
