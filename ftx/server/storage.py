"""
The storage contract of the server: L{IStorage}, everything the server asks
of the place it keeps files, and L{IUpload}, one file being received; with
L{StoredFile} (one listed file), L{SweepResult} (what a sweep found) and
L{UploadClaims} (the names being uploaded right now), which every backend
may use.

Backends: L{ftx.server.filesystem.FilesystemStorage} (files under a folder)
and L{ftx.testing.MemoryStorage} (files in a dict, for tests).

Threads: the server calls some methods in a worker thread of the reactor's
thread pool (their cost grows with a file's or a tree's size) and the rest
in the reactor thread (they must be cheap). Each method says which. Any
method may be called from either, so a backend guards shared state with a
lock. Errors a client should see are raised as L{ftx.errors.FtxError}
subclasses; the server sends them as their wire codes. Anything else is
logged as a server bug and sent as a generic error.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator, List, NamedTuple, Optional, Tuple

from zope.interface import Attribute, Interface

from ftx.errors import Conflict, IntegrityError
from ftx.protocol import checksums
from ftx.protocol.wire import nameText

__all__ = [
    "IStorage", "IUpload", "StoredFile", "SweepResult", "UploadClaims", "QuotaReservation", "checkComplete",
    "PUT_REPLACE", "PUT_NEW", "PUT_RENAME", "PUT_MODES", "renamedLeaves",
]

#: What an upload does when its name is taken once it is complete
#: (L{IStorage.beginUpload}): replace the file, refuse (409 exists), or
#: take the first free C{name (N).ext}.
PUT_REPLACE = "replace"
PUT_NEW = "new"
PUT_RENAME = "rename"
PUT_MODES = (PUT_REPLACE, PUT_NEW, PUT_RENAME)

#: Compound extensions kept whole when renaming: C{a (1).tar.gz}.
_COMPOUND = (b".tar.gz", b".tar.bz2", b".tar.xz", b".tar.zst")
_MAX_RENAMES = 10000


def renamedLeaves(leaf: bytes) -> Iterator[bytes]:
    """
    The names a C{rename} upload tries after C{leaf} itself, in order:
    C{stem (1).ext}, C{stem (2).ext}, ... (a bounded number of them). Each
    backend tries them with an atomic create-if-absent, never a check
    followed by a rename.
    """
    lower = leaf.lower()
    ext = next((e for e in _COMPOUND if lower.endswith(e) and len(leaf) > len(e)), None)
    if ext is None:
        dot = leaf.rfind(b".")
        ext = leaf[dot:] if dot > 0 else b""
    stem = leaf[: len(leaf) - len(ext)]
    for n in range(1, _MAX_RENAMES + 1):
        yield stem + b" (" + str(n).encode("ascii") + b")" + ext


class StoredFile(NamedTuple):
    """
    One regular file under the root.
    """

    name: bytes
    size: int
    mtime: int


class SweepResult(NamedTuple):
    """
    What one L{IStorage.sweep} found: partial uploads removed, the bytes
    the storage holds after it (files and the partial uploads left), how
    many files that is (partial uploads included) and how many folders
    there are below the root. A quota charges each file and each folder
    on top of the bytes (L{ftx.server.limits.Quota.charge}).
    """

    expired: int
    used: int
    files: int = 0
    folders: int = 0


class UploadClaims:
    """
    The names being uploaded right now, so that two uploads never write one
    name at once and a sweep never removes what an upload is writing.

    A backend makes one and shares it with its L{IStorage.child} views,
    since the same file may be reached through either. Keys are whatever
    identifies a name for the backend (the filesystem backend: the inode of
    the folder and the leaf name). Safe to use from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set = set()

    def claim(self, key: object, name: bytes) -> Callable[[], None]:
        """
        Claim C{key} for an upload to C{name}.

        @return: a callable that gives the claim back; calling it again
            does nothing.
        @raise Conflict: an upload holds the key already.
        """
        with self._lock:
            if key in self._held:
                raise Conflict("an upload to {} is already in progress".format(nameText(name)))
            self._held.add(key)
        released = []

        def release() -> None:
            with self._lock:
                if not released:
                    released.append(True)
                    self._held.discard(key)

        return release

    def claimed(self, key: object) -> bool:
        with self._lock:
            return key in self._held

    def unlessClaimed(self, key: object, action: Callable[[], object]) -> bool:
        """
        Run C{action} unless an upload holds C{key}, with no upload able to
        claim it meanwhile. Returns whether it ran; what it raises
        propagates.
        """
        with self._lock:
            if key in self._held:
                return False
            action()
            return True


