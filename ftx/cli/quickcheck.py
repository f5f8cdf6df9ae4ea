"""
Whether a local file is already the server's, at no cost: rsync's quick
check (same size, same whole-second modification time), and a digest
cache that makes the forced check (C{--verify}) cheap the second time.

Downloads keep the server's modification time (L{ftx.cli.remotefiles.keepMtime})
and uploads give the server the local one (the C{mtime} feature of the
protocol), so after one transfer both ends agree on size and time, and a
re-run needs nothing but the listing it already asked for. A file that was
changed and put back to the same size and time fools the quick check, as
it fools rsync: C{--verify} is for that.

The cache is a JSON file written whole to a temporary name and renamed
over the old one (C{os.replace}). That was chosen over C{sqlite3}: a
reader never sees a half-written file, two C{ftx} processes never wait
for each other's lock or fail with "database is locked" (nor on a home
folder over NFS, where SQLite's locks are unreliable), a damaged file is
simply an empty cache, and nothing is imported or read unless a digest is
actually asked for. Two processes saving at once can lose the other's
newest entries (each merges what is on disk before it writes): for a cache
that costs a recomputation, never a wrong answer.
"""

from __future__ import annotations

import atexit
import json
import os
import stat
import time
import weakref
from contextlib import contextmanager
from typing import Dict, Optional

from ftx.protocol import checksums

__all__ = ["sameAsRemote", "sameStatus", "DigestCache", "localDigest", "defaultCachePath", "SETTLED_NS"]


#: A digest is not kept for a file changed less than this long (ns) before
#: it was read: a rewrite of the same size within one tick of the file
#: system's clock leaves the key as it was (as in L{ftx.server.digests}).
SETTLED_NS = 50 * 10**6

_FORMAT = 1


def sameAsRemote(path: str, size: int, mtime: int) -> bool:
    """
    Whether C{path} is a regular file (a symbolic link is not) of C{size}
    bytes whose modification time, in whole seconds, is C{mtime} (the
    server's L{ftx.client.results.Entry.mtime}): rsync's quick check. Any
    error reading it means no.
    """
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return False
    return sameStatus(st, size, mtime)


def sameStatus(st: os.stat_result, size: int, mtime: int) -> bool:
    """
    L{sameAsRemote} for a status already taken (by C{os.lstat}: the status
    of a symbolic link is never the same).
    """
    return stat.S_ISREG(st.st_mode) and st.st_size == size and int(st.st_mtime) == mtime


