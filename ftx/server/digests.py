"""
A cache of whole-file digests, SHA-1 and the faster transfer checksum.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Dict, Optional

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