class QuotaReservation:
    """
    The bytes an upload reserved from a quota (an L{ftx.server.limits.Quota}
    or L{None}, then every call does nothing): reserved at once, so that
    uploads running side by side cannot overshoot together, turned into
    usage as they are written, and the rest given back by L{settle}.

    Besides the body, the reservation holds the quota's charge for the
    file the upload may create (its partial file, which becomes the file)
    and for the C{folders} it will create; the backend turns them into
    usage with L{fileCreated} and L{foldersCreated} when it does create
    them, and gives a file's charge back with L{fileRemoved}.
    """

    def __init__(self, quota, count: int, name: bytes, folders: int = 0) -> None:
        """
        @raise ftx.errors.NoSpace: C{count} bytes, a file and C{folders}
            folders do not fit.
        """
        left = 0
        if quota is not None:
            left = quota.charge(count, 1, folders)
            quota.reserve(left, name)
        self._quota = quota
        self._left = left

    def wrote(self, count: int) -> None:
        """
        C{count} bytes were written: reserved ones first, any more on top.
        """
        if self._quota is not None:
            used = min(count, self._left)
            self._left -= used
            self._quota.wrote(used, count - used)

    def fileCreated(self) -> None:
        """
        The upload created its (partial) file: charge it.
        """
        if self._quota is not None:
            self.wrote(self._quota.perFile)

    def foldersCreated(self, count: int) -> None:
        """
        The upload created C{count} folders on its way: charge them.
        """
        if self._quota is not None and count:
            self.wrote(count * self._quota.perFolder)

    def freed(self, count: int) -> None:
        """
        C{count} bytes held before were removed or replaced.
        """
        if self._quota is not None and count:
            self._quota.freed(count)

    def fileRemoved(self, size: int) -> None:
        """
        A file of C{size} bytes is gone (replaced by the upload, or the
        upload's own partial file removed): its bytes and its charge.
        """
        if self._quota is not None:
            self._quota.freed(self._quota.charge(size, 1))

    def settle(self) -> None:
        """
        Give back what was reserved and not written; again does nothing.
        """
        if self._quota is not None and self._left:
            self._quota.release(self._left)
            self._left = 0


def checkComplete(upload: "IUpload", digest: str) -> None:
    """
    The check every L{IUpload.finish} makes before the file takes its name:
    all C{size} bytes arrived and the hasher gives C{digest}. On failure
    the received bytes are removed (C{abort(keep=False)}): they are wrong,
    not merely short.

    @raise IntegrityError: the count or the digest differs.
    """
    if upload.received != upload.size:
        upload.abort(keep=False)
        raise IntegrityError("received {} bytes, expected {}".format(upload.received, upload.size))
    if upload.hasher.hexdigest() != digest:
        upload.abort(keep=False)
        raise IntegrityError(
            "{} mismatch: the upload of {} was corrupted".format(checksums.label(upload.checksum), nameText(upload.name))
        )


