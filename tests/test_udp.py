"""
Disk space over UDP: the datagram format, the twistd option, and
``ftx df --udp`` giving the same figures as ``ftx df``.
"""

from __future__ import annotations

import json
import select
import socket
import time

from twisted.internet.task import Clock
from twisted.internet.udp import Port as UDPPort
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from ftx.client import udp as clientudp
from ftx.protocol import diskspace
from ftx.server import udp
from ftx.server.tap import Options
from tests.clitools import SharedServer, ftx, temporaryFolder, udpPort
from tests.support import runFtx


class _Storage:
    def __init__(self) -> None:
        self.calls = 0

    def diskSpace(self):
        self.calls += 1
        return 1000000, 250000


class _Transport:
    def __init__(self) -> None:
        self.sent = []

    def write(self, data, addr):
        self.sent.append((data, addr))


class DiskSpaceProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.storage = _Storage()
        self.protocol = udp.DiskSpaceProtocol(self.storage)
        self.transport = _Transport()
        self.protocol.transport = self.transport

    def test_answers(self) -> None:
        request = diskspace.formatRequest("abc123")
        self.assertEqual(len(request), diskspace.REQUEST_SIZE)
        self.protocol.datagramReceived(request, ("127.0.0.1", 5000))
        [(answer, addr)] = self.transport.sent
        self.assertEqual((answer, addr), (b"212 1000000 250000 abc123", ("127.0.0.1", 5000)))
        self.assertEqual(diskspace.parseAnswer(answer), (1000000, 250000, "abc123"))

    def test_neverAmplifies(self) -> None:
        # The longest possible answer fits in the shortest accepted request.
        longest = "212 {0} {0} {1}".format(2**63 - 1, "x" * 16)
        self.assertLessEqual(len(longest), diskspace.REQUEST_SIZE)
        self.protocol.datagramReceived(b"df abc", ("127.0.0.1", 5000))
        self.assertEqual(self.transport.sent, [])

    def test_ignoresGarbage(self) -> None:
        for data in [b"ls x".ljust(64), b"df".ljust(64), b"df a b".ljust(64), b"df \xff".ljust(64),
                     b"df " + b"a" * 17 + b" " * 44, b"df ok".ljust(600)]:
            self.protocol.datagramReceived(data, ("127.0.0.1", 5000))
        self.assertEqual(self.transport.sent, [])
        self.assertEqual(self.storage.calls, 0)


class AddressTests(SynchronousTestCase):
    def test_interfaceOf(self) -> None:
        self.assertEqual(udp.interfaceOf("tcp:0:interface=127.0.0.1"), "127.0.0.1")
        self.assertEqual(udp.interfaceOf("tcp6:1234:interface=\\:\\:1"), "::1")
        self.assertEqual(udp.interfaceOf("tcp:1234"), "")
        self.assertEqual(udp.interfaceOf("1234"), "")
        self.assertEqual(udp.interfaceOf("unix:/tmp/s"), "127.0.0.1")

    def test_hostAndPort(self) -> None:
        self.assertEqual(clientudp.hostAndPort("example.com:99"), ("example.com", 99))
        self.assertEqual(clientudp.hostAndPort("[::1]:99"), ("::1", 99))
        self.assertEqual(clientudp.hostAndPort("tcp:host=h:port=7"), ("h", 7))
        self.assertEqual(clientudp.hostAndPort("tcp:h:7"), ("h", 7))
        self.assertEqual(clientudp.hostAndPort("5"), ("localhost", 5))
        self.assertRaises(ValueError, clientudp.hostAndPort, "unix:path=/tmp/s")

    def test_tapOption(self) -> None:
        options = Options()
        options.parseOptions(["--udp-port", "1235"])
        self.assertEqual(options["udp-port"], 1235)
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--udp-port", "http"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--udp-port", "70000"])


def _noteUdpPort(server) -> None:
    server.udpPort = udpPort(server)


# A quota on an empty root makes the free figure steady, so that both ways
# can be compared exactly on a disk that others write to.
SERVER = SharedServer("--udp-port", "0", "--quota", "1G", prepare=_noteUdpPort)


def _silentPort(testCase) -> socket.socket:
    """
    A bound UDP socket on loopback that never answers, closed after the test.
    """
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    testCase.addCleanup(silent.close)
    silent.bind(("127.0.0.1", 0))
    return silent


def _waiting(silent: socket.socket, timeout: float) -> bool:
    return bool(select.select([silent], [], [], timeout)[0])


