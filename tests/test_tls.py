"""
TLS over real loopback sockets with certificates made by trustme: the
round trip, the refusals a user must see clearly (wrong host name,
unknown authority, plain server), insecure mode, and client certificates.
"""

import os
import subprocess
import sys

import trustme
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet import reactor
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx._io import tls
from ftx.client.api import ClientTLS, connect
from ftx.server.accounts import AccessControl
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from ftx.server.tap import Options
from tests.connections import Connections
from tests.support import ServerProcess, digestOf, runFtx, sha1, temporaryFolder, writeRandom

HELLO = b"hello\r\n\x00world"


class PKI:
    """
    A server CA with a certificate for localhost and 127.0.0.1, a server
    certificate for another name, a client CA with one client, and a
    stranger CA that signed nothing we trust.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        serverCA, clientCA, stranger = trustme.CA(), trustme.CA(), trustme.CA()
        self.serverCA = self._write("server-ca.pem", serverCA.cert_pem)
        self.clientCA = self._write("client-ca.pem", clientCA.cert_pem)
        self.strangerCA = self._write("stranger-ca.pem", stranger.cert_pem)
        self.server = self._write(
            "server.pem", serverCA.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem
        )
        self.otherName = self._write(
            "other-name.pem", serverCA.issue_cert("files.example.org").private_key_and_cert_chain_pem
        )
        self.client = self._write("client.pem", clientCA.issue_cert("client.example").private_key_and_cert_chain_pem)
        self.strangerClient = self._write(
            "stranger-client.pem", stranger.issue_cert("client.example").private_key_and_cert_chain_pem
        )

    def _write(self, name: str, blob) -> str:
        path = os.path.join(self.folder, name)
        blob.write_to_path(path)
        return path


def workspace(case: SynchronousTestCase):
    """
    A temporary folder holding a L{PKI} (in C{pki/}, alone, as a
    C{caCertsDir}) and a server root (C{root/}) with C{hello.txt}; returns
    the folder, the PKI and the root, by absolute path.
    """
    base = temporaryFolder(case, "ftx-tls-")
    os.mkdir(os.path.join(base, "pki"))
    root = os.path.join(base, "root")
    os.mkdir(root)
    with open(os.path.join(root, "hello.txt"), "wb") as f:
        f.write(HELLO)
    return base, PKI(os.path.join(base, "pki")), root


def readBytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def interfacesOf(client) -> bool:
    return ISSLTransport.providedBy(client.protocol.transport)


async def refused(address, **options):
    """
    The error connect fails with; the test fails if it connects.
    """
    try:
        client = await connect(reactor, address, **options)
    except errors.FtxError as e:
        return e
    await client.quit()
    raise AssertionError("connected although it should have been refused")


class InProcessTLSTests(TestCase):
    """
    A server in this process, over TLS unless said otherwise, and clients
    through L{connect}.
    """

    def setUp(self) -> None:
        self.base, self.pki, self.root = workspace(self)
        self.connections = Connections(self, reactor)

    async def test_roundTripOverTLSIsByteIdentical(self):
        """
        sget and put through an ssl: address verified against the CA come back
        byte for byte, and so does a tls=True session to HOST:PORT.
        """
        root, pki = self.root, self.pki
        digest = writeRandom(os.path.join(root, "random.bin"), 3 << 20, seed=7)
        local = os.path.join(self.base, "local")
        os.mkdir(local)
        port, number = await self.connections.listenTLS(root, pki.server)
        client = await connect(reactor, "ssl:host=127.0.0.1:port={}".format(number), tls=ClientTLS(cafile=pki.serverCA))
        try:
            for name in ("random.bin", "hello.txt"):
                transfer = await client.sget(name, os.path.join(local, name))
                self.assertEqual(sha1(os.path.join(local, name)), sha1(os.path.join(root, name)))
                self.assertEqual(transfer.checksum, "xxh128")
                self.assertEqual(transfer.digest, digestOf(os.path.join(local, name), "xxh128"))
                await client.put(os.path.join(local, name), "back/" + name)
                self.assertEqual(readBytes(os.path.join(root, "back", name)), readBytes(os.path.join(root, name)))
            self.assertEqual(transfer.transferred, os.path.getsize(os.path.join(root, "hello.txt")))
            self.assertEqual(sha1(os.path.join(root, "back", "random.bin")), digest)
        finally:
            await client.quit()
        client = await connect(reactor, "localhost:{}".format(number), tls=ClientTLS(cafile=pki.serverCA))
        try:
            self.assertEqual([e.name for e in await client.list("hello.txt")], ["hello.txt"])
            self.assertIs(interfacesOf(client), True)
        finally:
            await client.quit()

    async def test_wrongHostNameIsRefusedClearly(self):
        port, number = await self.connections.listenTLS(self.root, self.pki.otherName)
        error = await refused("127.0.0.1:{}".format(number), tls=ClientTLS(cafile=self.pki.serverCA))
        self.assertIsInstance(error, errors.CertificateError)
        self.assertIn("not valid for the host name 127.0.0.1", str(error))

    async def test_untrustedAuthorityIsRefusedClearly(self):
        """
        A certificate from a CA the client was not given is refused, whether
        the client trusts another CA or (by default) the system's store.
        """
        port, number = await self.connections.listenTLS(self.root, self.pki.server)
        for options in (dict(tls=ClientTLS(cafile=self.pki.strangerCA)), dict()):
            error = await refused("ssl:host=127.0.0.1:port={}".format(number), **options)
            self.assertIsInstance(error, errors.CertificateError, error)
            self.assertIn("could not be verified", str(error))
            self.assertIn("--cafile", str(error))

    async def test_connectWithAnSSLAddressVerifiesToo(self):
        """
        ftx.client.api.connect with an ssl: string verifies the server, unlike
        Twisted's own ssl: client, and trusts the CAs of caCertsDir.
        """
        port, number = await self.connections.listenTLS(self.root, self.pki.server)
        await self.assertFailure(connect(reactor, "ssl:host=127.0.0.1:port={}".format(number)), errors.CertificateError)
        client = await connect(
            reactor, "ssl:host=127.0.0.1:port={}:caCertsDir={}".format(number, os.path.dirname(self.pki.serverCA))
        )
        self.assertEqual(await client.hash("hello.txt"), sha1(os.path.join(self.root, "hello.txt")))
        await client.quit()

    async def test_insecureSkipsVerification(self):
        port, number = await self.connections.listenTLS(self.root, self.pki.otherName)
        client = await connect(reactor, "127.0.0.1:{}".format(number), tls=ClientTLS(insecure=True))
        try:
            self.assertEqual([e.name for e in await client.list()], ["hello.txt"])
            self.assertIs(interfacesOf(client), True)
        finally:
            await client.quit()

    async def test_tlsClientAgainstPlainServer(self):
        port = await self.connections.listen(self.root)
        error = await refused("127.0.0.1:{}".format(port.getHost().port), tls=ClientTLS(cafile=self.pki.serverCA))
        self.assertIsInstance(error, errors.TLSError)
        self.assertNotIsInstance(error, errors.CertificateError)
        self.assertIn("did not answer in TLS", str(error))

    async def test_plainClientAgainstTLSServerGivesUpWithAHint(self):
        """
        Without TLS the client would wait for a greeting the TLS server never
        sends in the clear; it gives up after the greeting timeout and says why.
        """
        port, number = await self.connections.listenTLS(self.root, self.pki.server)
        error = await refused("127.0.0.1:{}".format(number), timeout=0.3)
        self.assertIsInstance(error, errors.ConnectionLost)
        self.assertIn("--tls", str(error))

    async def test_clientCertificateRequiredAcceptedAndRefused(self):
        """
        With a client CA, a client without a certificate or with one from
        another CA is refused with a TLSError; one signed by that CA works.
        """
        pki = self.pki
        port, number = await self.connections.listenTLS(self.root, pki.server, clientCA=pki.clientCA)
        address = "127.0.0.1:{}".format(number)
        for certificate in (None, pki.strangerClient):
            error = await refused(address, tls=ClientTLS(cafile=pki.serverCA, certificate=certificate))
            self.assertIs(type(error), errors.TLSError, error)
            self.assertIn("certificate", str(error))
        with capturedLogs() as events:
            client = await connect(reactor, address, tls=ClientTLS(cafile=pki.serverCA, certificate=pki.client))
            try:
                self.assertEqual(await client.hash("hello.txt"), sha1(os.path.join(self.root, "hello.txt")))
            finally:
                await client.quit()
        self.assertTrue(any(e.get("log_format", "").endswith("TLS client certificate {subject}") for e in events))

    async def test_noWarningForPasswordsOverTLS(self):
        storage = FilesystemStorage(self.root)
        access = AccessControl(
            storage, checkers=[InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")], reactor=reactor
        )
        factory = self.connections.serve(FtxServerFactory(storage, reactor, access=access))
        port, number = await self.connections.listenTLS(self.root, self.pki.server, factory=factory)
        with capturedLogs() as events:
            client = await connect(
                reactor, "127.0.0.1:{}".format(number), tls=ClientTLS(cafile=self.pki.serverCA),
                credentials=("alice", "secret"),
            )
            await client.quit()
        self.assertEqual([e for e in events if e.get("log_level") == LogLevel.warn], [])
        self.assertTrue(any("logged in as" in e.get("log_format", "") for e in events))


class TwistdTLSTests(TestCase):
    """
    The plugin as a user runs it, in a C{twistd ftx} subprocess on an
    ssl: port.
    """

    def setUp(self) -> None:
        self.base, self.pki, self.root = workspace(self)
        self.port = "ssl:0:interface=127.0.0.1:privateKey=" + self.pki.server

    async def test_twistdServesTLSWithClientCertificatesAndAccounts(self):
        """
        The plugin as a user runs it: an ssl: port, --client-ca and --auth.
        """
        Connections(self, reactor)
        pki = self.pki
        local = os.path.join(self.base, "got.txt")
        with ServerProcess(self.root, "--client-ca", pki.clientCA, "--auth", "memory:alice:secret", port=self.port) as server:
            client = await connect(
                reactor, "ssl:host=127.0.0.1:port={}".format(server.port),
                tls=ClientTLS(cafile=pki.serverCA, certificate=pki.client), credentials=("alice", "secret"),
            )
            try:
                await client.sget("hello.txt", local)
            finally:
                await client.quit()
            error = await refused(server.address, tls=ClientTLS(cafile=pki.serverCA), credentials=("alice", "secret"))
        self.assertEqual(readBytes(local), HELLO)
        self.assertIs(type(error), errors.TLSError)

    def test_commandLineOverTLS(self):
        """
        The ftx command, which leaves the TLS libraries out of a plain
        connection (ftx._io.notls), still loads them when TLS is asked for: a
        listing and a download over an ssl: twistd work from the command line.
        """
        local = os.path.join(self.base, "local")
        os.mkdir(local)
        cafile = self.pki.serverCA
        with ServerProcess(self.root, port=self.port) as server:
            listed = runFtx(["--server", server.address, "--tls", "--cafile", cafile, "--quiet", "list"])
            fetched = runFtx(
                ["--server", server.address, "--tls", "--cafile", cafile, "--dir", local, "--quiet", "sget", "hello.txt"]
            )
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(b"hello.txt", listed.stdout)
        self.assertEqual(fetched.returncode, 0, fetched.stderr)
        self.assertEqual(readBytes(os.path.join(local, "hello.txt")), HELLO)


class ConfigurationTests(SynchronousTestCase):
    def test_clientCANeedsAnSSLPort(self):
        base, pki, root = workspace(self)
        error = self.assertRaises(
            usage.UsageError,
            Options().parseOptions, ["--root", base, "--port", "tcp:0", "--client-ca", pki.clientCA],
        )
        self.assertRegex(str(error), "needs an ssl: port")
        port = "ssl:0:privateKey=" + pki.server
        error = self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["--root", base, "--port", port, "--client-ca", os.path.join(base, "missing.pem")],
        )
        self.assertRegex(str(error), "cannot read")
        error = self.assertRaises(errors.TLSError, tls.clientEndpoint, reactor, "unix:path=/run/ftx.sock")
        self.assertRegex(str(error), "TCP only")

    def test_plainProcessLeavesTheTLSStackOut(self):
        """
        After leaveOutTLS, importing the reactor does not import pyOpenSSL.
        """
        code = (
            "import sys; from ftx._io import notls; assert notls.leaveOutTLS(); "
            "import twisted.internet.reactor; "
            "print(sys.modules.get('OpenSSL', 'absent'), 'cryptography' in sys.modules)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), ["None", "False"])
