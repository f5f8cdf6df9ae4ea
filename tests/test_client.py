"""
The client's way in: the one address parser (L{ftx._io.endpoints}),
L{ftx.client.connect} (greeting timeout on a Clock, TLS errors, login,
a factory of one's own) and the public names of each package.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import trustme
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    UNIXClientEndpoint,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx._io import tls
from ftx._io.endpoints import Address, isTLS, parseAddress, parseServerAddress, splitDescription
from ftx._io.tcpclient import LoopbackEndpoint
from ftx.client import ClientTLS, FtxClient, FtxClientFactory, FtxClientProtocol, connect, endpointFromAddress
from ftx.server.accounts import AccessControl
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.support import InlineReactor


def _folder(case):
    path = tempfile.mkdtemp(prefix="ftx-client-test-")
    case.addCleanup(shutil.rmtree, path, True)
    return path


class AddressTests(SynchronousTestCase):
    """
    Every form of client address ftx accepts, taken apart once.
    """

    def test_hostAndPort(self):
        self.assertEqual(parseAddress("example.com:99"), Address(None, "example.com", 99, {}))
        self.assertEqual(parseAddress("localhost:1234"), Address(None, "localhost", 1234, {}))
        self.assertEqual(parseAddress("10.0.0.1:7"), Address(None, "10.0.0.1", 7, {}))

    def test_barePortIsLocalhost(self):
        self.assertEqual(parseAddress("1234"), Address(None, "localhost", 1234, {}))

    def test_ipv6(self):
        self.assertEqual(parseAddress("[::1]:7"), Address(None, "::1", 7, {}))
        self.assertEqual(parseAddress("[fe80::1%eth0]:7").host, "fe80::1%eth0")
        self.assertEqual(parseAddress("tcp6:host=\\:\\:1:port=7"), Address("tcp6", "::1", 7, {}))

    def test_tcpStrings(self):
        self.assertEqual(parseAddress("tcp:h:7"), Address("tcp", "h", 7, {}))
        self.assertEqual(parseAddress("tcp:host=h:port=7:timeout=5"), Address("tcp", "h", 7, {"timeout": "5"}))
        self.assertEqual(parseAddress("TCP:h:7").kind, "tcp")

    def test_tlsStrings(self):
        self.assertEqual(
            parseAddress("ssl:host=files.example.org:port=990:caCertsDir=/ca"),
            Address("ssl", "files.example.org", 990, {"caCertsDir": "/ca"}),
        )
        self.assertEqual(parseAddress("tls:example.org:443"), Address("tls", "example.org", 443, {}))
        self.assertTrue(parseAddress("tls:example.org:443").isTLS)
        self.assertFalse(parseAddress("example.org:443").isTLS)

    def test_otherEndpointStrings(self):
        """
        unix: and any other typed string come back for Twisted to build,
        with no host or port; unix: is a socket even when named by digits.
        """
        self.assertEqual(parseAddress("unix:path=/run/ftx.sock"), Address("unix", "", None, {"path": "/run/ftx.sock"}))
        self.assertEqual(parseAddress("unix:/run/ftx.sock"), Address("unix", "", None, {}))
        self.assertEqual(parseAddress("unix:1234").kind, "unix")
        self.assertEqual(parseAddress("npipe:name=x").kind, "npipe")
        self.assertFalse(parseAddress("unix:/run/ftx.sock").isTCP)
        self.assertTrue(parseAddress("tcp:h:1").isTCP)
        self.assertTrue(parseAddress("h:1").isTCP)

    def test_escapes(self):
        self.assertEqual(splitDescription("tcp:0:interface=\\:\\:1"), (["tcp", "0"], {"interface": "::1"}))
        self.assertEqual(splitDescription("unix:path=/a\\:b"), (["unix"], {"path": "/a:b"}))
        self.assertEqual(splitDescription("x:a\\=b:k=v=w"), (["x", "a=b"], {"k": "v=w"}))
        self.assertEqual(splitDescription("x:end\\"), (["x", "end"], {}))
        self.assertEqual(parseAddress("ssl:host=h:port=1:caCertsDir=C\\:\\\\ca").params, {"caCertsDir": "C:\\ca"})

    def test_errors(self):
        """
        What cannot be understood fails with the messages the command line
        has always shown after "bad --server address:".
        """
        cases = [
            ("not an address", "not an address: 'not an address' (expected HOST:PORT or an endpoint string)"),
            (":99", "not an address: ':99' (expected HOST:PORT or an endpoint string)"),
            ("example.com:http", "not an address: 'example.com:http' (expected HOST:PORT or an endpoint string)"),
            ("ssl:host=x", "not an address: 'ssl:host=x' (expected ssl:host=HOST:port=PORT)"),
            ("tcp:host=x:port=y", "not an address: 'tcp:host=x:port=y' (expected tcp:host=HOST:port=PORT)"),
        ]
        for address, message in cases:
            error = self.assertRaises(ValueError, parseAddress, address)
            self.assertEqual(str(error), message)

    def test_serverDescriptions(self):
        self.assertEqual(parseServerAddress("1234"), Address("tcp", "", 1234, {}))
        self.assertEqual(
            parseServerAddress("tcp:0:interface=127.0.0.1"), Address("tcp", "", 0, {"interface": "127.0.0.1"})
        )
        self.assertEqual(parseServerAddress("tcp6:1234:interface=\\:\\:1").params, {"interface": "::1"})
        self.assertEqual(parseServerAddress("ssl:0:privateKey=k.pem").port, 0)
        self.assertTrue(parseServerAddress("ssl:0:privateKey=k.pem").isTLS)
        # A second positional field is Twisted's privateKey, not a port.
        self.assertIsNone(parseServerAddress("ssl:0:k.pem").port)
        self.assertEqual(parseServerAddress("unix:/tmp/s"), Address("unix", "", None, {}))
        self.assertEqual(parseServerAddress("systemd:domain=INET:index=0").kind, "systemd")

    def test_isTLS(self):
        for address in ("ssl:host=h:port=1", "tls:h:1", "SSL:0:privateKey=k.pem", "ssl:bad"):
            self.assertTrue(isTLS(address), address)
        for address in ("h:1", "1234", "tcp:h:1", "[::1]:5", "unix:/s", "sslhost:1", ""):
            self.assertFalse(isTLS(address), address)


class EndpointTests(SynchronousTestCase):
    """
    The endpoint connect builds for each kind of address.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()

    def test_kinds(self):
        self.assertIsInstance(endpointFromAddress(self.reactor, "files.example.com:1"), HostnameEndpoint)
        self.assertIsInstance(endpointFromAddress(self.reactor, "1"), LoopbackEndpoint)
        self.assertIsInstance(endpointFromAddress(self.reactor, "tcp:h:1"), TCP4ClientEndpoint)
        self.assertIsInstance(endpointFromAddress(self.reactor, "unix:path=/run/ftx.sock"), UNIXClientEndpoint)

    def test_errors(self):
        """
        An endpoint type Twisted does not know reads as a bad address;
        Twisted's own complaints about the types ftx hands it stand.
        """
        error = self.assertRaises(ValueError, endpointFromAddress, self.reactor, "foo:bar")
        self.assertEqual(str(error), "not an address: 'foo:bar' (expected HOST:PORT or an endpoint string)")
        for address in ("host:", "unix"):
            error = self.assertRaises(ValueError, endpointFromAddress, self.reactor, address)
            self.assertEqual(
                str(error), "not an address: {!r} (expected HOST:PORT or an endpoint string)".format(address)
            )
        error = self.assertRaises(ValueError, endpointFromAddress, self.reactor, "tcp6:h:1")
        self.assertIn("Unknown endpoint type", str(error))

    def test_tlsProblemsAreValueErrors(self):
        error = self.assertRaises(ValueError, endpointFromAddress, self.reactor, "unix:/s", ClientTLS())
        self.assertIn("TCP only", str(error))
        missing = os.path.join(_folder(self), "missing.pem")
        error = self.assertRaises(ValueError, endpointFromAddress, self.reactor, "ssl:h:1:certKey=" + missing)
        self.assertIn("cannot read", str(error))

    def test_connectFailsWithTheAddressError(self):
        self.failureResultOf(connect(self.reactor, "not an address"), ValueError)
        failure = self.failureResultOf(connect(self.reactor, "unix:/s", tls=ClientTLS()), errors.TLSError)
        self.assertIn("TCP only", str(failure.value))
        failure = self.failureResultOf(connect(self.reactor, "h:1", credentials=("alice", None)), errors.LoginFailed)
        self.assertEqual(str(failure.value), "a password is needed to log in as alice")


