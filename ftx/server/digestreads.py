"""
Reading served files for their digests: whole (C{hash}, a download's
trailer), by prefix (C{cget}), or whole and small (C{mget}), with the
digest cache in front so an unchanged file is read for its digest once.

L{DigestReader} is a part of L{ftx.server.filesystem.FilesystemStorage},
which owns one and delegates these calls of L{ftx.server.storage.IStorage}
to it; it works on open files and stat results, never on paths.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Callable, Optional, Tuple

from ftx._io.buffers import alignedBuffer
from ftx._io.fileio import READ_CHUNK, hashPrefix
from ftx.errors import BadOffset, IntegrityError
from ftx.protocol import checksums
from ftx.protocol.checksums import SHA1
from ftx.protocol.wire import nameText
from ftx.server import digests as digestcache
from ftx.server.digests import DigestCache, PrefixCheckpoints

__all__ = ["DigestReader"]


class DigestReader:
    """
    Digests of files opened by C{openFile} (a callable taking a name and
    returning an open file descriptor and its C{os.stat_result}, confined
    to the root and raising L{ftx.errors.FtxError}s), kept in C{digests}.
    """

    def __init__(
        self,
        openFile: Callable[[bytes], Tuple[int, os.stat_result]],
        digests: DigestCache,
        checkpoints: Optional[PrefixCheckpoints] = None,
    ) -> None:
        self._openFile = openFile
        self.digests = digests
        self.checkpoints = PrefixCheckpoints() if checkpoints is None else checkpoints

    def _hashPrefix(self, f, st: os.stat_result, length: int, name: bytes, also=None):
        """
        The SHA-1 of the first C{length} bytes of C{f} (leaving C{f} just
        after them), started from the furthest state L{checkpoints} holds,
        and leaving states behind for the next request. A prefix that must
        also feed C{also} (another checksum) is read whole.
        """
        if also is not None or length < digestcache.CHECKPOINT_STRIDE:
            return hashPrefix(f, length, name, also)
        readSince = time.time_ns()
        start, hasher = self.checkpoints.nearest(st, length)
        if hasher is None:
            start, hasher = 0, hashlib.sha1()
        f.seek(start)
        stride = self.checkpoints.stride(st.st_size)
        view = alignedBuffer(READ_CHUNK)
        marks = []
        position = start
        while position < length:
            mark = min(length, (position // stride + 1) * stride)
            while position < mark:
                got = f.readinto(view[: min(READ_CHUNK, mark - position)])
                if not got:
                    raise IntegrityError("{} shrank while it was being read".format(nameText(name)))
                hasher.update(view[:got])
                position += got
            marks.append((position, hasher.copy()))
        settled = st.st_ctime_ns <= readSince - digestcache.SETTLED_NS
        if settled and DigestCache.key(os.fstat(f.fileno())) == DigestCache.key(st):
            self.checkpoints.keep(st, marks)
        return hasher

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
            readSince = time.time_ns()
            hasher = self._hashPrefix(f, st, count, name)
            if whole and DigestCache.key(os.fstat(f.fileno())) == DigestCache.key(st):
                self.digests.put(st, hasher.hexdigest(), SHA1, readSince)
            return hasher.hexdigest(), count

    def prefixHasher(self, name: bytes, length: int, also=None) -> Tuple[object, object, int]:
        fd, st = self._openFile(name)
        f = os.fdopen(fd, "rb", buffering=0)
        try:
            if length > st.st_size:
                raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), st.st_size, length))
            hasher = self._hashPrefix(f, st, length, name, also)
            return f, hasher, st.st_size
        except BaseException:
            f.close()
            raise

    def cachedDigest(self, f, checksum: str = SHA1) -> Optional[str]:
        """
        The whole-file digest of an open file, if known and still valid.
        """
        return self.digests.get(os.fstat(f.fileno()), checksum)

    def fileVersion(self, f) -> tuple:
        """
        What identifies the content of an open file for the digest cache,
        taken before reading it: its key, and when it was taken.
        """
        return DigestCache.key(os.fstat(f.fileno())), time.time_ns()

    def readSmall(self, f, size: int, checksum: str = SHA1) -> Tuple[bytes, str]:
        """
        The bytes of a small open file (at most C{size}; fewer if it shrank
        since it was opened) and their digest by C{checksum}, from the
        digest cache when the file is unchanged. Cheap enough for the
        reactor thread.
        """
        before = os.fstat(f.fileno())
        readSince = time.time_ns()
        data = f.read(size)
        after = os.fstat(f.fileno())
        unchanged = DigestCache.key(before) == DigestCache.key(after) and len(data) == after.st_size
        digest = self.digests.get(after, checksum) if unchanged else None
        if digest is None:
            hasher = checksums.new(checksum)
            hasher.update(data)
            digest = hasher.hexdigest()
            if unchanged:
                self.digests.put(after, digest, checksum, readSince)
        return data, digest

    def rememberDigest(self, f, hexdigest: str, version: tuple, checksum: str = SHA1) -> None:
        """
        Cache a digest computed while sending, but only if the file did not
        change in the meantime (then the digest describes a mix).
        """
        st = os.fstat(f.fileno())
        key, readSince = version
        if DigestCache.key(st) == key:
            self.digests.put(st, hexdigest, checksum, readSince)