def defaultCachePath() -> str:
    """
    Where the digest cache lives: C{$XDG_CACHE_HOME/ftx/digests.json}, or
    C{~/.cache/ftx/digests.json}.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ftx", "digests.json")


def _hashFile(path: str, checksum: str) -> str:
    from ftx._io.fileio import hashToEnd

    with open(path, "rb", buffering=0) as f:
        return hashToEnd(f, checksums.new(checksum)).hexdigest()


def _valid(record) -> bool:
    return (isinstance(record, list) and len(record) == 5
            and all(isinstance(v, int) and not isinstance(v, bool) for v in record[:3])
            and isinstance(record[3], str) and isinstance(record[4], (int, float)))


@contextmanager
def _folderLocked(folder: str):
    """
    Hold an exclusive C{flock} on C{folder} itself: the cache file is
    replaced by a rename, so a lock on the file would be on an inode the
    next writer no longer opens, and a lock file beside it would be one
    more file left in the folder. Where there is no C{flock}, no lock.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class DigestCache:
    """
    Whole-file digests of local files, kept across runs, keyed like the
    server's (device, inode, size, modification and change times in ns)
    and by checksum: a file whose key changed is hashed again. At most
    C{capacity} files are kept, the least recently used dropped first.

    A file changed less than C{settledNs} before it was read is hashed
    but not kept (see L{SETTLED_NS}).

    Digests computed are written out at most every L{saveEvery} seconds,
    on L{flush}, on leaving a C{with} block and when the process exits.
    Nothing about the file is ever an error: a missing, unreadable or
    damaged cache is an empty one, and a cache that cannot be written is
    a cache of this process only.
    """

    saveEvery = 2.0

    def __init__(self, path: Optional[str] = None, capacity: int = 20000, settledNs: int = SETTLED_NS) -> None:
        self.path = path if path is not None else defaultCachePath()
        self.capacity = capacity
        self.settledNs = settledNs
        self.hits = 0
        self.misses = 0
        self._entries: Optional[Dict[str, list]] = None
        self._changed: Dict[str, list] = {}
        self._savedAt = 0.0
        ref = weakref.ref(self)
        atexit.register(lambda: ref() is not None and ref().flush())

    def __enter__(self) -> "DigestCache":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()

    def digest(self, path: str, checksum: str, status: Optional[os.stat_result] = None) -> str:
        """
        The hex digest of the file at C{path} with checksum C{checksum}
        (a name from L{ftx.protocol.checksums}), from the cache when the
        file is unchanged since it was kept.

        @param status: C{os.stat(path)}, when the caller has just taken it:
            it is the key looked up (a file that changes after it was
            taken is not kept, as for one that changes while it is read).

        @raise OSError: the file cannot be read.
        @raise ftx.errors.BadRequest: an unknown checksum.
        """
        checksums.new(checksum)  # an unknown name fails before any reading
        before = os.stat(path) if status is None else status
        key = "{}:{}:{}".format(before.st_dev, before.st_ino, checksum)
        wanted = [before.st_size, before.st_mtime_ns, before.st_ctime_ns]
        record = self._load().get(key)
        # Checked here rather than for every record as the file is read:
        # a run looks up some of them, and a damaged one is a miss.
        if record is not None and _valid(record) and record[:3] == wanted:
            self.hits += 1
            record[4] = time.time()
            return record[3]
        self.misses += 1
        startedNs = time.time_ns()
        value = _hashFile(path, checksum)
        after = os.stat(path)
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == tuple(wanted) + (before.st_ino,) \
                and before.st_ctime_ns <= startedNs - self.settledNs:
            record = wanted + [value, time.time()]
            self._entries[key] = record
            self._changed[key] = record
            if time.monotonic() - self._savedAt >= self.saveEvery:
                self.flush()
        return value

    def flush(self) -> None:
        """
        Write the digests computed since the last save, merged with what
        another process may have saved meanwhile. Never raises.
        """
        if not self._changed:
            return
        self._savedAt = time.monotonic()
        try:
            folder = os.path.dirname(self.path) or "."
            os.makedirs(folder, mode=0o700, exist_ok=True)
            with _folderLocked(folder):
                self._mergeAndWrite(folder)
        except (OSError, ValueError, TypeError):
            return
        self._changed.clear()

    def _mergeAndWrite(self, folder: str) -> None:
        """
        Read, merge and replace the file, while no other ftx process does
        (the caller holds the folder's lock): two processes that both read
        before either wrote would each write back only their own news, and
        the first one's would be lost.
        """
        merged = self._read()
        merged.update(self._changed)
        if len(merged) > self.capacity:
            kept = sorted(merged.items(), key=lambda item: item[1][4], reverse=True)[: self.capacity]
            merged = dict(kept)
        import tempfile  # here: a download that hashes nothing starts without it (and shutil)

        fd, temporary = tempfile.mkstemp(prefix=".digests-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"format": _FORMAT, "entries": merged}, f, separators=(",", ":"))
            os.replace(temporary, self.path)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise

    def _load(self) -> Dict[str, list]:
        if self._entries is None:
            self._entries = self._read(validate=False)
        return self._entries

    def _read(self, validate: bool = True) -> Dict[str, list]:
        """
        The entries saved in the file: all of them, each checked by
        L{digest} when it is looked up; or with C{validate} (what L{flush}
        writes back) only the well-formed ones.
        """
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read())
            entries = data["entries"] if data.get("format") == _FORMAT else {}
            if not isinstance(entries, dict):
                return {}
            if not validate:
                return entries
            return {k: v for k, v in entries.items() if isinstance(k, str) and _valid(v)}
        except (OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError):
            return {}


def localDigest(path: str, checksum: str, cache: Optional[DigestCache] = None,
                status: Optional[os.stat_result] = None) -> str:
    """
    The hex digest of the local file C{path} with checksum C{checksum},
    through C{cache} when one is given (C{status}: as for
    L{DigestCache.digest}).

    @raise OSError: the file cannot be read.
    """
    if cache is not None:
        return cache.digest(path, checksum, status)
    return _hashFile(path, checksum)