class _InMemory:
    """
    L{connect} over a L{MemoryReactorClock}: the connection it asks for is
    made by hand, to a real server protocol through iosim or to nothing.
    """

    def start(self, **options):
        self.reactor = MemoryReactorClock()
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", 1234)
        self.connected = connect(self.reactor, endpoint, **options)
        wrapping = self.reactor.tcpClients[0][2]
        self.client = wrapping.buildProtocol(None)
        return self.connected

    def silentServer(self):
        transport = StringTransportWithDisconnection()
        transport.protocol = self.client
        self.client.makeConnection(transport)
        return transport

    def realServer(self):
        root = _folder(self)
        with open(os.path.join(root, "a.txt"), "wb") as f:
            f.write(b"hello")
        server = FtxServerFactory(FilesystemStorage(root), InlineReactor()).buildProtocol(None)
        return iosim.connect(
            server, iosim.FakeTransport(server, isServer=True), self.client, iosim.FakeTransport(self.client, isServer=False)
        )


class GreetingTimeoutTests(_InMemory, SynchronousTestCase):
    def test_noGreetingGivesUpWithAHint(self):
        """
        A server that accepts and says nothing (a TLS server, to a plain
        client) is given C{timeout} seconds, then the connection is
        aborted and connect says what may be wrong.
        """
        d = self.start(timeout=5)
        transport = self.silentServer()
        self.reactor.advance(4.9)
        self.assertNoResult(d)
        self.assertTrue(transport.connected)
        self.reactor.advance(0.1)
        self.assertFalse(transport.connected)
        failure = self.failureResultOf(d, errors.ConnectionLost)
        self.assertEqual(
            str(failure.value),
            "no greeting from the server within 5 s; if it is a TLS server, connect with --tls or an ssl: address",
        )

    def test_greetingCancelsTheTimer(self):
        d = self.start()
        pump = self.realServer()
        pump.flush()
        client = self.successResultOf(d)
        self.assertIsInstance(client, FtxClient)
        self.assertIs(client.protocol.reactor, self.reactor)
        self.reactor.advance(60)
        self.assertFalse(client.protocol.transport.disconnecting)
        d = client.list()
        pump.flush()
        self.assertEqual([e.name for e in self.successResultOf(d)], ["a.txt"])

    def test_noTimeout(self):
        d = self.start(timeout=None)
        self.silentServer()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertNoResult(d)


