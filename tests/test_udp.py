"""
Disk space over UDP: the datagram format, the twistd option, and
``ftx df --udp`` giving the same figures as ``ftx df``.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from ftx.client import udp as clientudp
from ftx.protocol import diskspace
from ftx.server import udp
from ftx.server.tap import Options
from tests.test_cli_helpers import ftx, startServer, udpPort


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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A quota on an empty root makes the free figure steady, so that both
    # ways can be compared exactly on a disk that others write to.
    server, _ = startServer(tmp_path_factory, "--udp-port", "0", "--quota", "1G")
    try:
        server.udpPort = udpPort(server)
        yield server
    finally:
        server.stop()


def test_udpDfEqualsTcpDf(server, tmp_path):
    tcp = json.loads(ftx(server, "df", "--json", cwd=tmp_path).out)
    result = ftx(server, "df", "--udp", "--udp-port", str(server.udpPort), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.err
    viaUdp = json.loads(result.out)
    assert viaUdp == tcp
    assert tcp["free"] == 1 << 30
    text = ftx(server, "df", "--udp", "--udp-port", str(server.udpPort), cwd=tmp_path).out
    assert [line.split()[0] for line in text.splitlines()] == ["total", "used", "free"]


def test_nothingListening(server, tmp_path):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = ftx(server, "df", "--udp", "--udp-port", str(port), cwd=tmp_path)
    assert result.returncode == cli.EXIT_CONNECT
    assert result.err.startswith("ftx: error: ") and "--udp-port" in result.err


def test_udpNeedsHostAndPort(tmp_path):
    from tests.support import runFtx

    result = runFtx(["--server", "unix:path=/nonexistent", "df", "--udp"], cwd=str(tmp_path))
    assert result.returncode == cli.EXIT_USAGE
    assert b"HOST:PORT" in result.stderr


def test_silentPortGivesUpAfterBoundedRetries(server, tmp_path):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        silent.bind(("127.0.0.1", 0))
        started = time.monotonic()
        result = ftx(server, "df", "--udp", "--udp-port", str(silent.getsockname()[1]), cwd=tmp_path)
        elapsed = time.monotonic() - started
        silent.setblocking(False)
        requests = []
        while True:
            try:
                requests.append(silent.recv(1024))
            except BlockingIOError:
                break
    finally:
        silent.close()
    assert result.returncode == cli.EXIT_CONNECT
    assert "no answer" in result.err and "3 tries" in result.err
    assert len(requests) == 3 and all(len(r) == diskspace.REQUEST_SIZE for r in requests)
    assert 3 < elapsed < 10