class IUpload(Interface):
    """
    A file being received, returned by L{IStorage.beginUpload}. Bytes go
    somewhere that is not the final name; only L{finish} with a matching
    digest puts them under it, so a cut-off upload never shows as a file.

    The upload holds the name's claim and any quota reservation until
    L{finish} or L{abort}; every way out settles both.

    Two optional class attributes (read with a default of C{False}, so a
    backend that lacks them keeps the reactor-thread contract below) let
    the server move work off the reactor: C{finishesInThread} when
    L{finish} makes network calls that grow with the file (an object
    store's compose), and C{storesFromAnyThread} when L{store} may be
    called from one body thread at a time and is done with the bytes when
    it returns (the buffer is reused at once).
    """

    name = Attribute("The name being uploaded (bytes, as from the wire).")
    size = Attribute("The whole file's size in bytes.")
    offset = Attribute("Where the body starts: bytes kept from an earlier upload.")
    received = Attribute("Bytes held so far, the kept prefix included.")
    checksum = Attribute("The checksum the trailer's digest is checked by (a name from ftx.protocol.checksums).")
    hasher = Attribute(
        "A hasher by C{checksum}, already fed the kept prefix; the caller feeds it the body (L{store} does not)."
    )

    def store(data: bytes) -> None:
        """
        Append received bytes (bytes or a memoryview the caller reuses
        after the call returns). Called in a worker thread, one call at a
        time, in order.

        @raise ftx.errors.NoSpace: the disk or the space is full; the caller
            stops storing and calls L{abort}.
        @raise ftx.errors.FtxError: another failure to write.
        """

    mode = Attribute(
        "What L{finish} does when the name is taken: L{PUT_REPLACE} (the default), L{PUT_NEW} or L{PUT_RENAME}; "
        "set by L{IStorage.beginUpload}."
    )

    def finish(digest: str, mtime: Optional[int] = None) -> bytes:
        """
        Check that C{size} bytes arrived and that C{hasher} gives C{digest},
        then put the file in place at once, and return the name it was
        stored under. With C{mtime} (seconds since the epoch: the client's
        own modification time, the C{mtime} feature of the protocol) the
        file is listed (L{StoredFile.mtime}) with that time from then on,
        as C{rsync -t} keeps it; a backend that cannot set it lists the
        time of upload. Without, the time of upload. By C{mode}: L{PUT_REPLACE} replaces any file there
        (readers of the old file keep reading the old bytes); L{PUT_NEW}
        refuses when a file holds the name; L{PUT_RENAME} takes the name,
        else the first free one of L{renamedLeaves} in the same folder.
        Taking a name is one atomic step (a hard link or an exclusive
        create), so two uploads never both get it. Reactor thread. On any
        failure the received bytes are removed.

        @raise ftx.errors.IntegrityError: too few or too many bytes, or the
            digest differs.
        @raise ftx.errors.AlreadyExists: L{PUT_NEW} and the name is taken.
        @raise ftx.errors.FtxError: the file could not be put in place.
        """

    def abort(keep: bool) -> None:
        """
        Stop receiving. With C{keep} the bytes received stay for a resume
        (L{IStorage.partialUpload}); without, they are removed. Does
        nothing after L{finish} or an earlier abort. Reactor thread; never
        raises.
        """