class FactoryTests(SynchronousTestCase):
    def test_buildsProtocolsWithItsSettings(self):
        clock = Clock()
        factory = FtxClientFactory(clock, checksum="sha1", serverName="files.example.org")
        protocol = factory.buildProtocol(None)
        self.assertIsInstance(protocol, FtxClientProtocol)
        self.assertIs(protocol.reactor, clock)
        self.assertIs(protocol.factory, factory)
        self.assertEqual(protocol.preferredChecksum, "sha1")
        self.assertEqual(protocol.serverName, "files.example.org")

    def test_clientNeedsAReactor(self):
        """
        Nothing in the client falls back to the global reactor.
        """
        protocol = FtxClientProtocol()
        self.assertIsNone(protocol.reactor)
        self.assertRaises(TypeError, FtxClient, protocol)
        clock = Clock()
        self.assertIs(FtxClient(protocol, clock).protocol.reactor, clock)

    def test_checksumGoesWithTheFactory(self):
        clock = MemoryReactorClock()
        self.assertRaises(TypeError, connect, clock, "h:1", checksum="sha1", factory=FtxClientFactory(clock))


class _Recording(FtxClientProtocol):
    def connectionLost(self, reason=None):
        FtxClientProtocol.connectionLost(self, reason)
        self.factory.lost.callback(None)


class _RecordingFactory(FtxClientFactory):
    protocol = _Recording

    def __init__(self, reactor):
        FtxClientFactory.__init__(self, reactor)
        self.lost = Deferred()


class ConnectTests(TestCase):
    """
    connect against real servers on the loopback interface.
    """

    async def _serve(self, access=None):
        root = _folder(self)
        with open(os.path.join(root, "a.txt"), "wb") as f:
            f.write(b"hello")
        storage = FilesystemStorage(root)
        if access is not None:
            access = access(storage)
        factory = FtxServerFactory(storage, reactor, access=access)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return "127.0.0.1:{}".format(port.getHost().port)

    async def test_ownProtocolIsUsed(self):
        address = await self._serve()
        factory = _RecordingFactory(reactor)
        client = await connect(reactor, address, factory=factory)
        self.assertIsInstance(client.protocol, _Recording)
        self.assertEqual([e.name for e in await client.list()], ["a.txt"])
        await client.quit()
        await factory.lost

    async def test_logIn(self):
        """
        With credentials connect logs in; a refused login fails with
        LoginFailed and leaves no connection open.
        """

        def accounts(storage):
            checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
            return AccessControl(storage, checkers=[checker], anonymous=None, reactor=reactor, loginDelay=0)

        address = await self._serve(accounts)
        factory = _RecordingFactory(reactor)
        client = await connect(reactor, address, credentials=("alice", "secret"), factory=factory)
        self.assertEqual([e.name for e in await client.list()], ["a.txt"])
        await client.quit()
        await factory.lost
        factory = _RecordingFactory(reactor)
        with self.assertRaises(errors.LoginFailed):
            await connect(reactor, address, credentials=("alice", "wrong"), factory=factory)
        await factory.lost

    async def test_logInWithoutAccounts(self):
        address = await self._serve()
        factory = _RecordingFactory(reactor)
        with self.assertRaises(errors.LoginFailed) as caught:
            await connect(reactor, address, credentials=("bob", "pw"), factory=factory)
        self.assertEqual(str(caught.exception), "the server has no accounts; connect without a user name")
        await factory.lost


