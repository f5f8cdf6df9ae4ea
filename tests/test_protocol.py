"""
Server and client protocols against each other in memory (iosim), and the
server alone against a StringTransport: fast, deterministic, and runnable by
both pytest and trial. Every test runs over both storage backends, the
filesystem and L{ftx.testing.MemoryStorage}: the same replies from both are
the proof that L{ftx.server.storage.IStorage} is the whole contract.
"""

import hashlib
import os
import shutil
import tempfile

import xxhash
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.filepath import FilePath
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx.client.api import FtxClient, FtxClientProtocol
from ftx.server import protocol as server
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from tests.storages import InMemory, OnFilesystem
from tests.support import InlineReactor

AWKWARD = b"line one\r\nline two\n\x00\x00\r\r\n" * 500


def _pumpUntil(pump, deferred, limit=100000):
    """
    Move bytes both ways until C{deferred} has fired (bounded).
    """
    done = []

    def fired(result):
        done.append(True)
        return result

    deferred.addBoth(fired)
    for _ in range(limit):
        if done:
            break
        pump.pump()
    return deferred


#: What the server holds at the start of every test.
SERVED = {
    b"a.txt": b"hello",
    b"awkward.bin": AWKWARD,
    b"empty": b"",
    "sub dir/été/naïve file.txt".encode(): "ünïcödé\n".encode(),
}


class _Setup:
    """
    A server over the storage that C{makeStorage} (L{OnFilesystem} or
    L{InMemory}) makes, and the client's own folder on disk.
    """

    def makeServed(self):
        storage = self.makeStorage(SERVED)
        # A fresh folder outside the working tree (trial's mktemp would put
        # it in the current directory under pytest), removed afterwards.
        base = FilePath(tempfile.mkdtemp(prefix="ftx-test-"))
        self.addCleanup(shutil.rmtree, base.path, True)
        local = base.child("local")
        local.makedirs()
        return storage, local

    def stored(self, name):
        """
        The bytes the server holds under C{name} (text), or L{None}.
        """
        return self.storedContent(name.encode())

    def connect(self, policy=None, checksum=None):
        storage, self.local = self.makeServed()
        reactor = InlineReactor()
        factory = FtxServerFactory(storage, reactor, policy)

        def clientProtocol():
            protocol = FtxClientProtocol()
            protocol.preferredChecksum = checksum
            return protocol

        client, server, pump = iosim.connectedServerAndClient(lambda: factory.buildProtocol(None), clientProtocol)
        pump.flush()
        self.pump = pump
        self.server = server
        return FtxClient(client, reactor)

    def result(self, deferred):
        _pumpUntil(self.pump, deferred)
        return self.successResultOf(deferred)

    def fails(self, deferred, cls):
        _pumpUntil(self.pump, deferred)
        return self.failureResultOf(deferred, cls)


