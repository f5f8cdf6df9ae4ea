"""
The two storage backends as test fixtures, so that one test runs over both:
a test class mixes in L{OnFilesystem} or L{InMemory}, calls C{makeStorage}
and looks at what is stored through the same few methods.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, List, Optional

from ftx.protocol.names import PARTIAL_SUFFIX
from ftx.server.filesystem import FilesystemStorage
from ftx.testing import MemoryStorage


def _partialPath(root: str, name: bytes) -> str:
    folder, _, leaf = name.rpartition(b"/")
    return os.path.join(os.fsencode(root), folder, b"." + leaf + PARTIAL_SUFFIX).decode("utf-8", "surrogateescape")


class OnFilesystem:
    """
    A L{FilesystemStorage} of a fresh folder outside the working tree
    (trial's mktemp would put it in the current directory under pytest),
    removed afterwards.
    """

    backend = "filesystem"

    def makeStorage(self, files: Optional[Dict[bytes, bytes]] = None, quota=None) -> FilesystemStorage:
        base = tempfile.mkdtemp(prefix="ftx-test-")
        self.addCleanup(shutil.rmtree, base, True)
        self.storageRoot = os.path.join(base, "root")
        os.makedirs(self.storageRoot)
        for name, data in (files or {}).items():
            path = os.path.join(os.fsencode(self.storageRoot), name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        self.storage = FilesystemStorage(self.storageRoot, quota)
        return self.storage

    def storedContent(self, name: bytes) -> Optional[bytes]:
        path = os.path.join(os.fsencode(self.storageRoot), name)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def storePartial(self, name: bytes, data: bytes, mtime: Optional[float] = None) -> None:
        path = _partialPath(self.storageRoot, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))

    def partialContent(self, name: bytes) -> Optional[bytes]:
        path = _partialPath(self.storageRoot, name)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def folderEntries(self, folder: bytes = b"") -> List[bytes]:
        return sorted(os.listdir(os.path.join(os.fsencode(self.storageRoot), folder) if folder else os.fsencode(self.storageRoot)))


class InMemory:
    """
    A L{MemoryStorage}.
    """

    backend = "memory"

    def makeStorage(self, files: Optional[Dict[bytes, bytes]] = None, quota=None) -> MemoryStorage:
        self.storage = MemoryStorage(files, quota=quota)
        return self.storage

    def storedContent(self, name: bytes) -> Optional[bytes]:
        return self.storage.getContent(name)

    def storePartial(self, name: bytes, data: bytes, mtime: Optional[float] = None) -> None:
        self.storage.setPartial(name, data, mtime)

    def partialContent(self, name: bytes) -> Optional[bytes]:
        return self.storage.getPartial(name)

    def folderEntries(self, folder: bytes = b"") -> List[bytes]:
        return self.storage.folderEntries(folder)
