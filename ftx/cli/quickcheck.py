"""
TEMPORARY stub of the quickcheck helper's module (its API only), until
main has the real one; removed before merging.
"""

from __future__ import annotations

import os
import stat
from typing import Optional

from ftx.protocol import checksums


def sameAsRemote(path: str, size: int, mtime: int) -> bool:
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size and int(st.st_mtime) == mtime


class DigestCache:
    def __init__(self, path=None) -> None:
        self.path = path

    def digest(self, path: str, checksum: str) -> str:
        return localDigest(path, checksum)


def localDigest(path: str, checksum: str, cache: Optional[DigestCache] = None) -> str:
    hasher = checksums.new(checksum)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
