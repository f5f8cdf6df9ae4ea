"""
A cache of whole-file digests, SHA-1 and the faster transfer checksum.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from ftx.protocol.checksums import SHA1

#: A digest is not kept when the file changed less than this long (ns)
#: before it was read. A rewrite of the same size within one tick of the
#: filesystem's clock (a few milliseconds on ext4, xfs, btrfs and tmpfs)
#: leaves every field of the key as it was, so bytes read within that tick
#: may be older or newer than the key says. Files on filesystems with
#: coarser clocks (FAT: two seconds) are not protected by this margin.
SETTLED_NS = 50 * 10**6


class DigestCache:
    """
    Whole-file digests keyed by what changes when a file does (device,
    inode, size, modification time) and by checksum, so a repeated C{hash}
    or download of an unchanged file is answered without reading it again.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._entries: Dict[tuple, str] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    @staticmethod
    def key(st: os.stat_result) -> tuple:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def get(self, st: os.stat_result, checksum: str = SHA1) -> Optional[str]:
        with self._lock:
            return self._entries.get(self.key(st) + (checksum,))

    def put(self, st: os.stat_result, hexdigest: str, checksum: str = SHA1, readSince: Optional[int] = None) -> None:
        """
        Keep C{hexdigest} for the file C{st} describes. C{readSince} is
        when reading it for the digest began (C{time.time_ns()}; default:
        now).
        """
        if st.st_ctime_ns > (time.time_ns() if readSince is None else readSince) - SETTLED_NS:
            return
        with self._lock:
            if len(self._entries) >= self._capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[self.key(st) + (checksum,)] = hexdigest


#: Bytes between two kept states of a prefix hash, at least.
CHECKPOINT_STRIDE = 8 << 20


class PrefixCheckpoints:
    """
    Intermediate SHA-1 states of files' prefixes, so that hashing the first
    N bytes of a file starts from the nearest state kept at or before N
    instead of from byte 0.

    Without it every C{cget NAME N DIGEST} read and hashed N bytes: forty
    connections asking for a prefix of one large file, with a wrong
    digest, cost the server 41 CPU seconds for 5 KB of requests. With it
    the file is hashed once, and each request costs at most one stride.

    States are kept per file under the digest cache's key (so a changed
    file starts over), every L{stride} bytes and at the end of each prefix
    hashed: at most C{perFile * 2} states for each of the C{files} most
    recent files, a few hundred bytes each.
    """

    def __init__(self, files: int = 64, perFile: int = 256) -> None:
        self._files: "OrderedDict[tuple, Dict[int, object]]" = OrderedDict()
        self._maxFiles = files
        self._perFile = perFile
        self._lock = threading.Lock()

    def stride(self, size: int) -> int:
        """
        Bytes between kept states for a file of C{size} bytes.
        """
        return max(CHECKPOINT_STRIDE, size // self._perFile + 1)

    def nearest(self, st: os.stat_result, length: int) -> Tuple[int, Optional[object]]:
        """
        The furthest kept state at or before C{length} bytes of the file
        C{st} describes: its offset and a copy of the hasher (to be fed
        from that offset on), or C{(0, None)}.
        """
        with self._lock:
            states = self._files.get(DigestCache.key(st))
            if not states:
                return 0, None
            self._files.move_to_end(DigestCache.key(st))
            best = max((offset for offset in states if offset <= length), default=0)
            if best == 0:
                return 0, None
            return best, states[best].copy()

    def keep(self, st: os.stat_result, marks: List[Tuple[int, object]]) -> None:
        """
        Keep the hasher states C{marks} (offset, hasher) of the file C{st}
        describes. The caller has checked that the file did not change
        while it was read (as for L{DigestCache.put}).
        """
        key = DigestCache.key(st)
        with self._lock:
            states = self._files.setdefault(key, {})
            self._files.move_to_end(key)
            for offset, hasher in marks:
                states[offset] = hasher
            while len(states) > self._perFile * 2:
                states.pop(next(iter(states)))
            while len(self._files) > self._maxFiles:
                self._files.popitem(last=False)
