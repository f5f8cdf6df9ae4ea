"""
L{ftx.client.smallfiles.SmallFileStore} on its own: small files handed to
it on the reactor thread, stored by a worker thread in the order given,
reported back in that order.
"""

from __future__ import annotations

import os
import time

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from ftx._io import workers
from ftx.client import connect, localfiles, smallfiles
from ftx.errors import FtxError, IntegrityError
from ftx.protocol import checksums, wire
from tests.hostile import HostileFactory, HostileProtocol, listenHostile
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


class PlacingTests(TestCase):
    """
    How a small file takes its name: with no name first where the system
    allows (C{O_TMPFILE}), else under a partial name renamed into place;
    either way never a partial file under the final name.
    """

    def setUp(self) -> None:
        self.folder = temporaryFolder(self, "ftx-smallplace-")
        self.addCleanup(workers.stopPools, reactor)
        self.recorder = _Recorder()
        self.store = smallfiles.SmallFileStore(reactor, self.recorder.onStored, self.recorder.onChanged)

    async def _storeAll(self, jobs):
        for job in jobs:
            self.store.add(job)
        await self.store.whenIdle()
        for job in jobs:
            self.assertIsNone(job.error)
            with open(job.path, "rb") as f:
                self.assertEqual(f.read(), job.content)
            self.assertFalse(os.path.exists(localfiles.partialPath(job.path)))

    async def test_unnamedWhereTheSystemAllows(self):
        """
        On Linux the file is written unnamed and linked, never through its
        partial name: a link planted there is not followed (its target is
        untouched) and, like a partial file left by an earlier cut-off
        download of the name, is removed once the file is in place.
        """
        if not localfiles.UNNAMED:
            raise SkipTest("no O_TMPFILE on this system: the renamed path is tested below")
        outside = temporaryFolder(self, "ftx-smallplace-outside-")
        victim = os.path.join(outside, "victim")
        with open(victim, "wb") as f:
            f.write(b"victim")
        jobs = [_job(self.folder, i) for i in range(3)]
        stale = localfiles.partialPath(jobs[1].path)
        with open(stale, "wb") as f:
            f.write(b"left by a cut-off download")
        os.symlink(victim, localfiles.partialPath(jobs[2].path))
        await self._storeAll(jobs)
        with open(victim, "rb") as f:
            self.assertEqual(f.read(), b"victim")
        self.assertEqual(sorted(os.listdir(self.folder)), sorted(os.path.basename(j.path) for j in jobs))

    async def test_renamedWithoutUnnamedFiles(self):
        """
        Where unnamed files cannot be made, the partial file and its rename
        do the same.
        """
        self.patch(localfiles, "UNNAMED", False)
        await self._storeAll([_job(self.folder, i) for i in range(5)])

    async def test_existingFileIsReplaced(self):
        """
        A link cannot replace a name: a file already there is replaced by
        a rename, as before (the conflict policy, decided before the body
        came, said so).
        """
        jobs = [_job(self.folder, i) for i in range(3)]
        with open(jobs[1].path, "wb") as f:
            f.write(b"old")
        await self._storeAll(jobs)

    async def test_linkInPlaceIsReplacedNotFollowed(self):
        """
        A symbolic link where the file goes is replaced by the file; what
        it pointed to is not written.
        """
        outside = temporaryFolder(self, "ftx-smallplace-outside-")
        target = os.path.join(outside, "target")
        with open(target, "wb") as f:
            f.write(b"untouched")
        job = _job(self.folder, 0)
        os.symlink(target, job.path)
        await self._storeAll([job])
        self.assertFalse(os.path.islink(job.path))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"untouched")


class _CutOff(HostileProtocol):
    """
    Answers C{mget} with one whole file, then the header and half the body
    of the next, then drops the connection.
    """

    def do_mget(self, fields) -> None:
        (whole, data), (cut, cutData) = self.factory.sent
        self._body(whole, data)
        self._send("150 {} {} 0".format(cut.decode("ascii"), len(cutData)))
        self.transport.write(cutData[: len(cutData) // 2])
        reactor.callLater(0.05, self.transport.loseConnection)


class CutOffTests(TestCase):
    """
    What a download cut off in the middle of a file leaves: nothing of a
    small file (it was in memory, and a re-run fetches it again), a partial
    file of a large one (which C{cget} and C{mget} continue).
    """

    async def _cutOff(self, size: int):
        local = temporaryFolder(self, "ftx-cutoff-")
        factory = HostileFactory(sent=[(b"a.bin", os.urandom(4 * KiB)), (b"b.bin", os.urandom(size))])
        factory.protocol = _CutOff
        client = await connect(reactor, listenHostile(self, reactor, factory))
        self.addCleanup(client.protocol.transport.abortConnection)
        self.addCleanup(workers.stopPools, reactor)
        with self.assertRaises(Exception):
            await client.mget("*.bin", local)
        # a.bin is stored by the worker, perhaps after the failure.
        for _ in range(200):
            if os.path.exists(os.path.join(local, "a.bin")):
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(os.path.exists(os.path.join(local, "b.bin")))
        return local

    async def test_smallFileCutOffLeavesNothing(self):
        local = await self._cutOff(wire.SMALL_BODY)
        self.assertEqual(sorted(os.listdir(local)), ["a.bin"])

    async def test_largeFileCutOffLeavesAPartialFile(self):
        local = await self._cutOff(wire.SMALL_BODY + 1)
        self.assertEqual(sorted(os.listdir(local)), [".b.bin" + localfiles.PARTIAL_SUFFIX, "a.bin"])
        self.assertGreater(os.path.getsize(os.path.join(local, ".b.bin" + localfiles.PARTIAL_SUFFIX)), 0)
