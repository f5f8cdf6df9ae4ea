"""
Limits at the protocol level: connection counts, idle timeout, quota,
a full disk, the partial-upload sweep, and the twistd options.
"""

import errno
import hashlib
import os
import time

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ftx.server import tap
from ftx.server.filesystem import FilesystemStorage
from ftx.server.limits import Quota
from ftx.server.partial import Upload
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from ftx.server.tap import parseDuration
from tests.reliability import TempDirs, leftovers
from tests.support import InlineReactor


def _sha1(data):
    return hashlib.sha1(data).hexdigest().encode()


class _Server:
    def makeServer(self, policy=None, quota=None):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        with open(os.path.join(self.root, "a.txt"), "wb") as f:
            f.write(b"x" * 100)
        self.big = os.urandom(3 << 20)
        with open(os.path.join(self.root, "big.bin"), "wb") as f:
            f.write(self.big)
        self.reactor = InlineReactor()
        self.storage = FilesystemStorage(self.root)
        if quota is not None:
            self.storage.quota = Quota(quota, perFile=0, perFolder=0)  # bytes only: the charges are tested in test_storage
        self.factory = FtxServerFactory(self.storage, self.reactor, policy)

    def connect(self, host="127.0.0.1"):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def send(self, proto, transport, data, pumps=1000):
        transport.clear()
        proto.dataReceived(data)
        for _ in range(pumps):
            if transport.producer is None or transport.streaming:
                break
            transport.producer.resumeProducing()
        return transport.value()


class ConnectionLimitTests(TempDirs, _Server, SynchronousTestCase):
    def test_maxConnections(self):
        self.makeServer(ServerPolicy(maxConnections=2))
        first, t1 = self.connect()
        self.connect()
        third, t3 = self.connect()
        self.assertTrue(t3.value().startswith(b"503 unavailable too many connections"))
        self.assertTrue(t3.disconnecting)
        # What a refused client sends is ignored.
        self.assertEqual(self.send(third, t3, b"list\r\n"), b"")
        third.connectionLost(None)
        first.connectionLost(None)
        _, t4 = self.connect()
        self.assertTrue(t4.value().startswith(b"220 "))

    def test_maxPerAddress(self):
        self.makeServer(ServerPolicy(maxPerAddress=1))
        _, t1 = self.connect("127.0.0.2")
        _, t2 = self.connect("127.0.0.2")
        _, t3 = self.connect("127.0.0.3")
        self.assertTrue(t1.value().startswith(b"220 "))
        self.assertTrue(t2.value().startswith(b"503 unavailable too many connections from 127.0.0.2"))
        self.assertTrue(t3.value().startswith(b"220 "))


