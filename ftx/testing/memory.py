"""
L{MemoryStorage}, the second storage backend: L{MemoryStorage} is an L{ftx.server.storage.IStorage} that keeps its files
in a dict: serve it with C{FtxServerFactory(MemoryStorage(...), reactor)}
and a client sees what it would see of a folder on disk (the same replies,
the same errors, partial uploads kept for a resume, quotas), without a
temporary folder. Its open files have no file descriptor, so bodies are
sent by copying rather than by C{sendfile}.
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import threading
import time
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Set, Tuple

from zope.interface import implementer

from ftx.errors import AlreadyExists, BadOffset, Conflict, IntegrityError, NoSpace, NotFound
from ftx.protocol import checksums
from ftx.protocol.checksums import SHA1
from ftx.protocol.names import PARTIAL_SUFFIX, listable, matches, splitName
from ftx.protocol.wire import EMPTY_SHA1, nameText
from ftx.server.storage import (
    PUT_NEW,
    PUT_REPLACE,
    IStorage,
    IUpload,
    QuotaReservation,
    StoredFile,
    SweepResult,
    UploadClaims,
    checkComplete,
)
from ftx.testing import memoryfolders

__all__ = ["MemoryStorage", "MemoryFile"]

#: Whole-file digests a L{MemoryStorage} keeps, as the filesystem's cache does.
_DIGESTS_KEPT = 4096


class MemoryFile(io.BytesIO):
    """
    A file of a L{MemoryStorage} opened for reading: the bytes it held when
    it was opened, whatever happens to the stored file afterwards (as an
    open file on disk keeps a replaced file's bytes). C{fileno()} raises
    L{io.UnsupportedOperation}.

    @ivar version: identifies these bytes in the digest cache.
    @ivar size: how many there are.
    """

    def __init__(self, data: bytes, version: int) -> None:
        super().__init__(data)
        self.version = version
        self.size = len(data)


class _Stored(NamedTuple):
    data: bytes
    mtime: float
    version: int  # new for every content stored, never reused


class _Partial:
    # What an upload has received so far; appended to in place.
    def __init__(self, data: bytes, mtime: float) -> None:
        self.data = bytearray(data)
        self.mtime = mtime


class _Memory:
    """
    The state a L{MemoryStorage} shares with its child views, by full name
    (from the root, C{/}-separated). Compound changes hold C{lock}, since
    the server calls storages from worker threads as well.
    """

    def __init__(self, total: int, quota, now: Callable[[], float]) -> None:
        self.lock = threading.Lock()
        self.files: Dict[bytes, _Stored] = {}
        self.partials: Dict[bytes, _Partial] = {}
        self.folders: Set[bytes] = set()
        #: Bytes of files and partial uploads, for L{MemoryStorage.diskSpace}.
        self.used = 0
        self.total = total
        self.quota = quota
        self.now = now
        self.claims = UploadClaims()
        self._digests: Dict[Tuple[int, str], str] = {}
        self._versions = itertools.count(1)

    def fileInTheWay(self, full: bytes) -> bool:
        """
        Whether a file sits where a folder holding C{full} should be (on
        disk: C{ENOTDIR}). Call with the lock held.
        """
        segments = full.split(b"/")
        return any(b"/".join(segments[:i]) in self.files for i in range(1, len(segments)))

    def missingFolders(self, full: bytes) -> List[bytes]:
        """
        The folders holding C{full} that do not exist yet. Call with the
        lock held.
        """
        segments = full.split(b"/")
        return [f for f in (b"/".join(segments[:i]) for i in range(1, len(segments))) if f not in self.folders]

    def makeFolders(self, full: bytes) -> None:
        """
        Create the folders holding C{full}. Call with the lock held, after
        L{fileInTheWay}.
        """
        segments = full.split(b"/")
        for i in range(1, len(segments)):
            self.folders.add(b"/".join(segments[:i]))

    def store(self, full: bytes, data: bytes, mtime: float) -> int:
        """
        Put C{data} under C{full}, replacing a file there; returns the size
        of the file replaced. Call with the lock held.
        """
        old = self.files.get(full)
        self.files[full] = _Stored(data, mtime, next(self._versions))
        replaced = len(old.data) if old is not None else 0
        self.used += len(data) - replaced
        return replaced

    def dropPartial(self, full: bytes) -> int:
        """
        Remove the partial upload to C{full}; returns its size. Call with
        the lock held.
        """
        partial = self.partials.pop(full, None)
        size = len(partial.data) if partial is not None else 0
        self.used -= size
        return size

    # The digest cache: an open file's bytes never change, so a version
    # and a checksum are the whole key.

    def knownDigest(self, version: int, checksum: str) -> Optional[str]:
        with self.lock:
            return self._digests.get((version, checksum))

    def rememberDigest(self, version: int, checksum: str, hexdigest: str) -> None:
        with self.lock:
            if len(self._digests) >= _DIGESTS_KEPT:
                self._digests.pop(next(iter(self._digests)))
            self._digests[(version, checksum)] = hexdigest


@implementer(IUpload)
class _MemoryUpload:
    """
    A file being received by a L{MemoryStorage}: bytes go to its partial
    upload and become the file only in L{finish}, as on disk.
    """

    def __init__(self, memory: _Memory, full: bytes, name: bytes, size: int, offset: int, prefixSha1, release, reservation, checksum):
        self.name = name
        self.size = size
        self.offset = offset
        self.received = offset
        self.checksum = checksum
        self.hasher = checksums.new(checksum)
        self._memory = memory
        self._full = full
        self._releaseClaim = release
        self._closed = False
        self._reservation = reservation
        try:
            with memory.lock:
                partial = memory.partials.get(full)
                if partial is None:
                    partial = memory.partials[full] = _Partial(b"", memory.now())
                    reservation.fileCreated()
                held = len(partial.data)
                kept = bytes(partial.data[:offset])
            if offset:
                if held < offset:
                    raise BadOffset("the server holds {} bytes of {}, fewer than {}".format(held, nameText(name), offset))
                prefix = hashlib.sha1(kept)
                if checksum == SHA1:
                    self.hasher = prefix
                else:
                    self.hasher.update(kept)
                if prefix.hexdigest() != prefixSha1:
                    raise IntegrityError("the part the server holds differs from yours; upload it again from the start")
            if held > offset:
                with memory.lock:
                    del partial.data[offset:]
                    partial.mtime = memory.now()
                    memory.used -= held - offset
                reservation.freed(held - offset)
        except BaseException:
            reservation.settle()
            raise
        self._partial = partial

    def store(self, data) -> None:
        count = len(data)
        memory = self._memory
        with memory.lock:
            if memory.used + count > memory.total:
                raise NoSpace("no space left on the server for {}".format(nameText(self.name)))
            self._partial.data += data
            self._partial.mtime = memory.now()
            memory.used += count
        self.received += count
        self._reservation.wrote(count)

    mode = PUT_REPLACE

    def finish(self, digest: str, mtime: Optional[int] = None) -> bytes:
        checkComplete(self, digest)
        memory = self._memory
        try:
            with memory.lock:
                target = memoryfolders.freeName(memory, self._full, self.mode) or self._full
                inTheWay = target in memory.folders
                if not inTheWay:
                    data = bytes(self._partial.data)
                    existed = target in memory.files
                    memory.dropPartial(self._full)
                    replaced = memory.store(target, data, memory.now() if mtime is None else mtime)
        except AlreadyExists:
            self.abort(keep=False)
            raise
        if inTheWay:
            self.abort(keep=False)
            raise Conflict("is a directory: {}".format(nameText(self.name)))
        if existed:
            self._reservation.fileRemoved(replaced)
        self._release()
        return target[len(self._full) - len(self.name) :]

    def abort(self, keep: bool) -> None:
        if self._closed:
            return
        if not keep:
            with self._memory.lock:
                mine = self._memory.partials.get(self._full) is self._partial
                size = self._memory.dropPartial(self._full) if mine else 0
            if mine:
                self._reservation.fileRemoved(size)
        self._release()

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._reservation.settle()
            self._releaseClaim()


@implementer(IStorage)
class MemoryStorage:
    """
    Files in memory, checked and answered as L{ftx.server.filesystem.FilesystemStorage}
    answers them: the same name rules (L{ftx.protocol.names.splitName}), the
    same errors and messages, folders that exist once something was put in
    them (and stay, as on disk), uploads that become files only when their
    digest matches, partial uploads kept for a resume and swept when old.

    @param files: the files to start with, by name (C{b"dir/file.txt"}).
    @param total: the size of the pretend disk: L{diskSpace} reports it,
        and uploads beyond it fail with L{ftx.errors.NoSpace}.
    @param quota: an L{ftx.server.limits.Quota}, or L{None}.
    @param clock: an L{twisted.internet.interfaces.IReactorTime} whose
        C{seconds()} dates files and partial uploads (compared with the
        C{now} given to L{sweep}); the wall clock when L{None}.
    """

    def __init__(
        self,
        files: Optional[Mapping[bytes, bytes]] = None,
        *,
        total: int = 1 << 30,
        quota=None,
        clock=None,
        _memory: Optional[_Memory] = None,
        _prefix: bytes = b"",
    ) -> None:
        if _memory is None:
            _memory = _Memory(total, quota, time.time if clock is None else clock.seconds)
        self._memory = _memory
        self._prefix = _prefix
        for name, data in (files or {}).items():
            self.setContent(name, data)

    # -- names ----------------------------------------------------------

    def _full(self, name: bytes) -> bytes:
        """
        The full name of a checked name from the wire.
        """
        splitName(name)
        return self._prefix + name

    def _mine(self, full: bytes) -> bool:
        return full.startswith(self._prefix)

    @property
    def quota(self):
        return self._memory.quota

    @quota.setter
    def quota(self, quota) -> None:
        self._memory.quota = quota

    @property
    def location(self) -> str:
        return "memory" + ("/" + nameText(self._prefix.rstrip(b"/")) if self._prefix else "")

    # -- reading --------------------------------------------------------

    def listFiles(self, mask: Optional[bytes] = None) -> List[StoredFile]:
        memory = self._memory
        maskSegments = splitName(mask) if mask else None
        below = None
        with memory.lock:
            if mask and not any(c in mask for c in b"*?[") and self._prefix + mask in memory.folders:
                below, maskSegments = mask + b"/", None
            files = [(full[len(self._prefix) :], stored) for full, stored in memory.files.items() if self._mine(full)]
        entries = []
        for name, stored in files:
            if not listable(name):
                # The filesystem leaves these out too.
                continue
            if below is not None and not name.startswith(below):
                continue
            if maskSegments is not None and not matches(maskSegments, name.split(b"/")):
                continue
            entries.append(StoredFile(name, len(stored.data), int(stored.mtime)))
        entries.sort(key=lambda e: e.name)
        return entries

    def openForRead(self, name: bytes) -> Tuple[MemoryFile, int]:
        full = self._full(name)
        with self._memory.lock:
            if full in self._memory.folders:
                raise Conflict("is a directory: {}".format(nameText(name)))
            stored = self._memory.files.get(full)
        if stored is None:
            raise NotFound("no such file: {}".format(nameText(name)))
        return MemoryFile(stored.data, stored.version), len(stored.data)

    def digest(self, name: bytes, length: Optional[int] = None) -> Tuple[str, int]:
        f, size = self.openForRead(name)
        with f:
            if length is not None and length > size:
                raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), size, length))
            count = size if length is None else length
            return self._digestOf(f, f.read(count), SHA1), count

    def prefixHasher(self, name: bytes, length: int, also=None) -> Tuple[MemoryFile, object, int]:
        f, size = self.openForRead(name)
        if length > size:
            f.close()
            raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), size, length))
        prefix = f.read(length)
        if also is not None:
            also.update(prefix)
        return f, hashlib.sha1(prefix), size

    def readSmall(self, f: MemoryFile, size: int, checksum: str = SHA1) -> Tuple[bytes, str]:
        data = f.read(size)
        return data, self._digestOf(f, data, checksum)

    def _digestOf(self, f: MemoryFile, data: bytes, checksum: str) -> str:
        """
        The digest of C{data} read from C{f}, from the cache (and kept
        there) when it is the whole file.
        """
        whole = len(data) == f.size
        digest = self._memory.knownDigest(f.version, checksum) if whole else None
        if digest is None:
            hasher = checksums.new(checksum)
            hasher.update(data)
            digest = hasher.hexdigest()
            if whole:
                self._memory.rememberDigest(f.version, checksum, digest)
        return digest

    def cachedDigest(self, f: MemoryFile, checksum: str = SHA1) -> Optional[str]:
        return self._memory.knownDigest(f.version, checksum)

    def fileVersion(self, f: MemoryFile) -> int:
        return f.version

    def rememberDigest(self, f: MemoryFile, hexdigest: str, version: int, checksum: str = SHA1) -> None:
        # An open memory file never changes; the check matters on disk.
        if f.version == version:
            self._memory.rememberDigest(version, checksum, hexdigest)

    def partialUpload(self, name: bytes) -> Tuple[int, str]:
        full = self._full(name)
        with self._memory.lock:
            partial = self._memory.partials.get(full)
            data = bytes(partial.data) if partial is not None else b""
        if not data:
            return 0, EMPTY_SHA1
        return len(data), hashlib.sha1(data).hexdigest()

    def diskSpace(self) -> Tuple[int, int]:
        memory = self._memory
        free = max(0, memory.total - memory.used)
        if memory.quota is not None:
            free = min(free, memory.quota.available())
        return memory.total, free

    def usedSpace(self) -> int:
        return self._memory.used

    # -- writing --------------------------------------------------------

    def makeFolder(self, name: bytes) -> None:
        memoryfolders.makeFolder(self._memory, self._full(name), name)

    def removeFolder(self, name: bytes) -> int:
        return memoryfolders.removeFolder(self._memory, self._full(name), name)

    def beginUpload(
        self, name: bytes, size: int, offset: int = 0, prefixSha1: Optional[str] = None, checksum: str = SHA1,
        mode: str = PUT_REPLACE,
    ) -> IUpload:
        full = self._full(name)
        memory = self._memory
        with memory.lock:
            missing = len(memory.missingFolders(full))
        reservation = QuotaReservation(memory.quota, size - offset, name, missing)
        try:
            with memory.lock:
                if memory.fileInTheWay(full):
                    raise NotFound("no such file: {}".format(nameText(name)))
                reservation.foldersCreated(len(memory.missingFolders(full)))
                memory.makeFolders(full)
                if full in memory.folders:
                    raise Conflict("is a directory: {}".format(nameText(name)))
                if mode == PUT_NEW and full in memory.files:
                    raise AlreadyExists("{} already exists on the server; nothing was changed".format(nameText(name)))
            release = memory.claims.claim(full, name)
        except BaseException:
            reservation.settle()
            raise
        try:
            # From here the upload owns the reservation and settles it.
            upload = _MemoryUpload(memory, full, name, size, offset, prefixSha1, release, reservation, checksum)
            upload.mode = mode
            return upload
        except BaseException:
            release()
            raise

    def delete(self, name: bytes) -> None:
        full = self._full(name)
        memory = self._memory
        with memory.lock:
            if full in memory.folders:
                raise Conflict("is a directory: {}".format(nameText(name)))
            stored = memory.files.pop(full, None)
            if stored is None:
                raise NotFound("no such file: {}".format(nameText(name)))
            memory.used -= len(stored.data)
        if memory.quota is not None:
            memory.quota.freed(memory.quota.charge(len(stored.data), 1))

    # -- views and upkeep ---------------------------------------------------

    def child(self, path: bytes) -> "MemoryStorage":
        full = self._full(path)
        memory = self._memory
        with memory.lock:
            if full in memory.files:
                raise FileExistsError(errno.EEXIST, "File exists", nameText(path))
            if memory.fileInTheWay(full):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", nameText(path))
            memory.makeFolders(full + b"/")
        return MemoryStorage(_memory=memory, _prefix=full + b"/")

    def sweep(self, ttl: float, now: float) -> SweepResult:
        memory = self._memory
        cutoff = now - ttl
        expired = 0
        with memory.lock:
            for full, partial in list(memory.partials.items()):
                if self._mine(full) and partial.mtime <= cutoff:
                    # The claims' lock is taken inside this one, never the
                    # other way round.
                    if memory.claims.unlessClaimed(full, lambda: memory.dropPartial(full)):
                        expired += 1
            files = [len(s.data) for f, s in memory.files.items() if self._mine(f)]
            files += [len(p.data) for f, p in memory.partials.items() if self._mine(f)]
            folders = sum(1 for f in memory.folders if self._mine(f) and f != self._prefix.rstrip(b"/"))
        used = sum(files)
        if memory.quota is not None:
            memory.quota.recount(memory.quota.charge(used, len(files), folders))
        return SweepResult(expired, used, len(files), folders)

    # -- for tests: what is stored, as a test would look on disk ------------

    def setContent(self, name: bytes, data: bytes, mtime: Optional[float] = None) -> None:
        """
        Store a file as if it had been put there by hand: no upload, and
        the quota learns of it at the next L{sweep}.
        """
        full = self._full(name)
        memory = self._memory
        with memory.lock:
            memory.makeFolders(full)
            memory.store(full, bytes(data), memory.now() if mtime is None else mtime)

    def getContent(self, name: bytes) -> Optional[bytes]:
        """
        The bytes of a file, or L{None} when there is none.
        """
        stored = self._memory.files.get(self._full(name))
        return stored.data if stored is not None else None

    def setPartial(self, name: bytes, data: bytes, mtime: Optional[float] = None) -> None:
        """
        Leave C{data} as an interrupted upload to C{name} would, last
        written at C{mtime}.
        """
        full = self._full(name)
        memory = self._memory
        with memory.lock:
            memory.makeFolders(full)
            memory.dropPartial(full)
            memory.partials[full] = _Partial(data, memory.now() if mtime is None else mtime)
            memory.used += len(data)

    def getPartial(self, name: bytes) -> Optional[bytes]:
        """
        The bytes kept from an upload to C{name}, or L{None} when none are.
        """
        partial = self._memory.partials.get(self._full(name))
        return bytes(partial.data) if partial is not None else None

    def folderEntries(self, folder: bytes = b"") -> List[bytes]:
        """
        What a listing of C{folder} on disk would show, sorted: files,
        folders, and partial uploads under their hidden names
        (C{.NAME.ftx-partial}).
        """
        return memoryfolders.entries(self._memory, self._prefix + (folder + b"/" if folder else b""))
