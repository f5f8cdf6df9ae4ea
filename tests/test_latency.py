"""
What keeps a small command quick on the wire and in its connection set-up:
the checksum is asked for without waiting for its answer (one round trip
less per connection), and an address literal is connected to without the
name resolution of Twisted's C{HostnameEndpoint}.
"""

from __future__ import annotations

import socket

from twisted.internet import error, reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io.tcpclient import AddressEndpoint, LoopbackEndpoint, isAddressLiteral, isLoopbackName
from ftx.client.api import endpointFromAddress
from ftx.client.client import FtxClient
from ftx.client.protocol import FtxClientProtocol
from ftx.server.protocol import FtxServerFactory
from ftx.testing import MemoryStorage
from tests.support import InlineReactor

GREETING = b"220 ftx/1 list,sget,hash,df,quit,xxh128\r\n"


class PipelinedChecksumTests(SynchronousTestCase):
    def connect(self):
        protocol = FtxClientProtocol(InlineReactor())
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_firstCommandFollowsTheChecksumAtOnce(self):
        """
        Once greeted, the connection is ready: C{checksum xxh128} is sent
        and the first command goes right behind it, before the answer.
        """
        protocol, transport = self.connect()
        greeted = protocol.greeted
        protocol.dataReceived(GREETING)
        self.assertIs(self.successResultOf(greeted), protocol)
        self.assertEqual(protocol.checksum, "xxh128")
        listed = FtxClient(protocol, InlineReactor()).list()
        self.assertEqual(transport.value(), b"checksum xxh128\r\nlist\r\n")
        protocol.dataReceived(b"200 checksum xxh128\r\n210 a.txt 5 0\r\n211 1\r\n")
        self.assertEqual([e.name for e in self.successResultOf(listed)], ["a.txt"])
        self.assertEqual(protocol.checksum, "xxh128")

    def test_refusedChecksumKeepsSha1(self):
        """
        A server that offered the checksum and then refuses it leaves
        SHA-1 in place, says so in the log, and the next reply still goes
        to its own command.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(GREETING)
        listed = FtxClient(protocol, InlineReactor()).list()
        with capturedLogs() as events:
            protocol.dataReceived(b"400 bad-request no\r\n211 0\r\n")
        self.assertEqual(self.successResultOf(listed), [])
        self.assertEqual(protocol.checksum, "sha1")
        self.assertTrue(any("refused checksum" in str(e.get("log_format")) for e in events))

    def test_sha1NeedsNoCommand(self):
        """
        Asked for SHA-1 (or offered nothing faster), the client sends no
        C{checksum} command at all.
        """
        protocol, transport = self.connect()
        protocol.preferredChecksum = "sha1"
        protocol.dataReceived(GREETING)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(protocol.checksum, "sha1")


class ServerTakesPipelinedChecksumTests(SynchronousTestCase):
    def test_answersInOrder(self):
        """
        The server reads C{checksum} and the command sent behind it in one
        segment and answers both, in order (docs/protocol.rst, Commands):
        what the client's pipelining relies on.
        """
        storage = MemoryStorage()
        protocol = FtxServerFactory(storage, InlineReactor()).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertTrue(transport.value().startswith(b"220 "))
        transport.clear()
        protocol.dataReceived(b"checksum xxh128\r\nlist\r\n")
        self.assertEqual(transport.value(), b"200 checksum xxh128\r\n211 0\r\n")
        protocol.connectionLost(error.ConnectionDone())


class AddressLiteralTests(SynchronousTestCase):
    def test_literals(self):
        for host in ("127.0.0.1", "::1", "fe80::1%eth0", "2001:db8::2"):
            self.assertTrue(isAddressLiteral(host), host)
        for host in ("localhost", "files.example.com", "127.0.0", "1.2.3.4.5", "", "::g"):
            self.assertFalse(isAddressLiteral(host), host)

    def test_literalAddressesNeedNoResolver(self):
        """
        C{HOST:PORT} with an address literal connects without Twisted's
        C{HostnameEndpoint}; a name still gets one.
        """
        self.assertIsInstance(endpointFromAddress(reactor, "127.0.0.1:1"), AddressEndpoint)
        self.assertIsInstance(endpointFromAddress(reactor, "[::1]:1"), AddressEndpoint)
        self.assertIsInstance(endpointFromAddress(reactor, "localhost:1"), LoopbackEndpoint)
        self.assertIsInstance(endpointFromAddress(reactor, "LocalHost.:1"), LoopbackEndpoint)
        for address in ("files.example.com:1", "localhost.example.com:1", "tcp:localhost:1"):
            endpoint = endpointFromAddress(reactor, address)
            self.assertNotIsInstance(endpoint, (AddressEndpoint, LoopbackEndpoint))

    def test_loopbackNames(self):
        for host in ("localhost", "LOCALHOST", "localhost."):
            self.assertTrue(isLoopbackName(host), host)
        for host in ("localhost.localdomain", "mylocalhost", "127.0.0.1", ""):
            self.assertFalse(isLoopbackName(host), host)


class _Hello(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello")
        self.transport.loseConnection()


class _Collect(Protocol):
    def __init__(self):
        self.received = b""
        self.done = Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.done.callback(self.received)


class AddressEndpointTests(TestCase):
    def listen(self, interface):
        port = reactor.listenTCP(0, Factory.forProtocol(_Hello), interface=interface)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    async def test_connects(self):
        port = self.listen("127.0.0.1")
        protocol = await AddressEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(_Collect))
        self.assertIsInstance(protocol, _Collect)
        self.assertEqual(await protocol.done, b"hello")

    async def test_connectsOverIPv6(self):
        if not socket.has_ipv6:
            raise self.skipTest("no IPv6 on this machine")
        try:
            port = self.listen("::1")
        except error.CannotListenError:
            raise self.skipTest("no IPv6 loopback on this machine")
        protocol = await AddressEndpoint(reactor, "::1", port).connect(Factory.forProtocol(_Collect))
        self.assertEqual(await protocol.done, b"hello")

    async def test_refused(self):
        # Nothing listens on a port just closed.
        listening = reactor.listenTCP(0, Factory.forProtocol(_Hello), interface="127.0.0.1")
        closed = listening.getHost().port
        await listening.stopListening()
        with self.assertRaises(error.ConnectionRefusedError):
            await AddressEndpoint(reactor, "127.0.0.1", closed).connect(Factory.forProtocol(_Collect))

    def test_noProtocol(self):
        """
        A factory that builds no protocol fails the connection attempt.
        """
        port = self.listen("127.0.0.1")
        factory = Factory()
        factory.buildProtocol = lambda addr: None
        d = AddressEndpoint(reactor, "127.0.0.1", port).connect(factory)
        return self.assertFailure(d, error.NoProtocol)


def _ipv6Loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class LoopbackEndpointTests(TestCase):
    async def connectTo(self, port):
        protocol = await LoopbackEndpoint(reactor, port).connect(Factory.forProtocol(_Collect))
        return await protocol.done

    async def test_ipv4Only(self):
        """
        A server on 127.0.0.1 only is reached after ::1 refuses (or is
        missing).
        """
        listening = reactor.listenTCP(0, Factory.forProtocol(_Hello), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.assertEqual(await self.connectTo(listening.getHost().port), b"hello")

    async def test_ipv6Only(self):
        if not _ipv6Loopback():
            raise self.skipTest("no IPv6 loopback on this machine")
        listening = reactor.listenTCP(0, Factory.forProtocol(_Hello), interface="::1")
        self.addCleanup(listening.stopListening)
        self.assertEqual(await self.connectTo(listening.getHost().port), b"hello")

    async def test_nothingListens(self):
        listening = reactor.listenTCP(0, Factory.forProtocol(_Hello), interface="127.0.0.1")
        port = listening.getHost().port
        await listening.stopListening()
        with self.assertRaises(error.ConnectError):
            await self.connectTo(port)
