"""
A cache of whole-file digests, SHA-1 and the faster transfer checksum.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Dict, Optional

from ftx.checksums import SHA1

#: A file whose inode changed less than this long ago (ns) is not cached.
#: A rewrite of the same size within one tick of the filesystem's clock
#: (milliseconds on ext4, two seconds on FAT) leaves every field of the
#: key as it was, and a cached digest would then describe the old bytes.
SETTLED_NS = 3 * 10**9


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

    def put(self, st: os.stat_result, hexdigest: str, checksum: str = SHA1) -> None:
        if st.st_ctime_ns > time.time_ns() - SETTLED_NS:
            return
        with self._lock:
            if len(self._entries) >= self._capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[self.key(st) + (checksum,)] = hexdigest
