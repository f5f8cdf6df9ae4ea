"""
The server connection as parts: the read gate and its reasons, the limits
part fed by hand through a stand-in connection, and the protocol with
downloads, uploads and limits composed, driven over a C{StringTransport}.
"""

import hashlib
import os

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ftx._io import background
from ftx.server.connection import IConnection
from ftx.server.filesystem import FilesystemStorage
from ftx.server.limits import LINE_PIECE, MAX_BUFFERED_INPUT, ConnectionLimits
from ftx.server.protocol import FtxServerFactory, FtxServerProtocol
from ftx.server.readgate import CLIENT_BEHIND, COMMAND, DISK_BEHIND, ReadGate
from ftx.server.storage import IStorage, StoredFile
from tests.reliability import TempDirs
from tests.support import InlineReactor


class ReadGateTests(SynchronousTestCase):
    def setUp(self):
        self.calls = []
        self.gate = ReadGate(lambda: self.calls.append("stop"), lambda: self.calls.append("start"))

    def test_oneReason(self):
        self.gate.pause(COMMAND)
        self.assertEqual((self.calls, self.gate.reasons), (["stop"], {COMMAND}))
        self.assertTrue(self.gate.pausedFor(COMMAND))
        self.gate.resume(COMMAND)
        self.assertEqual((self.calls, self.gate.reasons), (["stop", "start"], frozenset()))

    def test_readsOnlyOnceEveryReasonIsLifted(self):
        self.gate.pause(COMMAND)
        self.gate.pause(DISK_BEHIND)
        self.gate.pause(CLIENT_BEHIND)
        self.gate.resume(DISK_BEHIND)
        self.gate.resume(COMMAND)
        self.assertNotIn("start", self.calls)
        self.assertEqual(self.gate.reasons, {CLIENT_BEHIND})
        self.gate.resume(CLIENT_BEHIND)
        self.assertEqual(self.calls[-1], "start")

    def test_liftingAReasonNotInForce(self):
        """
        A resume for a reason that is not in force reads again only if no
        other reason holds.
        """
        self.gate.pause(COMMAND)
        self.gate.resume(DISK_BEHIND)
        self.assertEqual(self.calls, ["stop"])
        self.gate.resume(COMMAND)
        self.gate.resume(DISK_BEHIND)
        self.assertEqual(self.calls, ["stop", "start", "start"])


@implementer(IConnection)
class _StandIn:
    """
    Just enough of a connection for a part alone: records what it parses.
    """

    log = Logger()
    peer = "127.0.0.1:1"
    disconnected = False
    checksum = "sha1"
    storage = policy = gate = rate = None
    paused = False
    line_mode = 1
    delimiter = b"\r\n"

    def __init__(self):
        self.transport = StringTransport()
        self.reactor = Clock()
        self.parsed = []
        self.resets = 0

    def parse(self, data):
        self.parsed.append(data)

    def resetTimeout(self):
        self.resets += 1

    def inputHeld(self):
        return 0

    def reply(self, line):
        self.transport.write(line + self.delimiter)

    def permit(self, action, name):
        pass

    def threaded(self, f, *args):
        raise AssertionError("not used by the limits part")

    hashed = threaded

    def logged(self, verb, name, size, started, outcome="ok"):
        pass

    def setRawMode(self):
        self.line_mode = 0

    def setLineMode(self, extra=b""):
        self.line_mode = 1


