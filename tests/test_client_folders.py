"""
The wire side of issue 13, client against server in memory
(L{ftx.testing.connectInMemory}): put modes, mkdir and rmtree, and the
third figure of df.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx.client.client import NEW, RENAME
from ftx.server.protocol import ServerPolicy
from ftx.testing import MemoryStorage, connectInMemory


class WireTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.storage = MemoryStorage({b"a.txt": b"old", b"photos/x.jpg": b"x"})
        self.connection = connectInMemory(self.storage)
        self.client = self.connection.client
        folder = tempfile.mkdtemp(prefix="ftx-wire-")
        self.addCleanup(shutil.rmtree, folder, True)
        self.path = os.path.join(folder, "a.txt")
        with open(self.path, "wb") as f:
            f.write(b"new content")

    def result(self, d):
        self.connection.flush()
        return self.successResultOf(d)

    def failure(self, d, *kinds):
        self.connection.flush()
        return self.failureResultOf(d, *kinds)

    def test_featuresAdvertised(self) -> None:
        for feature in ("put-mode", "mkdir", "rmtree"):
            self.assertIn(feature, self.client.protocol.features)

    def test_putNewRefusesBeforeTheBody(self) -> None:
        failure = self.failure(self.client.put(self.path, "a.txt", mode=NEW), errors.AlreadyExists)
        self.assertIn("a.txt already exists on the server", str(failure.value))
        self.assertEqual(self.storage.getContent(b"a.txt"), b"old")
        self.assertIsNone(self.storage.getPartial(b"a.txt"))

    def test_putRenameSaysWhichName(self) -> None:
        transfer = self.result(self.client.put(self.path, "a.txt", mode=RENAME))
        self.assertEqual(transfer.name, "a (1).txt")
        self.assertEqual(self.storage.getContent(b"a (1).txt"), b"new content")
        self.assertEqual(self.storage.getContent(b"a.txt"), b"old")

    def test_putReplaceByDefault(self) -> None:
        self.assertEqual(self.result(self.client.put(self.path, "a.txt")).name, "a.txt")
        self.assertEqual(self.storage.getContent(b"a.txt"), b"new content")

    def test_unknownModeIsABadRequest(self) -> None:
        failure = self.failure(self.client.put(self.path, "a.txt", mode="clobber"), errors.BadRequest)
        self.assertIn("unknown put mode", str(failure.value))
        # The connection goes on.
        self.assertEqual(len(self.result(self.client.list())), 2)

    def test_mkdirAndRmtree(self) -> None:
        self.assertIsNone(self.result(self.client.mkdir("new/deep")))
        self.assertIn(b"deep", self.storage.folderEntries(b"new"))
        self.failure(self.client.mkdir("a.txt"), errors.AlreadyExists)
        self.assertEqual(self.result(self.client.rmtree("photos")), 1)
        self.assertEqual([e.name for e in self.result(self.client.list())], ["a.txt"])
        failure = self.failure(self.client.rmtree("photos"), errors.NotFound)
        self.assertEqual(str(failure.value), "no such folder: photos")
        self.failure(self.client.rmtree("../x"), errors.PermissionDenied)

    def test_sgetToAStream(self) -> None:
        stream = io.BytesIO()
        transfer = self.result(self.client.sget("photos/x.jpg", "stdout", stream=stream))
        self.assertEqual(stream.getvalue(), b"x")
        self.assertEqual((transfer.name, transfer.path, transfer.size), ("photos/x.jpg", "stdout", 1))
        self.assertFalse(os.path.exists("stdout"))

    def test_dfHasUsed(self) -> None:
        space = self.result(self.client.df())
        self.assertEqual((space.total, space.used), (1 << 30, 4))
        self.assertEqual(space.free, space.total - 4)


class ReadOnlyTests(SynchronousTestCase):
    def test_folderCommandsRefused(self) -> None:
        storage = MemoryStorage({b"photos/x.jpg": b"x"})
        connection = connectInMemory(storage, policy=ServerPolicy(readOnly=True))
        for d in (connection.client.mkdir("new"), connection.client.rmtree("photos")):
            connection.flush()
            self.failureResultOf(d, errors.PermissionDenied)
        self.assertEqual(storage.getContent(b"photos/x.jpg"), b"x")