class TLSTests(TestCase):
    """
    A failed handshake comes out of connect as the TLS error a user can
    act on, and a plain client facing a TLS server gives up with a hint.
    """

    def setUp(self):
        folder = _folder(self)
        ca, stranger = trustme.CA(), trustme.CA()
        self.ca = os.path.join(folder, "ca.pem")
        ca.cert_pem.write_to_path(self.ca)
        self.stranger = os.path.join(folder, "stranger.pem")
        stranger.cert_pem.write_to_path(self.stranger)
        self.certificate = os.path.join(folder, "server.pem")
        ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(self.certificate)
        self.root = _folder(self)

    async def _listenTLS(self):
        factory = FtxServerFactory(FilesystemStorage(self.root), reactor)
        description = "ssl:0:interface=127.0.0.1:privateKey=" + self.certificate
        port = await tls.serverEndpoint(reactor, description).listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    async def test_untrustedServerIsRefused(self):
        number = await self._listenTLS()
        with self.assertRaises(errors.CertificateError) as caught:
            await connect(reactor, "127.0.0.1:{}".format(number), tls=ClientTLS(cafile=self.stranger))
        self.assertIn("the certificate of 127.0.0.1 could not be verified", str(caught.exception))
        with self.assertRaises(errors.CertificateError) as caught:
            await connect(reactor, "ssl:host=localhost:port={}".format(number))
        self.assertIn("the certificate of localhost could not be verified", str(caught.exception))

    async def test_tlsClientAgainstPlainServer(self):
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            FtxServerFactory(FilesystemStorage(self.root), reactor)
        )
        self.addCleanup(port.stopListening)
        with self.assertRaises(errors.TLSError) as caught:
            await connect(reactor, "127.0.0.1:{}".format(port.getHost().port), tls=ClientTLS(cafile=self.ca))
        self.assertIn("did not answer in TLS", str(caught.exception))

    async def test_plainClientAgainstTLSServer(self):
        """
        The TLS server waits for a handshake the plain client never starts;
        the greeting timer, on a Clock, ends the wait.
        """
        number = await self._listenTLS()
        clock = Clock()
        made = Deferred()

        class Watched(FtxClientProtocol):
            def connectionMade(self):
                FtxClientProtocol.connectionMade(self)
                # Once connect has set its timer, on the next turn.
                reactor.callLater(0, made.callback, None)

        class WatchedFactory(FtxClientFactory):
            protocol = Watched

        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", number)
        d = connect(clock, endpoint, timeout=5, factory=WatchedFactory(reactor))
        await made
        # The TLS probe after 1 s, the greeting timeout after 5 s.
        self.assertEqual(sorted(call.getTime() for call in clock.getDelayedCalls()), [1.0, 5.0])
        clock.advance(5)
        with self.assertRaises(errors.ConnectionLost) as caught:
            await d
        self.assertIn("if it is a TLS server, connect with --tls", str(caught.exception))


class ExportsTests(SynchronousTestCase):
    """
    Every public name is importable from where it is listed.
    """

    def test_packages(self):
        import ftx.client
        import ftx.errors
        import ftx.server

        for module in (ftx.client, ftx.server, ftx.errors):
            self.assertTrue(module.__all__)
            for name in module.__all__:
                self.assertIsNotNone(getattr(module, name), (module.__name__, name))
        for name in ("connect", "FtxClient", "FtxClientFactory", "FtxClientProtocol", "ClientTLS", "endpointFromAddress"):
            self.assertIn(name, ftx.client.__all__)

    def test_clientModules(self):
        import importlib

        for name in ("api", "client", "protocol", "exchanges", "localfiles", "replies", "results", "smallfiles", "udp"):
            module = importlib.import_module("ftx.client." + name)
            for public in module.__all__:
                self.assertTrue(hasattr(module, public), (name, public))

    def test_clientPackageLoadsLazily(self):
        """
        Importing ftx.client and its small modules loads neither the
        reactor nor TLS, so the command line can still leave TLS out.
        """
        code = (
            "import sys, ftx.client, ftx.client.localfiles, ftx.client.results, ftx._io.endpoints; "
            "print(sorted(m for m in ('twisted.internet.reactor', 'twisted.internet.tcp', 'OpenSSL') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "[]")