class IdleTimeoutTests(TempDirs, _Server, SynchronousTestCase):
    def setUp(self):
        self.makeServer(ServerPolicy(idleTimeout=10))

    def test_idleConnectionClosed(self):
        proto, transport = self.connect()
        self.reactor.advance(9)
        self.send(proto, transport, b"noop\r\n")
        self.reactor.advance(9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(1.5)
        self.assertTrue(transport.disconnecting)
        self.assertIn(b"\r\n503 unavailable idle", transport.value())
        proto.connectionLost(None)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_movingTransferIsNotIdle(self):
        """
        A download that keeps moving outlives the timeout; one the client
        stops reading is cut after it.
        """
        proto, transport = self.connect()
        self.send(proto, transport, b"sget big.bin\r\n", pumps=0)
        producer = transport.producer
        for _ in range(6):
            self.reactor.advance(8)
            producer.resumeProducing()
        self.assertFalse(transport.disconnecting)
        # The client stops reading: nothing moves for the timeout.
        self.reactor.advance(10.5)
        self.assertTrue(transport.disconnecting)
        proto.connectionLost(None)

    def test_stalledReaderHoldsBoundedData(self):
        """
        A pull producer sends one chunk each time the transport asks: a
        client that never reads gets no more than one chunk queued.
        """
        proto, transport = self.connect()
        transport.clear()
        proto.dataReceived(b"sget big.bin\r\n")
        self.assertLessEqual(len(transport.value()), 300 * 1024)
        self.assertLess(len(transport.value()), len(self.big))
        proto.connectionLost(None)


class QuotaTests(TempDirs, _Server, SynchronousTestCase):
    def setUp(self):
        self.makeServer(quota=(3 << 20) + 1100)
        self.storage.sweep(3600, time.time())
        self.assertEqual(self.storage.quota.used, (3 << 20) + 100)

    def test_refusedBeforeBodyNothingWritten(self):
        proto, transport = self.connect()
        out = self.send(proto, transport, b"put new/dir/x.bin 2000\r\n")
        self.assertTrue(out.startswith(b"507 no-space quota exceeded"), out)
        self.assertEqual(sorted(os.listdir(self.root)), ["a.txt", "big.bin"])
        self.assertTrue(self.send(proto, transport, b"noop\r\n").startswith(b"200"))

    def test_usageFollowsPutAndDelete(self):
        proto, transport = self.connect()
        body = b"y" * 600
        self.assertEqual(self.send(proto, transport, b"put y.bin 600\r\n"), b"350 0\r\n")
        self.assertTrue(self.send(proto, transport, body + b"sha1 " + _sha1(body) + b"\r\n").startswith(b"226 "))
        quota = self.storage.quota
        self.assertEqual((quota.used, quota.reserved), ((3 << 20) + 700, 0))
        self.assertTrue(self.send(proto, transport, b"put z.bin 600\r\n").startswith(b"507 "))
        # Replacing a file frees the old size once the new one is in place.
        self.assertEqual(self.send(proto, transport, b"put y.bin 300\r\n"), b"350 0\r\n")
        self.send(proto, transport, body[:300] + b"sha1 " + _sha1(body[:300]) + b"\r\n")
        self.assertEqual(quota.used, (3 << 20) + 400)
        self.assertTrue(self.send(proto, transport, b"delete big.bin\r\n").startswith(b"200 "))
        self.assertEqual(quota.used, 400)
        total, free = map(int, self.send(proto, transport, b"df\r\n").split()[1:3])
        self.assertEqual(free, quota.limit - 400)

    def test_concurrentUploadsReserve(self):
        """
        Two uploads that each fit alone but not together: the second is
        refused at once, not after both bodies overshoot.
        """
        p1, t1 = self.connect()
        p2, t2 = self.connect()
        self.assertEqual(self.send(p1, t1, b"put one.bin 700\r\n"), b"350 0\r\n")
        self.assertTrue(self.send(p2, t2, b"put two.bin 700\r\n").startswith(b"507 "))
        p1.connectionLost(None)
        self.assertEqual(self.storage.quota.reserved, 0)

    def test_putWaitsForTheCount(self):
        self.storage.quota = Quota(10)
        proto, transport = self.connect()
        self.assertEqual(self.send(proto, transport, b"put w.bin 5\r\n"), b"")
        self.storage.quota.recount(8)
        self.assertTrue(transport.value().startswith(b"507 "))


class FullDiskTests(TempDirs, _Server, SynchronousTestCase):
    def test_enospcGivesNoSpaceAndRemovesTheTemporaryFile(self):
        self.makeServer()
        written = []

        def fullDisk(upload, data):
            if sum(written) + len(data) > 1000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written.append(len(data))
            upload._file.write(data)

        self.patch(Upload, "_writeBytes", fullDisk)
        proto, transport = self.connect()
        body = os.urandom(5000)
        with capturedLogs() as events:
            self.assertEqual(self.send(proto, transport, b"put full.bin 5000\r\n"), b"350 0\r\n")
            self.send(proto, transport, body[:800])
            out = self.send(proto, transport, body[800:] + b"sha1 " + _sha1(body) + b"\r\n")
        self.assertTrue(out.startswith(b"507 no-space"), out)
        self.assertEqual(leftovers(self.root), [])
        self.assertFalse(os.path.exists(os.path.join(self.root, "full.bin")))
        self.assertEqual([e for e in events if "log_failure" in e], [])
        self.assertTrue(self.send(proto, transport, b"noop\r\n").startswith(b"200"))

    def test_shortWritesAreCompleted(self):
        """
        A raw write that stores fewer bytes than asked is continued, so the
        stored file is never missing bytes its digest covers.
        """
        self.makeServer()

        class Stingy:
            def __init__(self, f):
                self.f = f

            def write(self, data):
                return self.f.write(bytes(data[:7]))

            def __getattr__(self, name):
                return getattr(self.f, name)

        original = Upload.__init__

        def init(upload, *args):
            original(upload, *args)
            upload._file = Stingy(upload._file)

        self.patch(Upload, "__init__", init)
        proto, transport = self.connect()
        body = os.urandom(100)
        self.send(proto, transport, b"put s.bin 100\r\n")
        self.assertTrue(self.send(proto, transport, body + b"sha1 " + _sha1(body) + b"\r\n").startswith(b"226 "))
        with open(os.path.join(self.root, "s.bin"), "rb") as f:
            self.assertEqual(f.read(), body)


class SweepTests(TempDirs, _Server, SynchronousTestCase):
    def test_expiresOnlyAbandonedOldPartials(self):
        self.makeServer(quota=10 << 20)
        os.makedirs(os.path.join(self.root, "d"))
        old = os.path.join(self.root, "d", ".old.bin.ftx-partial")
        fresh = os.path.join(self.root, ".fresh.bin.ftx-partial")
        for path in (old, fresh):
            with open(path, "wb") as f:
                f.write(b"p" * 10)
        past = time.time() - 7200
        os.utime(old, (past, past))
        # An old partial that an upload holds right now stays.
        held = os.path.join(self.root, ".held.bin.ftx-partial")
        with open(held, "wb") as f:
            f.write(b"h" * 10)
        upload = self.storage.beginUpload(b"held.bin", 20, 10, _sha1(b"h" * 10).decode())
        os.utime(held, (past, past))
        result = self.storage.sweep(3600, time.time())
        self.assertEqual(result.expired, 1)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(fresh) and os.path.exists(held))
        self.assertEqual(self.storage.quota.used, 100 + (3 << 20) + 10 + 10)
        upload.abort(keep=False)