class _ClientServerTests(_Setup):
    def test_greetingFeatures(self):
        client = self.connect()
        for feature in ("list", "sget", "mget", "hash", "cget", "put", "resume", "delete", "df"):
            self.assertIn(feature, client.protocol.features)
        self.assertEqual(client.protocol.version, "ftx/1")

    def test_checksumAgreedAfterGreeting(self):
        """
        A client that has XXH3 asks for it before anything else; both ends
        then use it. Asked for SHA-1, or facing a server without XXH3, the
        connection keeps SHA-1 and the SHA-1 trailers still check.
        """
        client = self.connect()
        self.assertIn("xxh128", client.protocol.features)
        self.assertEqual((client.protocol.checksum, self.server.checksum), ("xxh128", "xxh128"))

        client = self.connect(checksum="sha1")
        self.assertEqual((client.protocol.checksum, self.server.checksum), ("sha1", "sha1"))
        transfer = self.result(client.sget("awkward.bin", self.local.child("a.bin").path))
        self.assertEqual((transfer.checksum, transfer.sha1), ("sha1", hashlib.sha1(AWKWARD).hexdigest()))
        source = self.local.child("up.bin")
        source.setContent(AWKWARD)
        transfer = self.result(client.put(source.path, "up.bin"))
        self.assertEqual(transfer.sha1, hashlib.sha1(AWKWARD).hexdigest())

    def test_serverWithoutXxh128KeepsSha1(self):
        self.patch(server, "CHECKSUM_FEATURES", ())
        client = self.connect()
        self.assertNotIn("xxh128", client.protocol.features)
        self.assertEqual(client.protocol.checksum, "sha1")
        transfer = self.result(client.sget("a.txt", self.local.child("a.txt").path))
        self.assertEqual(transfer.sha1, hashlib.sha1(b"hello").hexdigest())

    def test_list(self):
        client = self.connect()
        entries = self.result(client.list())
        self.assertEqual(
            [(e.name, e.size) for e in entries],
            [("a.txt", 5), ("awkward.bin", len(AWKWARD)), ("empty", 0), ("sub dir/été/naïve file.txt", 12)],
        )
        self.assertEqual([e.name for e in self.result(client.list("*.txt"))], ["a.txt"])
        self.assertEqual([e.name for e in self.result(client.list("sub dir/*/*"))], ["sub dir/été/naïve file.txt"])
        self.assertEqual([e.name for e in self.result(client.list("sub dir"))], ["sub dir/été/naïve file.txt"])
        self.assertEqual(self.result(client.list("nothing*")), [])

    def test_sgetBinarySafe(self):
        """
        CR, LF and NUL in a body do not disturb the framing, and the next
        command works after it.
        """
        client = self.connect()
        target = self.local.child("awkward.bin").path
        transfer = self.result(client.sget("awkward.bin", target))
        self.assertEqual(FilePath(target).getContent(), AWKWARD)
        self.assertEqual((transfer.checksum, transfer.digest), ("xxh128", xxhash.xxh3_128(AWKWARD).hexdigest()))
        self.assertIsNone(transfer.sha1)
        self.assertEqual(self.result(client.hash("a.txt")), hashlib.sha1(b"hello").hexdigest())

    def test_sgetEmptyAndUnicode(self):
        client = self.connect()
        self.result(client.sget("empty", self.local.child("e").path))
        self.assertEqual(self.local.child("e").getContent(), b"")
        self.result(client.sget("sub dir/été/naïve file.txt", self.local.child("u").path))
        self.assertEqual(self.local.child("u").getContent(), "ünïcödé\n".encode())

    def test_mget(self):
        client = self.connect()
        transfers = self.result(client.mget("*", self.local.path))
        self.assertEqual(sorted(t.name for t in transfers), ["a.txt", "awkward.bin", "empty"])
        self.assertEqual(self.local.child("awkward.bin").getContent(), AWKWARD)
        nested = self.result(client.mget("sub dir/*/*.txt", self.local.path))
        self.assertEqual(len(nested), 1)
        self.assertTrue(self.local.descendant(["sub dir", "été", "naïve file.txt"]).exists())

    def test_mgetNoMatch(self):
        client = self.connect()
        self.fails(client.mget("*.nothing", self.local.path), errors.NotFound)

    def test_hashPrefix(self):
        client = self.connect()
        self.assertEqual(self.result(client.hash("awkward.bin", 100)), hashlib.sha1(AWKWARD[:100]).hexdigest())
        self.assertEqual(self.result(client.hash("awkward.bin", 0)), hashlib.sha1(b"").hexdigest())
        self.fails(client.hash("awkward.bin", len(AWKWARD) + 1), errors.BadOffset)

    def test_cgetContinuesPartial(self):
        client = self.connect()
        target = self.local.child("awkward.bin")
        FilePath(target.path).sibling(".awkward.bin.ftx-partial").setContent(AWKWARD[:777])
        transfer = self.result(client.cget("awkward.bin", target.path))
        self.assertEqual(target.getContent(), AWKWARD)
        self.assertEqual(transfer.transferred, len(AWKWARD) - 777)

    def test_cgetShorterLocalFile(self):
        client = self.connect()
        target = self.local.child("awkward.bin")
        target.setContent(AWKWARD[:10])
        self.result(client.cget("awkward.bin", target.path))
        self.assertEqual(target.getContent(), AWKWARD)

    def test_cgetMismatchSendsNothing(self):
        """
        A partial copy that differs from the server's prefix is refused with
        an integrity error, and the local file is left as it was.
        """
        client = self.connect()
        target = self.local.child("awkward.bin")
        target.setContent(b"X" * 50)
        self.fails(client.cget("awkward.bin", target.path), errors.IntegrityError)
        self.assertEqual(target.getContent(), b"X" * 50)

    def test_put(self):
        client = self.connect()
        source = self.local.child("up.bin")
        source.setContent(AWKWARD)
        transfer = self.result(client.put(source.path, "new dir/up loaded.bin"))
        self.assertEqual((transfer.checksum, transfer.digest), ("xxh128", xxhash.xxh3_128(AWKWARD).hexdigest()))
        self.assertEqual(self.stored("new dir/up loaded.bin"), AWKWARD)
        self.assertEqual(self.folderEntries(b"new dir"), [b"up loaded.bin"])

    def test_putEmpty(self):
        client = self.connect()
        source = self.local.child("zero")
        source.setContent(b"")
        self.result(client.put(source.path))
        self.assertEqual(self.stored("zero"), b"")

    def test_putResume(self):
        """
        An upload the server holds part of continues from there.
        """
        client = self.connect()
        source = self.local.child("big.bin")
        source.setContent(AWKWARD)
        self.storePartial(b"big.bin", AWKWARD[:4000])
        self.assertEqual(self.result(client.partial("big.bin"))[0], 4000)
        transfer = self.result(client.put(source.path, resume=True))
        self.assertEqual(transfer.transferred, len(AWKWARD) - 4000)
        self.assertEqual(self.stored("big.bin"), AWKWARD)
        self.assertIsNone(self.partialContent(b"big.bin"))

    def test_deleteAndDf(self):
        client = self.connect()
        self.result(client.delete("a.txt"))
        self.assertIsNone(self.stored("a.txt"))
        self.fails(client.delete("a.txt"), errors.NotFound)
        space = self.result(client.df())
        self.assertGreater(space.total, 0)
        self.assertLessEqual(space.free, space.total)

    def test_errorsAreTyped(self):
        client = self.connect()
        self.fails(client.sget("missing", self.local.child("m").path), errors.NotFound)
        self.fails(client.sget("../outside", self.local.child("m").path), errors.PermissionDenied)
        self.fails(client.sget("sub dir", self.local.child("m").path), errors.Conflict)
        self.assertFalse(self.local.child("m").exists())
        self.assertEqual(os.listdir(self.local.path), [])

    def test_readOnly(self):
        client = self.connect(ServerPolicy(readOnly=True))
        source = self.local.child("x")
        source.setContent(b"x")
        self.fails(client.put(source.path), errors.PermissionDenied)
        self.fails(client.delete("a.txt"), errors.PermissionDenied)
        self.assertIsNotNone(self.stored("a.txt"))

    def test_maxUploadSize(self):
        client = self.connect(ServerPolicy(maxUploadSize=10))
        source = self.local.child("x")
        source.setContent(b"x" * 11)
        self.fails(client.put(source.path), errors.TooLarge)
        self.assertIsNone(self.stored("x"))

    def test_connectionLostFailsPending(self):
        """
        Requests waiting when the connection drops all fail with one
        ConnectionLost each.
        """
        client = self.connect()
        first = client.hash("a.txt")
        second = client.list()
        client.protocol.connectionLost(None)
        self.failureResultOf(first, errors.ConnectionLost)
        self.failureResultOf(second, errors.ConnectionLost)
        self.failureResultOf(client.df(), errors.ConnectionLost)