@SERVER.serves
class UdpDfTests(SynchronousTestCase):
    """
    ``ftx df --udp`` against a server answering over UDP, and against ports
    where nothing answers.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)

    def df(self, *args):
        return ftx(self.server, "df", *args, cwd=self.local)

    def test_udpDfEqualsTcpDf(self) -> None:
        tcp = json.loads(self.df("--json").out)
        result = self.df("--udp", "--udp-port", str(self.server.udpPort), "--json")
        self.assertEqual(result.returncode, 0, result.err)
        viaUdp = json.loads(result.out)
        # The UDP answer has no room for df(1)'s used figure (64 bytes at
        # most): total and free agree, used is worked out and says so.
        self.assertEqual((viaUdp["total"], viaUdp["free"]), (tcp["total"], tcp["free"]))
        self.assertIn("does not report used", viaUdp["used_is"])
        self.assertEqual(tcp["free"], 1 << 30)
        text = self.df("--udp", "--udp-port", str(self.server.udpPort)).out
        self.assertEqual([line.split()[0] for line in text.splitlines()], ["total", "used", "free"])

    def test_nothingListening(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        result = self.df("--udp", "--udp-port", str(port))
        self.assertEqual(result.returncode, cli.EXIT_CONNECT)
        self.assertTrue(result.err.startswith("ftx: error: "), result.err)
        self.assertIn("--udp-port", result.err)

    def test_silentPortGivesUpAfterBoundedRetries(self) -> None:
        """
        The command as a user runs it, end to end: it waits out its three
        tries (0.5 + 1 + 2 seconds, fixed in the command, which takes no
        clock) and says so in one line. L{RetryScheduleTests} checks the
        schedule itself on a clock.
        """
        silent = _silentPort(self)
        started = time.monotonic()
        result = self.df("--udp", "--udp-port", str(silent.getsockname()[1]))
        elapsed = time.monotonic() - started
        requests = []
        while len(requests) < 10 and _waiting(silent, 0):
            requests.append(silent.recv(1024))
        self.assertEqual(result.returncode, cli.EXIT_CONNECT)
        self.assertIn("no answer", result.err)
        self.assertIn("3 tries", result.err)
        self.assertEqual([len(r) for r in requests], [diskspace.REQUEST_SIZE] * 3)
        self.assertTrue(3 < elapsed < 10, elapsed)


class NoUdpAddressTests(SynchronousTestCase):
    def test_udpNeedsHostAndPort(self) -> None:
        result = runFtx(["--server", "unix:path=/nonexistent", "df", "--udp"], cwd=str(temporaryFolder(self)))
        self.assertEqual(result.returncode, cli.EXIT_USAGE)
        self.assertIn(b"HOST:PORT", result.stderr)


class _ClockedUDPReactor(Clock):
    """
    A clock that opens real UDP ports: L{clientudp.queryDiskSpace} sends its
    datagrams over a real socket on loopback, and its waits, and the closing
    of its port, happen when the test advances the clock. Nothing reads from
    the port (it is only registered as a reader): the tests are about a
    port that never answers. The global reactor is not used, so the test
    runs the same under trial and under pytest, whatever else has run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.readers: set = set()

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        listening = UDPPort(port, protocol, interface, maxPacketSize, self)
        listening.startListening()
        return listening

    def addReader(self, reader) -> None:
        self.readers.add(reader)

    def removeReader(self, reader) -> None:
        self.readers.discard(reader)

    def removeWriter(self, writer) -> None:
        pass


class RetryScheduleTests(SynchronousTestCase):
    """
    L{clientudp.queryDiskSpace} against a real UDP port that never answers,
    its waits driven by a clock.
    """

    def receive(self, silent: socket.socket) -> bytes:
        self.assertTrue(_waiting(silent, 5), "no datagram came")
        return silent.recv(1024)

    def assertNothingSent(self, silent: socket.socket) -> None:
        self.assertFalse(_waiting(silent, 0.02), "a datagram came early")

    def giveUp(self, clock: Clock, asked) -> None:
        """
        Let a query a failed test left waiting spend its tries, so that its
        socket is closed.
        """
        for _ in range(5):
            clock.advance(10)
        asked.addErrback(lambda _: None)

    def test_retriesAfterEachWaitThenGivesUp(self) -> None:
        silent = _silentPort(self)
        host, port = silent.getsockname()
        clock = _ClockedUDPReactor()
        asked = clientudp.queryDiskSpace(clock, host, port)
        self.addCleanup(self.giveUp, clock, asked)
        [listening] = clock.readers
        requests = [self.receive(silent)]  # the first try goes at once
        for wait in (0.5, 1.0):
            clock.advance(wait - 0.01)
            self.assertNothingSent(silent)
            clock.advance(0.01)
            requests.append(self.receive(silent))
        clock.advance(2.0 - 0.01)
        self.assertNothingSent(silent)
        self.assertNoResult(asked)
        clock.advance(0.01)
        failure = self.failureResultOf(asked, clientudp.NoAnswer)
        self.assertEqual(
            failure.getErrorMessage(),
            "no answer from {}:{} over UDP after 3 tries (is the server started with --udp-port?)".format(host, port),
        )
        self.assertNothingSent(silent)
        self.assertEqual(clock.getDelayedCalls(), [])
        # The query's socket is closed once it gives up.
        self.assertEqual((clock.readers, listening.connected), (set(), 0))
        # Every try asks the same question, so an answer to any one counts.
        self.assertEqual(len(set(requests)), 1)
        self.assertEqual(len(requests[0]), diskspace.REQUEST_SIZE)