class ConnectionLimitsTests(SynchronousTestCase):
    def setUp(self):
        self.connection = _StandIn()
        verifyObject(IConnection, self.connection)
        self.limits = ConnectionLimits(self.connection, ReadGate(lambda: None, lambda: None))

    def test_linesGoInPieces(self):
        self.limits.received(b"x" * (2 * LINE_PIECE + 10))
        self.assertEqual([len(p) for p in self.connection.parsed], [0, LINE_PIECE, LINE_PIECE, 10])
        self.assertEqual((self.limits.held, self.connection.resets), (0, 1))

    def test_bodyGoesWhole(self):
        self.connection.line_mode = 0
        self.limits.received(b"x" * (3 * LINE_PIECE))
        self.assertEqual([len(p) for p in self.connection.parsed], [0, 3 * LINE_PIECE])

    def test_heldWhilePausedThenCut(self):
        self.connection.paused = True
        self.limits.received(b"x" * 1000)
        self.assertEqual(self.connection.parsed, [b""])
        self.assertEqual(self.limits.held, 1000)
        self.limits.received(b"y" * MAX_BUFFERED_INPUT)
        self.assertTrue(self.connection.transport.disconnected)
        self.assertEqual(self.limits.held, 0)

    def test_refusedInputIgnored(self):
        self.limits.refuse("too many connections (1); try again later")
        self.assertEqual(self.connection.transport.value(), b"503 unavailable too many connections (1); try again later\r\n")
        self.limits.received(b"list\r\n")
        self.assertEqual(self.connection.parsed, [])
        # Cut if the client does not read the refusal.
        self.assertFalse(self.connection.transport.disconnected)
        self.connection.reactor.advance(5)
        self.assertTrue(self.connection.transport.disconnected)

    def test_shutdownWaitsForTheCommand(self):
        self.limits.shutdownRequested(idle=False)
        self.assertTrue(self.limits.closing)
        self.assertEqual(self.connection.transport.value(), b"")
        self.limits.sayGoodbye()
        self.assertEqual(self.connection.transport.value(), b"503 unavailable the server is shutting down\r\n")
        self.limits.connectionLost()
        self.assertEqual(self.connection.reactor.getDelayedCalls(), [])


class _HeldPool:
    """
    A thread pool that runs nothing until told: the disk is as far behind
    as the test wants.
    """

    def __init__(self):
        self.held = []

    def callInThreadWithCallback(self, onResult, f, *args):
        self.held.append((onResult, f, args))

    def runAll(self):
        for _ in range(100):
            if not self.held:
                return
            work, self.held = self.held, []
            for onResult, f, args in work:
                onResult(True, f(*args))


class _SlowDiskReactor(InlineReactor):
    def __init__(self):
        InlineReactor.__init__(self)
        self.pool = _HeldPool()

    def getThreadPool(self):
        return self.pool


def _sha1(data):
    return hashlib.sha1(data).hexdigest().encode()


