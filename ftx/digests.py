"""
A cache of whole-file SHA-1 digests.
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Optional


class DigestCache:
    """
    Whole-file SHA-1s keyed by what changes when a file does (device, inode,
    size, modification time), so a repeated C{hash} of an unchanged file is
    answered without reading it again.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._entries: Dict[tuple, str] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    @staticmethod
    def key(st: os.stat_result) -> tuple:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def get(self, st: os.stat_result) -> Optional[str]:
        with self._lock:
            return self._entries.get(self.key(st))

    def put(self, st: os.stat_result, hexdigest: str) -> None:
        with self._lock:
            if len(self._entries) >= self._capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[self.key(st)] = hexdigest
