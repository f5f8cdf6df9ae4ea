"""
L{ftx.testing}: the in-memory server and client pair an embedder tests
against, used here the way an embedder would, over both storage backends.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx.server import FilesystemStorage, ServerPolicy
from ftx.testing import InlineReactor, MemoryStorage, connectInMemory


class InMemoryPairTests(SynchronousTestCase):
    """
    A client from L{connectInMemory} over a L{MemoryStorage}: every request
    completes once the test flushes, with no port, thread or sleep.
    """

    def setUp(self) -> None:
        self.storage = MemoryStorage({b"notes.txt": b"hello", b"photos/a.jpg": b"\xff\xd8" * 1000})
        self.connection = connectInMemory(self.storage)
        self.client = self.connection.client
        self.local = tempfile.mkdtemp(prefix="ftx-testing-")
        self.addCleanup(_removeTree, self.local)

    def _result(self, d):
        self.connection.flush()
        return self.successResultOf(d)

    def test_greetedAndAgreedOnAChecksum(self) -> None:
        self.assertIn("sget", self.client.protocol.features)
        self.assertEqual(self.client.protocol.checksum, "xxh128")

    def test_listAndDownload(self) -> None:
        entries = self._result(self.client.list())
        self.assertEqual([(e.name, e.size) for e in entries], [("notes.txt", 5), ("photos/a.jpg", 2000)])
        path = os.path.join(self.local, "notes.txt")
        transfer = self._result(self.client.sget("notes.txt", path))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"hello")
        self.assertEqual((transfer.name, transfer.size, transfer.transferred), ("notes.txt", 5, 5))

    def test_uploadLandsInTheStorage(self) -> None:
        path = os.path.join(self.local, "report.txt")
        content = os.urandom(300 << 10)
        with open(path, "wb") as f:
            f.write(content)
        transfer = self._result(self.client.put(path, "reports/report.txt"))
        self.assertEqual(self.storage.getContent(b"reports/report.txt"), content)
        self.assertEqual(transfer.size, len(content))
        self.assertEqual(self._result(self.client.hash("reports/report.txt")), hashlib.sha1(content).hexdigest())

    def test_errorsArriveTyped(self) -> None:
        d = self.client.sget("missing.txt", os.path.join(self.local, "x"))
        self.connection.flush()
        self.failureResultOf(d, errors.NotFound)
        d = self.client.delete("photos")
        self.connection.flush()
        self.failureResultOf(d, errors.Conflict)

    def test_deleteAndDiskSpace(self) -> None:
        self._result(self.client.delete("notes.txt"))
        self.assertEqual([e.name for e in self._result(self.client.list())], ["photos/a.jpg"])
        space = self._result(self.client.df())
        self.assertEqual(space.total, self.storage.diskSpace()[0])

    def test_timersFollowTheClock(self) -> None:
        """
        The server's idle timeout is a timer on the pair's clock: nothing
        happens until the test advances it.
        """
        reactor = InlineReactor()
        connection = connectInMemory(MemoryStorage(), policy=ServerPolicy(idleTimeout=60), reactor=reactor)
        d = connection.client.list()
        connection.flush()
        self.assertEqual(self.successResultOf(d), [])
        reactor.advance(59)
        connection.flush()
        self.assertFalse(connection.server.disconnected)
        reactor.advance(2)
        connection.flush()
        self.assertTrue(connection.server.disconnected)
        self.failureResultOf(connection.client.list(), errors.ConnectionLost)


class FilesystemPairTests(SynchronousTestCase):
    """
    The same pair over a real folder: the storage is whatever the embedder
    passes.
    """

    def test_roundTripThroughAFolder(self) -> None:
        root = tempfile.mkdtemp(prefix="ftx-testing-root-")
        self.addCleanup(_removeTree, root)
        connection = connectInMemory(FilesystemStorage(root))
        source = os.path.join(root, "..", os.path.basename(root) + "-source.bin")
        self.addCleanup(os.remove, source)
        with open(source, "wb") as f:
            f.write(b"x" * 5000)
        d = connection.client.put(source, "copy.bin")
        connection.flush()
        self.successResultOf(d)
        with open(os.path.join(root, "copy.bin"), "rb") as f:
            self.assertEqual(f.read(), b"x" * 5000)


def _removeTree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
