"""
Files being received on the filesystem, and what interrupted uploads leave
behind.

An upload writes to a hidden C{.NAME.ftx-partial} beside its final name and
is renamed into place only when every byte arrived and its digest matches.
An interrupted upload's partial file is kept for a resume; L{sweepTree}
removes the ones nobody came back for, and counts the bytes under the root
for the quota. Both are parts of L{ftx.server.filesystem.FilesystemStorage},
which claims names (L{ftx.server.storage.UploadClaims}) for them.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from typing import Callable, Optional

from zope.interface import implementer

from ftx._io.fileio import hashPrefix, writeAll
from ftx.errors import AlreadyExists, BadOffset, IntegrityError
from ftx.protocol import checksums
from ftx.protocol.checksums import SHA1
from ftx.protocol.names import PARTIAL_SUFFIX
from ftx.protocol.wire import nameText
from ftx.server.oserrors import errorFromOS
from ftx.server.storage import (
    PUT_NEW,
    PUT_RENAME,
    PUT_REPLACE,
    IUpload,
    QuotaReservation,
    SweepResult,
    UploadClaims,
    checkComplete,
    renamedLeaves,
)

__all__ = ["Upload", "partialName", "sweepTree"]


def partialName(leaf: bytes) -> bytes:
    """
    The hidden file that holds an upload to C{leaf} until it is complete.
    """
    return b"." + leaf + PARTIAL_SUFFIX


@implementer(IUpload)
class Upload:
    """
    A file being received into the folder C{dirFd}. Bytes go to
    C{.NAME.ftx-partial} beside the final name; only L{finish} with a
    matching digest renames it into place, so a partial upload never
    appears under its final name. If the transfer is cut off the partial
    file stays (L{abort} with C{keep}), for a resume.

    The storage claimed the name and reserved C{size - offset} bytes of its
    quota (C{reservation}) before this object was made; writes turn the
    reservation into usage, and every way out (finish, abort, a failure
    here) settles it. The claim is given back (C{release}) and
    C{dirFd} closed when the upload ends, not when construction fails:
    then the storage still owns both.
    """

    def __init__(
        self,
        name: bytes,
        dirFd: int,
        leaf: bytes,
        size: int,
        offset: int,
        prefixSha1,
        release: Callable[[], None],
        reservation: QuotaReservation,
        checksum: str = SHA1,
    ) -> None:
        self.name = name
        self.size = size
        self.offset = offset
        self.received = offset
        self._dirFd = dirFd
        self._leaf = leaf
        self._partial = partialName(leaf)
        self._releaseClaim = release
        self._closed = False
        self._reservation = reservation
        #: What the trailer's digest is checked by.
        self.checksum = checksum
        self.hasher = checksums.new(checksum)
        try:
            try:
                fd = os.open(self._partial, os.O_RDWR | os.O_NOFOLLOW, dir_fd=dirFd)
            except FileNotFoundError:
                fd = os.open(self._partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=dirFd)
                reservation.fileCreated()
        except OSError as e:
            reservation.settle()
            raise errorFromOS(e, name)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        try:
            held = os.fstat(fd).st_size
            if offset:
                if held < offset:
                    raise BadOffset("the server holds {} bytes of {}, fewer than {}".format(held, nameText(name), offset))
                whole = self.hasher if checksum != SHA1 else None
                prefix = hashPrefix(self._file, offset, name, whole)
                self.hasher = whole or prefix
                if prefix.hexdigest() != prefixSha1:
                    raise IntegrityError("the part the server holds differs from yours; upload it again from the start")
            if held > offset:
                self._file.truncate(offset)
                reservation.freed(held - offset)
        except BaseException:
            self._file.close()
            reservation.settle()
            raise

    def _writeBytes(self, data) -> None:
        # The one place bytes reach the partial file (tests fill the disk here).
        writeAll(self._file, data)

    def store(self, data: bytes) -> None:
        """
        Append received bytes without hashing them: the caller feeds
        C{hasher} itself (on another thread). Errors (a full disk) propagate
        as L{ftx.errors.FtxError}; the caller then calls L{abort}, which
        removes the partial file, and discards the rest of the body.
        """
        try:
            self._writeBytes(data)
        except OSError as e:
            raise errorFromOS(e, self.name)
        self.received += len(data)
        self._reservation.wrote(len(data))

    #: What finish does when the name is taken (set by the storage).
    mode = PUT_REPLACE
    #: L{store} and C{hasher} may be called from any one thread at a time,
    #: not only the server's store workers, and L{store} is done with the
    #: bytes when it returns (their buffer is reused at once): a large body
    #: may then be read, stored and hashed by a thread of its own
    #: (L{ftx._io.threadedreceive}). Another backend leaves it unset and
    #: keeps the reactor's path.
    storesFromAnyThread = True

    def finish(self, digest: str, mtime: Optional[int] = None) -> bytes:
        """
        Check the digest and move the file to its final name (by L{mode}),
        with the modification time C{mtime} when given; returns that name.

        @raise IntegrityError: the digest differs; the partial file is removed.
        @raise AlreadyExists: L{PUT_NEW} and the name is taken.
        """
        checkComplete(self, digest)
        replaced, leaf = None, self._leaf
        if mtime is not None:
            # Before the rename, so the file never shows under its name with
            # another time. A file system that refuses keeps the time of upload.
            try:
                os.utime(self._file.fileno(), (mtime, mtime))
            except (OSError, OverflowError, ValueError):
                pass
        try:
            self._file.close()
            if self.mode == PUT_REPLACE:
                replaced = self._regularSize(self._leaf)
                os.replace(self._partial, self._leaf, src_dir_fd=self._dirFd, dst_dir_fd=self._dirFd)
            else:
                leaf = self._linkFree()
        except OSError as e:
            self.abort(keep=False)
            raise errorFromOS(e, self.name)
        except AlreadyExists:
            self.abort(keep=False)
            raise
        if replaced is not None:
            self._reservation.fileRemoved(replaced)
        self._release()
        folder = self.name.rpartition(b"/")[0]
        return folder + b"/" + leaf if folder else leaf

    def _linkFree(self) -> bytes:
        """
        Give the partial file a name nobody holds: its own, or (to rename)
        the first free one of L{renamedLeaves}. A hard link fails if the
        name exists, so taking it is one atomic step; then the partial name
        goes.
        """
        candidates = [self._leaf]
        if self.mode == PUT_RENAME:
            candidates = itertools.chain(candidates, renamedLeaves(self._leaf))
        for leaf in candidates:
            try:
                self._takeName(leaf)
            except FileExistsError:
                continue
            return leaf
        if self.mode == PUT_NEW:
            raise AlreadyExists("{} already exists on the server; nothing was changed".format(nameText(self.name)))
        raise AlreadyExists("no free name like {} on the server".format(nameText(self.name)))

    def _takeName(self, leaf: bytes) -> None:
        """
        Move the partial file to C{leaf} unless something holds it.

        @raise FileExistsError: something does.
        """
        try:
            os.link(self._partial, leaf, src_dir_fd=self._dirFd, dst_dir_fd=self._dirFd, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # No hard links here (some network and FAT file systems): claim
            # the name with an exclusive create, then rename over it.
            os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=self._dirFd))
            os.replace(self._partial, leaf, src_dir_fd=self._dirFd, dst_dir_fd=self._dirFd)
            return
        os.unlink(self._partial, dir_fd=self._dirFd)

    def abort(self, keep: bool) -> None:
        """
        Stop receiving. With C{keep} the partial file stays for a resume;
        without, it is removed.
        """
        if self._closed:
            return
        self._file.close()
        if not keep:
            size = self._regularSize(self._partial)
            try:
                os.unlink(self._partial, dir_fd=self._dirFd)
            except OSError:
                size = None
            if size is not None:
                self._reservation.fileRemoved(size)
        self._release()

    def _regularSize(self, leaf: bytes) -> Optional[int]:
        """
        The size of the regular file C{leaf}, or L{None} when there is none.
        """
        try:
            st = os.stat(leaf, dir_fd=self._dirFd, follow_symlinks=False)
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._reservation.settle()
            self._releaseClaim()
            os.close(self._dirFd)


#: How a folder is opened during the sweep: never through a symbolic link.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def sweepTree(root: bytes, claims: UploadClaims, ttl: float, now: float) -> SweepResult:
    """
    Walk the tree under C{root} once: remove partial uploads last written
    more than C{ttl} seconds before C{now} that no upload holds in
    C{claims}, and count the regular files left, their bytes and the
    folders. Runs in a thread; cost grows with the tree.

    The walk holds each folder open and reaches everything below it
    relative to that descriptor (C{scandir}, C{stat}, C{unlink} and
    C{open} with C{dir_fd}), opening subfolders with C{O_NOFOLLOW}. A
    folder swapped for a symbolic link after its parent was listed is
    then refused by the kernel rather than followed, so nothing outside
    the root is ever counted or removed, whatever is renamed meanwhile.
    """
    expired = used = files = folders = 0
    cutoff = now - ttl
    try:
        top = os.open(root, _FOLDER_FLAGS)
    except OSError:
        return SweepResult(0, 0)
    # One open folder a level: (descriptor, subfolders still to visit).
    stack = [(top, _sweepFolder(top, claims, cutoff))]
    try:
        while stack:
            fd, state = stack[-1]
            if state.subfolders:
                name = state.subfolders.pop()
                try:
                    child = os.open(name, _FOLDER_FLAGS, dir_fd=fd)
                except OSError:
                    # Gone, or now a link (ELOOP) or a file (ENOTDIR).
                    continue
                folders += 1
                stack.append((child, _sweepFolder(child, claims, cutoff)))
                continue
            stack.pop()
            os.close(fd)
            expired += state.expired
            used += state.used
            files += state.files
    finally:
        for fd, _ in stack:
            os.close(fd)
    return SweepResult(expired, used, files, folders)


class _Folder:
    # What the sweep found in one folder.
    def __init__(self) -> None:
        self.subfolders: list = []
        self.expired = self.used = self.files = 0


def _sweepFolder(fd: int, claims: UploadClaims, cutoff: float) -> _Folder:
    """
    List the folder open as C{fd}: remove its expired partial uploads,
    count its regular files and note its subfolders (by name, to be
    opened relative to C{fd}).
    """
    found = _Folder()
    try:
        inode = os.fstat(fd).st_ino
        with os.scandir(fd) as listing:
            entries = list(listing)
    except OSError:
        return found
    for entry in entries:
        name = os.fsencode(entry.name)
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            found.subfolders.append(name)
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if name.startswith(b".") and name.endswith(PARTIAL_SUFFIX) and st.st_mtime <= cutoff:
            # The key an upload claims (FilesystemStorage.beginUpload).
            key = (inode, name[1 : -len(PARTIAL_SUFFIX)])
            try:
                # Under the claims' lock, so an upload cannot claim this
                # partial file between the check and the unlink.
                removed = claims.unlessClaimed(key, lambda: os.unlink(name, dir_fd=fd))
            except OSError:
                removed = False
            if removed:
                found.expired += 1
                continue
        found.used += st.st_size
        found.files += 1
    found.subfolders.reverse()
    return found
