"""
L{ftx.client.smallfiles.SmallFileStore} stores in two lanes at once (a
rename over an existing file waits for the disk), yet reports every file
in the order added, and stores the files of one path in the order added.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from ftx.client import smallfiles
from ftx.client.smallfiles import SmallFile, SmallFileStore
from ftx.protocol import checksums


def _job(path: str, data: bytes) -> SmallFile:
    job = SmallFile(os.path.basename(path).encode(), path, len(data), checksums.SHA1)
    job.pieces = [data]
    job.digest = hashlib.sha1(data).hexdigest()
    return job


class LaneTests(TestCase):
    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder)

    async def test_orderKeptAcrossLanes(self) -> None:
        self.assertEqual(len(smallfiles._LANE_POOLS), 2)
        reported = []
        store = SmallFileStore(reactor, reported.append, lambda: None, lanes=2)
        self.assertEqual(len(store._lanes), 2)
        jobs = []
        for i in range(120):
            # Every third file goes to one path, again and again: the last
            # one added must be what is left there.
            name = "same" if i % 3 == 0 else "f{:03d}".format(i)
            data = b"%d " % i * (1 + i % 7)
            if i == 50:
                data = b"corrupted"
                job = _job(os.path.join(self.folder, "bad"), b"other")
                job.pieces = [data]
            else:
                job = _job(os.path.join(self.folder, "sub", name), data)
            jobs.append(job)
            store.add(job)
        done: Deferred = store.whenIdle()
        await done
        self.assertEqual(reported, jobs)
        self.assertTrue(all(job.stored for job in jobs))
        self.assertEqual([i for i, job in enumerate(jobs) if job.error is not None], [50])
        self.assertFalse(os.path.exists(os.path.join(self.folder, "bad")))
        with open(os.path.join(self.folder, "sub", "same"), "rb") as f:
            self.assertEqual(f.read(), b"%d " % 117 * (1 + 117 % 7))
        with open(os.path.join(self.folder, "sub", "f119"), "rb") as f:
            self.assertEqual(f.read(), b"%d " % 119 * (1 + 119 % 7))
        self.assertEqual(sorted(os.listdir(os.path.join(self.folder, "sub")))[:2], ["f001", "f002"])
        self.assertFalse([n for n in os.listdir(os.path.join(self.folder, "sub")) if n.startswith(".")])