class OptionTests(TempDirs, SynchronousTestCase):
    def test_helpListsEveryLimit(self):
        text = str(tap.Options())
        for option in ("--max-connections", "--max-per-address", "--idle-timeout", "--max-upload-size",
                       "--quota", "--read-only", "--partial-ttl", "--shutdown-grace"):
            self.assertIn(option, text)

    def test_parsing(self):
        options = tap.Options()
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        options.parseOptions(["--root", root, "--quota", "2G", "--idle-timeout", "5m", "--partial-ttl", "0",
                              "--max-connections", "10", "--max-per-address", "3", "--shutdown-grace", "2.5"])
        self.assertEqual((options["quota"], options["idle-timeout"], options["partial-ttl"]), (2 << 30, 300, 0))
        self.assertEqual((options["max-connections"], options["max-per-address"], options["shutdown-grace"]), (10, 3, 2.5))
        factory = tap.makeFactory(options, InlineReactor())
        self.assertEqual(factory.storage.quota.limit, 2 << 30)
        self.assertEqual(factory.admission.maxConnections, 10)
        for bad in (["--max-connections", "-1"], ["--idle-timeout", "soon"], ["--quota", "lots"]):
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--root", root] + bad)

    def test_durations(self):
        self.assertEqual([parseDuration(t) for t in ("90", "90s", "15m", "24h", "7d")], [90, 90, 900, 86400, 604800])
