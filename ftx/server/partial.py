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
from typing import Callable

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
            fd = os.open(self._partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=dirFd)
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

    def finish(self, digest: str) -> bytes:
        """
        Check the digest and move the file to its final name (by L{mode});
        returns that name.

        @raise IntegrityError: the digest differs; the partial file is removed.
        @raise AlreadyExists: L{PUT_NEW} and the name is taken.
        """
        checkComplete(self, digest)
        replaced, leaf = 0, self._leaf
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
        self._reservation.freed(replaced)
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
                size = 0
            self._reservation.freed(size)
        self._release()

    def _regularSize(self, leaf: bytes) -> int:
        try:
            st = os.stat(leaf, dir_fd=self._dirFd, follow_symlinks=False)
        except OSError:
            return 0
        return st.st_size if stat.S_ISREG(st.st_mode) else 0

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._reservation.settle()
            self._releaseClaim()
            os.close(self._dirFd)


def sweepTree(root: bytes, claims: UploadClaims, ttl: float, now: float) -> SweepResult:
    """
    Walk the tree under C{root} once, without following symbolic links:
    remove partial uploads last written more than C{ttl} seconds before
    C{now} that no upload holds in C{claims}, and add up the sizes of the
    regular files left. Runs in a thread; cost grows with the tree.
    """
    expired = used = 0
    cutoff = now - ttl
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            inode = os.stat(directory, follow_symlinks=False).st_ino
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            name = entry.name
            if name.startswith(b".") and name.endswith(PARTIAL_SUFFIX) and st.st_mtime <= cutoff:
                # The key an upload claims (FilesystemStorage.beginUpload).
                key = (inode, name[1 : -len(PARTIAL_SUFFIX)])
                try:
                    # Under the claims' lock, so an upload cannot claim this
                    # partial file between the check and the unlink.
                    removed = claims.unlessClaimed(key, lambda: os.unlink(entry.path))
                except OSError:
                    removed = False
                if removed:
                    expired += 1
                    continue
            used += st.st_size
    return SweepResult(expired, used)