class ComposedProtocolTests(TempDirs, SynchronousTestCase):
    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        for i in range(3):
            with open(os.path.join(self.root, "s{}.txt".format(i)), "wb") as f:
                f.write(b"small %d" % i)

    def connect(self, reactor=None, storage=None):
        factory = FtxServerFactory(storage or FilesystemStorage(self.root), reactor or InlineReactor())
        proto = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        proto.makeConnection(transport)
        transport.clear()
        return proto, transport

    def test_providesIConnection(self):
        proto, _ = self.connect()
        verifyObject(IConnection, proto)

    def test_reactorIsRequired(self):
        self.assertRaises(TypeError, FtxServerFactory, FilesystemStorage(self.root))

    def test_commandPausesReadingUntilAnswered(self):
        proto, transport = self.connect()
        storage = proto.factory.storage
        seen = []

        def listFiles(mask):
            seen.append((proto.gate.reasons, transport.producerState))
            return []

        storage.listFiles = listFiles
        # Not the walk that makes the reply itself: listFiles, seen above.
        storage.listingReply = lambda mask, emit=None: None
        proto.dataReceived(b"list\r\nnoop\r\n")
        self.assertEqual(seen, [({COMMAND}, "paused")])
        self.assertEqual(transport.value(), b"211 0\r\n200 ok\r\n")
        self.assertEqual((proto.gate.reasons, transport.producerState), (frozenset(), "producing"))

    def test_clientBehindHoldsCommands(self):
        """
        While the client leaves replies unread, its next commands wait,
        even after the running command is answered.
        """
        proto, transport = self.connect()
        backpressure = transport.producer
        backpressure.pauseProducing()
        proto.dataReceived(b"noop\r\n")
        self.assertEqual((transport.value(), proto.gate.reasons), (b"", {CLIENT_BEHIND}))
        backpressure.resumeProducing()
        self.assertEqual(transport.value(), b"200 ok\r\n")
        self.assertEqual(proto.gate.reasons, frozenset())

    def test_uploadBodyLiftsTheCommandReason(self):
        proto, transport = self.connect()
        body = b"body\r\nbytes"
        proto.dataReceived(b"put u.bin %d\r\n" % len(body))
        self.assertEqual(transport.value(), b"350 0\r\n")
        self.assertEqual((proto.gate.reasons, proto.line_mode), (frozenset(), 0))
        proto.dataReceived(body)
        self.assertTrue(proto.uploads.awaitingTrailer)
        proto.dataReceived(b"sha1 " + _sha1(body) + b"\r\n")
        self.assertTrue(transport.value().endswith(b"226 u.bin 11 " + _sha1(body) + b"\r\n"))
        self.assertEqual(proto.gate.reasons, frozenset())

    def test_diskBehindPausesTheBody(self):
        """
        The upload's writer sets and lifts the disk's reason; reading goes
        on only once the client has caught up too.
        """
        self.patch(background, "HIGH_WATER", 1000)
        reactor = _SlowDiskReactor()
        proto, transport = self.connect(reactor)
        body = os.urandom(5000)
        proto.dataReceived(b"put d.bin 5000\r\n")
        proto.dataReceived(body[:2000])
        self.assertEqual((proto.gate.reasons, transport.producerState), ({DISK_BEHIND}, "paused"))
        transport.producer.pauseProducing()
        proto.dataReceived(body[2000:] + b"sha1 " + _sha1(body) + b"\r\n")
        reactor.pool.runAll()
        self.assertEqual((proto.gate.reasons, transport.producerState), ({CLIENT_BEHIND}, "paused"))
        self.assertEqual(proto.inputHeld(), 3000 + 47)
        transport.producer.resumeProducing()
        for _ in range(10):
            reactor.pool.runAll()
        self.assertTrue(transport.value().endswith(b"226 d.bin 5000 " + _sha1(body) + b"\r\n"), transport.value())
        with open(os.path.join(self.root, "d.bin"), "rb") as f:
            self.assertEqual(f.read(), body)
        self.assertEqual(proto.gate.reasons, frozenset())

    def test_smallFilesWaitForTheClient(self):
        """
        C{mget} sends small files whole; when the client falls behind it
        waits, as a body's producer would, and goes on once it catches up.
        """
        proto, transport = self.connect()
        storage = proto.factory.storage
        readSmall = storage.readSmall

        def behindAfterTheFirst(f, size, checksum):
            result = readSmall(f, size, checksum)
            if not proto.limits.backpressure.blocked:
                transport.producer.pauseProducing()
            return result

        storage.readSmall = behindAfterTheFirst
        proto.dataReceived(b"mget s*.txt\r\n")
        self.assertEqual(transport.value().count(b"150 "), 1)
        self.assertNotIn(b"226 ", transport.value())
        transport.producer.resumeProducing()
        self.assertEqual(transport.value().count(b"150 "), 2)
        transport.producer.resumeProducing()
        self.assertEqual(transport.value().count(b"150 "), 3)
        # Behind after the last file too: the end of the batch waits.
        self.assertNotIn(b"226 ", transport.value())
        self.assertEqual(proto.gate.reasons, {COMMAND, CLIENT_BEHIND})
        transport.producer.resumeProducing()
        self.assertTrue(transport.value().endswith(b"226 3 21\r\n"), transport.value())
        self.assertEqual(proto.gate.reasons, frozenset())

    def test_embedderProtocolAndStorage(self):
        """
        An embedder sets its own protocol class on the factory and serves
        from any L{IStorage}.
        """

        @implementer(IStorage)
        class Listing:
            def listFiles(self, mask):
                return [StoredFile(b"only.txt", 3, 1700000000)]

        class Counting(FtxServerProtocol):
            lines = 0

            def lineReceived(self, line):
                self.lines += 1
                FtxServerProtocol.lineReceived(self, line)

        class Factory(FtxServerFactory):
            protocol = Counting

        proto = Factory(Listing(), InlineReactor()).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"list\r\nnoop\r\n")
        self.assertIsInstance(proto, Counting)
        self.assertEqual(proto.lines, 2)
        self.assertTrue(transport.value().endswith(b"210 only.txt 3 1700000000\r\n211 1\r\n200 ok\r\n"), transport.value())

    def test_unknownVerbs(self):
        proto, transport = self.connect()
        proto.dataReceived(b"do_list\r\ncommands\r\n")
        self.assertEqual(
            transport.value(), b"400 bad-request unknown command: do_list\r\n400 bad-request unknown command: commands\r\n"
        )