class IStorage(Interface):
    """
    Where the server keeps files: the whole contract between the server
    protocol and a backend.

    Names are bytes from the wire, C{/}-separated, relative to the root.
    Every method that takes a name checks it with
    L{ftx.protocol.names.splitName} first and raises its
    L{ftx.errors.PermissionDenied} for a name that could not be a path
    under the root. The messages a client sees are the same for every
    backend: C{no such file: NAME} (L{ftx.errors.NotFound}),
    C{is a directory: NAME} (L{ftx.errors.Conflict}).
    """

    quota = Attribute(
        "An L{ftx.server.limits.Quota} that uploads reserve from and deletes give back to, or None. "
        "Shared with every L{child} view. Its usage is counted by L{sweep}; uploads wait for the first count. "
        "Usage is bytes plus the quota's charge for each file (partial uploads too) and each folder below "
        "the root (L{ftx.server.limits.Quota.charge}), through L{QuotaReservation} for uploads."
    )

    location = Attribute("Where the files are, as text for people and logs (the server logs 'serving LOCATION').")

    def listFiles(mask: Optional[bytes] = None) -> List[StoredFile]:
        """
        The files whose names match C{mask}, sorted by name: every file
        when C{mask} is L{None} or empty; everything below a folder when
        C{mask} names one and has no wildcard; otherwise the names that
        match it segment by segment (L{ftx.protocol.names.matches}).
        Partial uploads are never listed, and nothing else is hidden:
        every name an upload can store is listed. Worker thread.

        @raise ftx.errors.PermissionDenied: a malformed mask.
        """

    def openForRead(name: bytes) -> Tuple[object, int]:
        """
        Open a file for sending: a binary file object positioned at 0, and
        its size. The file object supports C{read(n)}, C{seek(offset)} and
        C{close()}; C{fileno()} is optional and used only for the zero-copy
        fast path (a file without a usable one is sent by copying). The
        open file keeps the bytes it was opened with, even if an upload
        replaces the file meanwhile. Reactor thread: must not read the file.
        The caller closes it.

        @raise ftx.errors.NotFound: no such file.
        @raise ftx.errors.Conflict: the name is a folder.
        @raise ftx.errors.PermissionDenied: not a regular file, or outside the root.
        """

    def digest(name: bytes, length: Optional[int] = None) -> Tuple[str, int]:
        """
        The SHA-1 (hex) of the file or of its first C{length} bytes, and
        that length. The whole file's digest may come from the digest cache.
        Worker thread.

        @raise ftx.errors.BadOffset: C{length} is beyond the end of the file.
        @raise ftx.errors.NotFound: as L{openForRead}, and its other errors.
        """

    def prefixHasher(name: bytes, length: int, also: object = None) -> Tuple[object, object, int]:
        """
        Open a file and hash its first C{length} bytes by SHA-1, feeding the
        same bytes to C{also} (another hasher) when given: the open file
        (as from L{openForRead}, positioned at C{length}), the SHA-1 hasher
        and the file's size. Worker thread. The caller closes the file.

        @raise ftx.errors.BadOffset: C{length} is beyond the end of the file.
        @raise ftx.errors.NotFound: as L{openForRead}, and its other errors.
        """

    def readSmall(f: object, size: int, checksum: str = "sha1") -> Tuple[bytes, str]:
        """
        The bytes of a small file opened by L{openForRead} (at most C{size};
        fewer if it shrank) and their digest by C{checksum}, from the digest
        cache when the file is unchanged. Reactor thread: only called for
        files of at most L{ftx.protocol.wire.SMALL_BODY} bytes.
        """

    def cachedDigest(f: object, checksum: str = "sha1") -> Optional[str]:
        """
        The whole-file digest by C{checksum} of a file opened by
        L{openForRead}, if the digest cache holds one that is still valid;
        else L{None}. Reactor thread; must not read the file.
        """

    def fileVersion(f: object) -> object:
        """
        An opaque token for the content of a file opened by L{openForRead},
        taken before it is read, for L{rememberDigest}. Reactor thread.
        """

    def rememberDigest(f: object, hexdigest: str, version: object, checksum: str = "sha1") -> None:
        """
        Keep the whole-file digest computed while sending C{f}, but only if
        the file is still at C{version} (L{fileVersion}): a file changed
        while it was read has a digest of a mix. Reactor thread. May raise
        L{OSError}, which the caller ignores.
        """

    def beginUpload(
        name: bytes, size: int, offset: int = 0, prefixSha1: Optional[str] = None, checksum: str = "sha1",
        mode: str = PUT_REPLACE,
    ) -> IUpload:
        """
        Start receiving C{size} bytes for C{name}, to be checked by
        C{checksum}, and put in place as C{mode} says (L{IUpload.finish});
        with L{PUT_NEW} a file already under the name is refused here too,
        before any byte is sent. With an C{offset}, the first C{offset} bytes are those
        kept from an interrupted upload (L{IUpload.abort} with C{keep}),
        which must have the SHA-1 C{prefixSha1}; with none, anything kept is
        dropped. Missing folders are created. With a L{quota},
        C{size - offset} bytes, a file's charge and a charge for each
        folder to create are reserved first (L{QuotaReservation}), so a
        refusal creates nothing; the charges become usage as the file and
        the folders are created, and a replaced or removed file gives its
        bytes and its charge back. The name is claimed (L{UploadClaims})
        until the upload ends.

        Reactor thread without an offset (cheap); worker thread with one
        (it reads the kept bytes).

        @raise ftx.errors.NoSpace: the quota cannot hold C{size - offset} bytes.
        @raise ftx.errors.AlreadyExists: L{PUT_NEW} and a file holds the name.
        @raise ftx.errors.Conflict: the name is a folder, or an upload to it
            is in progress.
        @raise ftx.errors.BadOffset: fewer than C{offset} bytes are kept.
        @raise ftx.errors.IntegrityError: the kept bytes differ from C{prefixSha1}.
        @raise ftx.errors.NotFound: a file is in the way of a folder on the path.
        """

    def partialUpload(name: bytes) -> Tuple[int, str]:
        """
        The bytes kept from an interrupted upload to C{name} and their
        SHA-1, or C{(0, EMPTY_SHA1)} when none are kept. Worker thread.
        """

    def delete(name: bytes) -> None:
        """
        Remove a file at once, giving its bytes back to the L{quota}. Open
        files keep reading the old bytes. Reactor thread.

        @raise ftx.errors.NotFound: no such file.
        @raise ftx.errors.Conflict: the name is a folder.
        @raise ftx.errors.PermissionDenied: the name leads outside the root.
        """

    def diskSpace() -> Tuple[int, int]:
        """
        Total and free bytes; free is at most what the L{quota} has left.
        Reactor thread (also for the UDP responder).
        """

    def usedSpace() -> int:
        """
        Bytes in use as df(1) counts them: the total less the free blocks,
        where blocks reserved for the superuser count as free (so used and
        the free of L{diskSpace} need not add up to the total). Reactor
        thread.
        """

    def makeFolder(name: bytes) -> None:
        """
        Create the folder C{name} and any missing folder above it; an
        existing folder is fine (as C{mkdir -p}). Reactor thread.

        @raise ftx.errors.AlreadyExists: a file holds the name or a name
            above it.
        """

    def removeFolder(name: bytes) -> int:
        """
        Remove the folder C{name} and everything in it (partial uploads
        too), giving the bytes back to the L{quota}; returns how many files
        were removed. Symbolic links in it are removed, never followed.
        Worker thread: its cost grows with the tree.

        @raise ftx.errors.NotFound: no such folder.
        @raise ftx.errors.Conflict: the name is a file (message: C{not a
            folder: NAME}).
        """

    def child(path: bytes) -> "IStorage":
        """
        A view of the folder C{path} (created if missing) as a storage of
        its own, for an account confined to a home folder. The view shares
        this storage's upload claims, digest cache and L{quota}, since the
        same file may be reached through either. Called once per home, in
        the reactor thread, at login or at startup.

        @raise ftx.errors.PermissionDenied: a malformed path, or a folder
            that leads outside the root (message: C{the home folder PATH
            leads outside the root}).
        @raise OSError: a file is in the way of the folder.
        """

    def sweep(ttl: float, now: float) -> SweepResult:
        """
        Remove the partial uploads last written more than C{ttl} seconds
        before C{now} (a C{time.time()}) that no upload holds, count the
        bytes held (files and the partial uploads left), the files and the
        folders below the root, and give the L{quota} their charge
        (L{ftx.server.limits.Quota.charge}). Never acts on or counts
        anything outside the root, whatever is renamed while it runs.
        Worker thread: its cost grows with the tree. Meant for the root
        storage, not a L{child} view.
        """
