"""
The C{mtime} feature: an upload keeps the client's modification time, so
that a later listing says by size and time alone whether the local file
is the same (L{ftx.cli.quickcheck}).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from ftx.client.client import NEW, RENAME
from ftx.server.protocol import FtxServerFactory, FtxServerProtocol, ServerPolicy
from ftx.testing import InlineReactor, MemoryStorage, connectInMemory
from tests.storages import InMemory, OnFilesystem, OnS3

#: A time no upload made now could have by chance.
OLD = 1_000_000_000


class _PutMtimeTests:
    def setUp(self) -> None:
        self.storage = self.makeStorage({b"taken.txt": b"already here"})
        self.connection = connectInMemory(self.storage)
        self.client = self.connection.client
        self.local = tempfile.mkdtemp(prefix="ftx-putmtime-")
        self.addCleanup(shutil.rmtree, self.local, True)
        self.path = os.path.join(self.local, "report.txt")
        with open(self.path, "wb") as f:
            f.write(os.urandom(200_000))

    def _result(self, d):
        self.connection.flush()
        return self.successResultOf(d)

    def _listed(self, name: str):
        return {e.name: e for e in self._result(self.client.list())}[name]

    def test_offeredInTheGreeting(self) -> None:
        self.assertIn("mtime", self.client.protocol.features)

    def test_putKeepsTheGivenTime(self) -> None:
        self._result(self.client.put(self.path, "report.txt", mtime=OLD))
        entry = self._listed("report.txt")
        self.assertEqual((entry.size, entry.mtime), (200_000, OLD))
        with open(self.path, "rb") as f:
            self.assertEqual(self.storedContent(b"report.txt"), f.read())

    def test_withoutTimeTheTimeOfUpload(self) -> None:
        self._result(self.client.put(self.path, "report.txt"))
        self.assertNotEqual(self._listed("report.txt").mtime, OLD)
        self.assertGreater(self._listed("report.txt").mtime, OLD)

    def test_renamedUploadKeepsTheTime(self) -> None:
        transfer = self._result(self.client.put(self.path, "taken.txt", mode=RENAME, mtime=OLD))
        self.assertEqual(transfer.name, "taken (1).txt")
        self.assertEqual(self._listed("taken (1).txt").mtime, OLD)

    def test_replacingKeepsTheTime(self) -> None:
        self._result(self.client.put(self.path, "taken.txt", mtime=OLD + 7))
        self.assertEqual(self._listed("taken.txt").mtime, OLD + 7)

    def test_newModeKeepsTheTime(self) -> None:
        self._result(self.client.put(self.path, "fresh.txt", mode=NEW, mtime=OLD + 9))
        self.assertEqual(self._listed("fresh.txt").mtime, OLD + 9)

    def test_resumedUploadKeepsTheTime(self) -> None:
        with open(self.path, "rb") as f:
            self.storePartial(b"report.txt", f.read(50_000))
        transfer = self._result(self.client.put(self.path, "report.txt", resume=True, mtime=OLD + 3))
        self.assertEqual(transfer.transferred, 150_000)
        self.assertEqual(self._listed("report.txt").mtime, OLD + 3)

    def test_serverWithoutTheFeature(self) -> None:
        """
        A server that does not offer C{mtime} gets the trailer it knows:
        the upload succeeds with the time of upload.
        """
        features = FtxServerProtocol.features
        self.patch(FtxServerProtocol, "features", lambda protocol: tuple(f for f in features(protocol) if f != "mtime"))
        connection = connectInMemory(self.storage)
        self.assertNotIn("mtime", connection.client.protocol.features)
        d = connection.client.put(self.path, "report.txt", mtime=OLD)
        connection.flush()
        self.successResultOf(d)
        d = connection.client.list()
        connection.flush()
        listed = {e.name: e for e in self.successResultOf(d)}
        self.assertNotEqual(listed["report.txt"].mtime, OLD)


class PutMtimeOnFilesystemTests(OnFilesystem, _PutMtimeTests, SynchronousTestCase):
    def test_theFileOnDiskHasTheTime(self) -> None:
        self._result(self.client.put(self.path, "sub/report.txt", mtime=OLD))
        self.assertEqual(os.stat(os.path.join(self.storageRoot, "sub", "report.txt")).st_mtime, OLD)


class PutMtimeInMemoryTests(InMemory, _PutMtimeTests, SynchronousTestCase):
    pass


class PutMtimeOnS3Tests(OnS3, _PutMtimeTests, SynchronousTestCase):
    def test_composedObjectKeepsTheTime(self) -> None:
        """
        A file of more than one chunk is composed by a multipart upload,
        whose answer gives the ETag the listing is matched with.
        """
        from ftx.server.s3.partials import MIN_CHUNK

        with open(self.path, "wb") as f:
            f.write(os.urandom(MIN_CHUNK + 1000))
        self._result(self.client.put(self.path, "big.bin", mtime=OLD + 5))
        entry = self._listed("big.bin")
        self.assertEqual((entry.size, entry.mtime), (MIN_CHUNK + 1000, OLD + 5))

    def test_anotherFrontEndListsItOnceRead(self) -> None:
        """
        A listing carries no object metadata: another front end lists the
        upload's own time once it has opened the file (else LastModified).
        """
        from ftx.server.s3 import S3Storage

        self._result(self.client.put(self.path, "report.txt", mtime=OLD))
        other = S3Storage(self.s3, self.s3Prefix)
        self.assertNotEqual({e.name: e.mtime for e in other.listFiles()}[b"report.txt"], OLD)
        other.openForRead(b"report.txt")[0].close()
        self.assertEqual({e.name: e.mtime for e in other.listFiles()}[b"report.txt"], OLD)


class TrailerTests(SynchronousTestCase):
    """
    The trailer's third field as the server reads it, fed by hand.
    """

    def setUp(self) -> None:
        self.storage = MemoryStorage()
        self.proto = FtxServerFactory(self.storage, InlineReactor()).buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        self.transport.clear()
        self.proto.dataReceived(data)
        return self.transport.value()

    def test_timeInTheTrailer(self) -> None:
        self.assertEqual(self.send(b"put a.txt 3\r\n"), b"350 0\r\n")
        out = self.send(b"abcsha1 " + hashlib.sha1(b"abc").hexdigest().encode() + b" 1234567890\r\n")
        self.assertTrue(out.startswith(b"226 a.txt 3 "), out)
        [entry] = self.storage.listFiles()
        self.assertEqual(entry.mtime, 1234567890)

    def test_readOnlyServerDoesNotOfferIt(self) -> None:
        connection = connectInMemory(policy=ServerPolicy(readOnly=True))
        self.assertNotIn("mtime", connection.client.protocol.features)

    def test_badTimeRefused(self) -> None:
        for field in (b"-5", b"1.5", b"x", b"9" * 40):
            self.assertEqual(self.send(b"put a.txt 3\r\n"), b"350 0\r\n")
            out = self.send(b"abcsha1 " + hashlib.sha1(b"abc").hexdigest().encode() + b" " + field + b"\r\n")
            self.assertTrue(out.startswith(b"400 "), (field, out))
            self.assertEqual(self.storage.listFiles(), [])
        # The connection goes on.
        self.assertTrue(self.send(b"noop\r\n").startswith(b"200 "))


class PipelinedHashesTests(SynchronousTestCase):
    """
    L{FtxClient.hashes}: many C{hash} commands on the wire at once, the
    answers in order, a missing file answered in its place.
    """

    def test_manyInOrder(self) -> None:
        from ftx.errors import NotFound

        files = {b"f%03d" % i: b"x" * i for i in range(300)}
        connection = connectInMemory(MemoryStorage(files))
        names = ["f%03d" % i for i in range(300)]
        names.insert(150, "missing")
        d = connection.client.hashes(names)
        connection.flush()
        results = self.successResultOf(d)
        self.assertEqual(len(results), 301)
        self.assertIsInstance(results[150], NotFound)
        del results[150]
        self.assertEqual(results, [hashlib.sha1(b"x" * i).hexdigest() for i in range(300)])
        # The connection goes on.
        d = connection.client.hash("f001")
        connection.flush()
        self.assertEqual(self.successResultOf(d), hashlib.sha1(b"x").hexdigest())

    def test_none(self) -> None:
        connection = connectInMemory()
        d = connection.client.hashes([])
        connection.flush()
        self.assertEqual(self.successResultOf(d), [])

    def test_pipelined(self) -> None:
        """
        The commands go out before their answers come back: with the
        server's replies held, a window of them is already sent.
        """
        from ftx.client.hashes import HashesRequest

        sent = []
        connection = connectInMemory(MemoryStorage({b"a": b"a"}))
        protocol = connection.client.protocol
        self.patch(protocol, "sendLine", lambda line: sent.append(line))
        connection.client.hashes(["a"] * 500)
        self.assertEqual(len(sent), 500)
        # Long names: as many as fit in the window's bytes are sent ahead.
        sent = []
        connection = connectInMemory(MemoryStorage({b"a": b"a"}))
        self.patch(connection.client.protocol, "sendLine", lambda line: sent.append(line))
        connection.client.hashes(["n" * 1000] * 500)
        self.assertEqual(len(sent), HashesRequest.WINDOW_BYTES // len(sent[0]))