class _ServerLineTests(_Setup):
    """
    The server alone, fed bytes by hand, as a client in another language
    would.
    """

    def setUp(self):
        storage, self.local = self.makeServed()
        factory = FtxServerFactory(storage, InlineReactor())
        self.proto = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def send(self, data):
        self.transport.clear()
        self.proto.dataReceived(data)
        # A pull producer (a body being sent) is asked for chunks until it
        # unregisters; the server's own streaming producer is left alone.
        for _ in range(10000):
            producer = self.transport.producer
            if producer is None or self.transport.streaming:
                break
            producer.resumeProducing()
        return self.transport.value()

    def test_greeting(self):
        self.assertTrue(self.transport.value().startswith(b"220 ftx/1 "))

    def test_sgetFraming(self):
        out = self.send(b"sget awkward.bin\r\n")
        header = b"150 awkward.bin %d 0\r\n" % len(AWKWARD)
        trailer = b"250 " + hashlib.sha1(AWKWARD).hexdigest().encode() + b"\r\n"
        self.assertEqual(out, header + AWKWARD + trailer)

    def test_putByHand(self):
        body = b"\r\n\x00data"
        digest = hashlib.sha1(body).hexdigest().encode()
        out = self.send(b"put x.bin %d\r\n" % len(body))
        self.assertEqual(out, b"350 0\r\n")
        # Body, trailer and the next command arrive in one segment.
        out = self.send(body + b"sha1 " + digest + b"\r\nhash x.bin\r\n")
        self.assertEqual(out, b"226 x.bin 7 " + digest + b"\r\n213 " + digest + b" 7\r\n")
        self.assertEqual(self.stored("x.bin"), body)

    def test_checksumByHand(self):
        """
        After C{checksum xxh128}, trailers both ways are XXH3-128; C{hash}
        and the resume prefixes stay SHA-1.
        """
        self.assertIn(b",xxh128", self.transport.value())
        self.assertEqual(self.send(b"checksum xxh128\r\n"), b"200 checksum xxh128\r\n")
        out = self.send(b"sget awkward.bin\r\n")
        self.assertTrue(out.endswith(b"250 " + xxhash.xxh3_128(AWKWARD).hexdigest().encode() + b"\r\n"), out[-60:])
        body = b"\r\n\x00data"
        digest = xxhash.xxh3_128(body).hexdigest().encode()
        self.assertEqual(self.send(b"put x.bin %d\r\n" % len(body)), b"350 0\r\n")
        out = self.send(body + b"xxh128 " + digest + b"\r\nhash x.bin\r\n")
        sha1 = hashlib.sha1(body).hexdigest().encode()
        self.assertEqual(out, b"226 x.bin 7 " + digest + b"\r\n213 " + sha1 + b" 7\r\n")
        # A SHA-1 trailer no longer fits this connection.
        self.send(b"put y.bin 3\r\n")
        out = self.send(b"abc" + b"sha1 " + hashlib.sha1(b"abc").hexdigest().encode() + b"\r\n")
        self.assertTrue(out.startswith(b"400 bad-request expected the trailer 'xxh128 DIGEST'"), out)
        self.assertIsNone(self.stored("y.bin"))
        # A wrong XXH3 digest is an integrity error, as with SHA-1.
        self.send(b"put z.bin 3\r\n")
        out = self.send(b"abc" + b"xxh128 " + b"0" * 32 + b"\r\n")
        self.assertTrue(out.startswith(b"422 integrity "), out)
        self.assertIsNone(self.stored("z.bin"))

    def test_unknownChecksumRefused(self):
        out = self.send(b"checksum md5\r\n")
        self.assertTrue(out.startswith(b"400 bad-request unknown checksum 'md5'"), out)
        self.assertEqual(self.proto.checksum, "sha1")
        self.assertEqual(self.send(b"checksum\r\n")[:4], b"400 ")
        trailer = b"250 " + hashlib.sha1(AWKWARD).hexdigest().encode() + b"\r\n"
        self.assertTrue(self.send(b"sget awkward.bin\r\n").endswith(trailer))

    def test_putBadDigestKeepsNothing(self):
        self.send(b"put y.bin 3\r\n")
        out = self.send(b"abc" + b"sha1 " + b"0" * 40 + b"\r\n")
        self.assertTrue(out.startswith(b"422 integrity "), out)
        self.assertIsNone(self.stored("y.bin"))
        self.assertEqual(self.folderEntries(), [b"a.txt", b"awkward.bin", b"empty", b"sub dir"])

    def test_badLinesGetErrorsAndConnectionGoesOn(self):
        for line, code in [
            (b"frobnicate", b"400"), (b"sget", b"400"), (b"hash a.txt -1", b"400"),
            (b"hash a.txt x", b"400"), (b"put a 1 2", b"400"), (b"sget \xff\xfe", b"400"),
            (b"cget a.txt 0 nothex", b"400"), (b"sget /etc/passwd", b"403"), (b"sget a%2", b"400"),
            (b"cget a.txt 99 " + b"0" * 40, b"416"), (b"delete sub%20dir", b"409"),
        ]:
            with capturedLogs() as events:
                out = self.send(line + b"\r\n")
            self.assertTrue(out.startswith(code + b" "), (line, out))
            self.assertEqual([e for e in events if e.get("log_level") == LogLevel.critical or "log_failure" in e], [])
        self.assertTrue(self.send(b"df\r\n").startswith(b"212 "))

    def test_overlongLineCloses(self):
        out = self.send(b"x" * 20000)
        self.assertTrue(out.startswith(b"400 bad-request"))
        self.assertTrue(self.transport.disconnecting)

    def test_quit(self):
        self.assertEqual(self.send(b"quit\r\n"), b"221 bye\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_logsCommands(self):
        with capturedLogs() as events:
            self.send(b"sget a.txt\r\n")
        texts = [e["log_format"] for e in events]
        self.assertTrue(any("{verb} {path} {size} bytes" in t for t in texts), texts)
        event = [e for e in events if e.get("verb") == "sget"][0]
        self.assertEqual((event["path"], event["size"], event["outcome"]), ("a.txt", 5, "ok"))
        self.assertIn("duration", event)


class ClientServerOnFilesystemTests(OnFilesystem, _ClientServerTests, SynchronousTestCase):
    pass


class ClientServerInMemoryTests(InMemory, _ClientServerTests, SynchronousTestCase):
    pass


class ServerLineOnFilesystemTests(OnFilesystem, _ServerLineTests, SynchronousTestCase):
    pass


class ServerLineInMemoryTests(InMemory, _ServerLineTests, SynchronousTestCase):
    pass
