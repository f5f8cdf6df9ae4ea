"""
The files the benchmark transfers, and the check of every received copy.

Source files are random bytes (so no layer can compress or deduplicate
them), made once and reused across runs: making 1 GiB costs seconds that
would otherwise be paid on every run. Their SHA-1s are kept in a manifest
beside them, keyed by size and mtime, so a file changed by hand is hashed
again rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

CHUNK = 1 << 20
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Source:
    """A file the harness made, with the facts a received copy must match."""

    path: Path
    size: int
    sha1: str

    @property
    def name(self) -> str:
        return self.path.name


def sha1_of(path: Path) -> str:
    """SHA-1 of a file, read in 1 MiB chunks into one reused buffer."""
    h = hashlib.sha1()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        # Bounded by the file's size; readinto returns 0 at the end.
        while True:
            n = f.readinto(buf)
            if not n:
                return h.hexdigest()
            h.update(view[:n])


def _write_random(path: Path, size: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)


class DataDir:
    """One directory of source files and the manifest of their digests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._manifest_path = root / MANIFEST
        try:
            self._manifest: Dict[str, list] = json.loads(self._manifest_path.read_text())
        except (OSError, ValueError):
            self._manifest = {}

    def ensure(self, rel: str, size: int) -> Source:
        """
        The file ``rel`` under the root, made with ``size`` random bytes if
        it is missing or has another size.
        """
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            st = path.stat()
        except FileNotFoundError:
            st = None
        if st is None or st.st_size != size:
            _write_random(path, size)
            st = path.stat()
        key = [st.st_size, st.st_mtime_ns]
        entry = self._manifest.get(rel)
        if entry is None or entry[:2] != key:
            entry = key + [sha1_of(path)]
            self._manifest[rel] = entry
        return Source(path, size, entry[2])

    def ensure_many(self, subdir: str, prefix: str, count: int, size: int) -> List[Source]:
        """``count`` files named PREFIX0000.bin ... in ``subdir``."""
        width = max(4, len(str(count - 1)))
        return [
            self.ensure(f"{subdir}/{prefix}{i:0{width}d}.bin", size) for i in range(count)
        ]

    def save(self) -> None:
        tmp = self._manifest_path.with_name(MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self._manifest, indent=0, sort_keys=True))
        os.replace(tmp, self._manifest_path)


def check(pairs: List[Tuple[Path, Source]]) -> Tuple[int, List[str]]:
    """
    Compare each received file with its source by size, then SHA-1.

    Returns how many matched and a description of each that did not.
    """
    ok = 0
    problems: List[str] = []
    for got, want in pairs:
        try:
            size = got.stat().st_size
        except FileNotFoundError:
            problems.append(f"{got.name}: missing")
            continue
        if size != want.size:
            problems.append(f"{got.name}: {size} bytes, want {want.size}")
        elif sha1_of(got) != want.sha1:
            problems.append(f"{got.name}: SHA-1 differs")
        else:
            ok += 1
    return ok, problems
