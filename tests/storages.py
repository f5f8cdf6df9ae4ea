"""
The storage backends as test fixtures, so that one test runs over both:
a test class mixes in L{OnFilesystem}, L{InMemory} or L{OnS3}, calls C{makeStorage}
and looks at what is stored through the same few methods.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
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


class OnS3:
    """
    An L{ftx.server.s3.S3Storage} over a fresh key prefix of one bucket of
    the real engine (L{tests.seaweed}), started once per test process.
    """

    backend = "s3"

    def makeStorage(self, files: Optional[Dict[bytes, bytes]] = None, quota=None):
        from ftx.server.s3 import S3Storage, openBucket
        from tests import seaweed

        engine = seaweed.engine()
        if not hasattr(OnS3, "_bucketName"):
            OnS3._bucketName = engine.newBucket()
        bucket = openBucket(engine.endpoint, OnS3._bucketName)
        self.addCleanup(bucket.close)
        self.s3 = bucket
        self.s3Prefix = "t-{}/".format(uuid.uuid4().hex[:12])
        for name, data in (files or {}).items():
            bucket.client.put_object(Bucket=bucket.name, Key=self.s3Prefix + name.decode("utf-8"), Body=data)
        self.storage = S3Storage(bucket, self.s3Prefix, quota)
        return self.storage

    def _area(self, name: bytes) -> str:
        from ftx.server.s3.partials import areaOf

        return areaOf(self.s3Prefix, name)

    def storedContent(self, name: bytes) -> Optional[bytes]:
        try:
            response = self.s3.client.get_object(Bucket=self.s3.name, Key=self.s3Prefix + name.decode("utf-8"))
        except Exception:
            return None
        return response["Body"].read()

    def storePartial(self, name: bytes, data: bytes, mtime: Optional[float] = None) -> None:
        from ftx.server.s3.partials import writePartial

        writePartial(self.s3, self._area(name), data, time.time() if mtime is None else mtime)

    def partialContent(self, name: bytes) -> Optional[bytes]:
        from ftx.server.s3.partials import partialContent

        return partialContent(self.s3, self._area(name))

    def folderEntries(self, folder: bytes = b"") -> List[bytes]:
        prefix = self.s3Prefix + (folder.decode("utf-8") + "/" if folder else "")
        response = self.s3.client.list_objects_v2(Bucket=self.s3.name, Prefix=prefix, Delimiter="/")
        names = {p["Prefix"][len(prefix) : -1] for p in response.get("CommonPrefixes", ())}
        names.update(o["Key"][len(prefix) :] for o in response.get("Contents", ()))
        names.discard("")
        names.discard(".ftx-uploads")
        return sorted(n.encode("utf-8") for n in names)
