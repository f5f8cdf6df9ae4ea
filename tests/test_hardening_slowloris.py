"""
Slowloris (issue 12, item 4): a client that trickles a command line, or
never logs in, is cut after a deadline however steadily it sends; the
twistd defaults bound what one address may hold.
"""

import hashlib
import time

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.server.protocol import FtxServerFactory, ServerPolicy
from ftx.server.tap import Options, makeFactory
from ftx.testing import InlineReactor, MemoryStorage
from tests.reliability import measure, record
from tests.support import listenInProcess, temporaryFolder


class _Served:
    """
    One server connection over a StringTransport, on an L{InlineReactor}.
    """

    def __init__(self, factory):
        self.reactor = factory.reactor
        self.protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
        self.protocol.makeConnection(self.transport)

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting

    def trickle(self, data: bytes, every: float) -> None:
        """
        Send C{data} one byte at a time, C{every} seconds apart.
        """
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])
            self.reactor.advance(every)


class LineDeadlineTests(SynchronousTestCase):
    def serve(self, **policy) -> _Served:
        storage = MemoryStorage({b"a.txt": b"hello"})
        return _Served(FtxServerFactory(storage, InlineReactor(), ServerPolicy(idleTimeout=300, **policy)))

    def test_tricklingALineIsCut(self):
        """
        One byte every 0.3 s restarts the idle timer each time, but the line
        must end within --line-timeout (30 s) of its first byte.
        """
        served = self.serve()
        served.trickle(b"list " + b"a" * 95, 0.29)
        self.assertAlmostEqual(served.reactor.seconds(), 29.0)
        served.reactor.advance(0.99)
        self.assertFalse(served.closed)
        served.reactor.advance(0.02)
        self.assertTrue(served.closed)
        self.assertIn(b"400 bad-request command line not finished within 30 seconds", served.transport.value())

    def test_slowCompleteLinesAreServed(self):
        """
        Lines that each end within the deadline keep the connection, however
        slowly they come: the deadline is per line, not per connection.
        """
        served = self.serve()
        for _ in range(10):
            served.trickle(b"noop\r\n", 4.0)
        self.assertGreater(served.reactor.seconds(), 200)
        self.assertFalse(served.closed)
        self.assertEqual(served.transport.value().count(b"200 ok"), 10)

    def test_deadlineCountsOnlyWhileTheServerWaits(self):
        """
        A line sent ahead while a command runs is not being waited for: its
        deadline starts once the server reads again.
        """
        served = self.serve()
        reactor = served.reactor
        held = Deferred()
        served.protocol._commands["slow"] = lambda args: held
        served.protocol.dataReceived(b"slow\r\nlis")
        reactor.advance(40)
        self.assertFalse(served.closed)
        held.callback(None)
        reactor.advance(29)
        self.assertFalse(served.closed)
        reactor.advance(1)
        self.assertTrue(served.closed)

    def test_uploadBodyIsNotALine(self):
        """
        A body is not a command line: a slow but moving upload is left to
        the idle timeout.
        """
        served = self.serve()
        served.protocol.dataReceived(b"put b.txt 10\r\n")
        served.trickle(b"0123456789", 5.0)
        self.assertFalse(served.closed)
        digest = hashlib.sha1(b"0123456789").hexdigest().encode()
        served.protocol.dataReceived(b"sha1 " + digest + b"\r\n")
        self.assertFalse(served.closed)
        self.assertIn(b"226 b.txt 10 " + digest, served.transport.value())

    def test_offDisablesIt(self):
        served = self.serve(lineTimeout=0)
        served.trickle(b"list aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 3.0)
        self.assertFalse(served.closed)


class LoginDeadlineTests(SynchronousTestCase):
    def serve(self, *arguments) -> _Served:
        root = temporaryFolder(self)
        options = Options()
        options.parseOptions(["--root", root, "--port", "tcp:0", "--auth", "memory:alice:pw", *arguments])
        return _Served(makeFactory(options, InlineReactor()))

    def test_notLoggingInIsCut(self):
        served = self.serve("--anonymous", "none")
        for _ in range(5):
            served.trickle(b"noop\r\n", 1.5)
        self.assertFalse(served.closed)
        served.reactor.advance(60 - served.reactor.seconds())
        self.assertTrue(served.closed)
        self.assertIn(b"not logged in within 60 seconds", served.transport.value())

    def test_loggedInIsKept(self):
        served = self.serve("--anonymous", "none", "--login-timeout", "10s")
        served.protocol.dataReceived(b"login alice pw\r\n")
        served.reactor.advance(100)
        self.assertFalse(served.closed)
        self.assertIn(b"230 ", served.transport.value())

    def test_anonymousAccessNeedsNoDeadline(self):
        served = self.serve("--anonymous", "read")
        served.reactor.advance(100)
        self.assertFalse(served.closed)


class DefaultsTests(SynchronousTestCase):
    def test_twistdDefaults(self):
        options = Options()
        options.parseOptions(["--root", temporaryFolder(self)])
        self.assertEqual(
            (options["max-per-address"], options["line-timeout"], options["login-timeout"]), (32, 30.0, 60.0)
        )
        policy = makeFactory(options, InlineReactor()).policy
        self.assertEqual((policy.maxPerAddress, policy.lineTimeout, policy.loginTimeout), (32, 30.0, 60.0))

    def test_helpNamesThem(self):
        text = str(Options())
        for option in ("--line-timeout", "--login-timeout", "--max-per-address"):
            self.assertIn(option, text)


class _Trickler(Protocol):
    """
    Sends a command line one byte every C{every} seconds, for ever.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self.lost = Deferred()
        self.started = None

    def connectionMade(self):
        self.started = time.monotonic()
        self._loop = LoopingCall(self.transport.write, b"l")
        self._loop.clock = reactor
        self._loop.start(self.every)

    def connectionLost(self, reason):
        if self._loop.running:
            self._loop.stop()
        self.lost.callback(time.monotonic() - self.started)


class RealSocketTests(TestCase):
    async def test_slowlorisConnectionsAreCut(self):
        """
        Over real sockets, with a 1 s line deadline: every trickling
        connection is cut about a second after its first byte.
        """
        count = 8
        port = await listenInProcess(reactor, temporaryFolder(self), ServerPolicy(lineTimeout=1.0, idleTimeout=300))
        self.addCleanup(port.stopListening)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        trickers = [_Trickler(0.1) for _ in range(count)]
        for trickler in trickers:
            await connectProtocol(endpoint, trickler)
        timer = reactor.callLater(10, lambda: [t.transport.abortConnection() for t in trickers])
        durations = [await trickler.lost for trickler in trickers]
        if timer.active():
            timer.cancel()
        cut = [d for d in durations if d < 5]
        record("slowloris: trickling connections cut", count, count - len(cut), "tried", "survived")
        measure(
            "slowloris: time to cut (--line-timeout 1)",
            "{:.2f}-{:.2f} s over real sockets (default 30 s)".format(min(durations), max(durations)),
        )
        self.assertEqual(len(cut), count, durations)
        self.assertGreaterEqual(min(durations), 0.9)
