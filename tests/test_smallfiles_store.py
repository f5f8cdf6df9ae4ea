"""
L{ftx.client.smallfiles.SmallFileStore} on its own: small files handed to
it on the reactor thread, stored by a worker thread in the order given,
reported back in that order.
"""

from __future__ import annotations

import os
import time

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from ftx._io import workers
from ftx.client import localfiles, smallfiles
from ftx.errors import FtxError, IntegrityError
from ftx.protocol import checksums
from tests.support import temporaryFolder

KiB = 1 << 10


class _Job(smallfiles.SmallFile):
    """
    A small file that also remembers what it should hold.
    """


def _job(folder: str, index: int, size: int = 4 * KiB, digest=None) -> smallfiles.SmallFile:
    name = "f{:04d}.bin".format(index).encode("ascii")
    content = os.urandom(size)
    job = _Job(name, os.path.join(folder, name.decode("ascii")), size, checksums.XXH128)
    # Two pieces, as a body split over two reads arrives.
    job.pieces = [content[: size // 3], memoryview(content)[size // 3 :]]
    hasher = checksums.new(checksums.XXH128)
    hasher.update(content)
    job.digest = hasher.hexdigest() if digest is None else digest
    job.content = content
    return job


class _Recorder:
    def __init__(self) -> None:
        self.stored = []
        self.changes = 0

    def onStored(self, job) -> None:
        self.stored.append(job)

    def onChanged(self) -> None:
        self.changes += 1


class SmallFileStoreTests(TestCase):
    def setUp(self) -> None:
        self.folder = temporaryFolder(self, "ftx-smallstore-")
        self.addCleanup(workers.stopPools, reactor)
        self.recorder = _Recorder()
        self.store = smallfiles.SmallFileStore(reactor, self.recorder.onStored, self.recorder.onChanged)

    def _assertWritten(self, job) -> None:
        with open(job.path, "rb") as f:
            self.assertEqual(f.read(), job.content)
        self.assertFalse(os.path.exists(localfiles.partialPath(job.path)))

    async def test_storedInOrderAndReportedInOrder(self):
        """
        Every file is written under its name and reported once, in the
        order added; reports are fewer than files (one call back to the
        reactor thread covers every file stored meanwhile); the store is
        idle, with nothing waiting, once the last one is in.
        """
        jobs = [_job(self.folder, i, size=64 * KiB) for i in range(60)]
        for job in jobs:
            self.store.add(job)
        self.assertFalse(self.store.idle)
        self.assertEqual(self.store.waiting, 60 * 64 * KiB)
        await self.store.whenIdle()
        self.assertTrue(self.store.idle)
        self.assertEqual(self.store.waiting, 0)
        self.assertEqual(self.recorder.stored, jobs)
        for job in jobs:
            self.assertIsNone(job.error)
            self.assertTrue(job.stored)
            self.assertEqual(job.pieces, [])
            self._assertWritten(job)
        self.assertLess(self.recorder.changes, len(jobs))
        self.assertEqual(sorted(os.listdir(self.folder)), sorted(os.path.basename(j.path) for j in jobs))

    def test_workerGoesOnWithoutTheReactorThread(self):
        """
        Files added while the reactor thread is busy elsewhere are all
        stored: the worker takes the next file itself instead of waiting
        for the reactor thread to hand it over. (Run one batch at a time,
        only the first file was written until the reactor came back.)
        """
        jobs = [_job(self.folder, i) for i in range(40)]
        for job in jobs:
            self.store.add(job)
        # This test holds the reactor thread, bounded in time.
        deadline = time.monotonic() + 10
        while not all(job.stored for job in jobs) and time.monotonic() < deadline:
            time.sleep(0.005)
        self.assertTrue(all(job.stored for job in jobs), sum(job.stored for job in jobs))
        for job in jobs:
            self._assertWritten(job)
        self.assertEqual(self.recorder.stored, [])
        return self.store.whenIdle().addCallback(lambda _: self.assertEqual(self.recorder.stored, jobs))

    async def test_badFilesFailAloneInTheirPlace(self):
        """
        A file whose digest does not match, and one that cannot be written
        (a file stands where its folder would be), fail with their own
        errors and leave nothing behind; the files around them are stored
        and every report keeps its place.
        """
        with open(os.path.join(self.folder, "blocker"), "wb"):
            pass
        jobs = [_job(self.folder, i) for i in range(6)]
        jobs[2] = _job(self.folder, 2, digest="0" * 32)
        unwritable = _job(os.path.join(self.folder, "blocker", "sub"), 4)
        jobs[4] = unwritable
        for job in jobs:
            self.store.add(job)
        await self.store.whenIdle()
        self.assertEqual(self.recorder.stored, jobs)
        self.assertIsInstance(jobs[2].error, IntegrityError)
        self.assertIn("f0002.bin", str(jobs[2].error))
        self.assertFalse(os.path.exists(jobs[2].path))
        self.assertFalse(os.path.exists(localfiles.partialPath(jobs[2].path)))
        self.assertIsInstance(unwritable.error, FtxError)
        for i in (0, 1, 3, 5):
            self.assertIsNone(jobs[i].error)
            self._assertWritten(jobs[i])
        self.assertEqual(self.store.waiting, 0)
