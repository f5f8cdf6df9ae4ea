"""
TLS over real loopback sockets with certificates made by trustme: the
round trip, the refusals a user must see clearly (wrong host name,
unknown authority, plain server), insecure mode, and client certificates.
"""

import os
import subprocess
import sys
from pathlib import Path

import trustme
from twisted.internet import reactor
from twisted.logger import LogLevel, capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

import ftx.client.session
from ftx import errors
from ftx._io import tls
from ftx.client.api import connect
from ftx.client.session import openSession
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.support import (
    ServerProcess,
    closeSocketsAfter,
    digestOf,
    listenInProcess,
    runFtx,
    sha1,
    temporaryFolder,
    writeRandom,
)


class PKI:
    """
    A server CA with a certificate for localhost and 127.0.0.1, a server
    certificate for another name, a client CA with one client, and a
    stranger CA that signed nothing we trust.
    """

    def __init__(self, folder):
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

    def _write(self, name, blob):
        path = str(self.folder / name)
        blob.write_to_path(path)
        return path


def _makeFolders(case):
    """
    A PKI, and a root holding hello.txt, in a temporary folder.
    """
    top = Path(temporaryFolder(case))
    (top / "pki").mkdir()
    root = top / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello\r\n\x00world")
    return top, PKI(top / "pki"), root


def _cutWhatQuitLeftOpen(factory):
    """
    Abort the server's connections still open. After C{quit} over TLS the
    server's connection does not close: its write producer stays
    registered, so TLS waits for it before closing, and the client waits
    for the server's close_notify. (Over plain TCP it closes.)
    """
    for protocol in list(factory.admission.active):
        protocol.transport.abortConnection()


def interfacesOf(client):
    from twisted.internet.interfaces import ISSLTransport

    return ISSLTransport.providedBy(client.protocol.transport)


class TLSTests(TestCase):
    """
    TLS servers in this process and as twistd, on loopback ports.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        self.top, self.pki, self.root = _makeFolders(self)

    async def listenTLS(self, certificate, clientCA=None):
        factory = FtxServerFactory(FilesystemStorage(str(self.root)), reactor)
        endpoint = tls.serverEndpoint(reactor, "ssl:0:interface=127.0.0.1:privateKey=" + certificate, clientCA)
        port = await endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(_cutWhatQuitLeftOpen, factory)
        return port.getHost().port

    async def refused(self, address, **options):
        """
        The error openSession fails with; the test fails if it connects.
        """
        try:
            client = await openSession(reactor, address, **options)
        except errors.FtxError as e:
            return e
        await client.quit()
        self.fail("connected although it should have been refused")

    async def test_roundTripOverTLSIsByteIdentical(self):
        """
        sget and put through an ssl: address verified against the CA come back
        byte for byte, and so does a tls=True session to HOST:PORT.
        """
        pki, root = self.pki, self.root
        digest = writeRandom(str(root / "random.bin"), 3 << 20, seed=7)
        local = self.top / "local"
        local.mkdir()
        number = await self.listenTLS(pki.server)
        client = await openSession(reactor, "ssl:host=127.0.0.1:port={}".format(number), cafile=pki.serverCA)
        try:
            for name in ("random.bin", "hello.txt"):
                transfer = await client.sget(name, str(local / name))
                self.assertEqual(sha1(str(local / name)), sha1(str(root / name)))
                self.assertEqual(transfer.checksum, "xxh128")
                self.assertEqual(transfer.digest, digestOf(str(local / name), "xxh128"))
                await client.put(str(local / name), "back/" + name)
                self.assertEqual((root / "back" / name).read_bytes(), (root / name).read_bytes())
            self.assertEqual(transfer.transferred, os.path.getsize(root / "hello.txt"))
            self.assertEqual(sha1(str(root / "back" / "random.bin")), digest)
        finally:
            await client.quit()
        client = await openSession(reactor, "localhost:{}".format(number), tls=True, cafile=pki.serverCA)
        try:
            self.assertEqual([e.name for e in await client.list("hello.txt")], ["hello.txt"])
            self.assertIs(interfacesOf(client), True)
        finally:
            await client.quit()

    async def test_wrongHostNameIsRefusedClearly(self):
        number = await self.listenTLS(self.pki.otherName)
        error = await self.refused("127.0.0.1:{}".format(number), tls=True, cafile=self.pki.serverCA)
        self.assertIsInstance(error, errors.CertificateError)
        self.assertIn("not valid for the host name 127.0.0.1", str(error))

    async def test_untrustedAuthorityIsRefusedClearly(self):
        """
        A certificate from a CA the client was not given is refused, whether
        the client trusts another CA or (by default) the system's store.
        """
        number = await self.listenTLS(self.pki.server)
        for options in (dict(cafile=self.pki.strangerCA), dict()):
            error = await self.refused("ssl:host=127.0.0.1:port={}".format(number), **options)
            self.assertIsInstance(error, errors.CertificateError)
            self.assertTrue("could not be verified" in str(error) and "--cafile" in str(error), error)

    async def test_connectWithAnSSLAddressVerifiesToo(self):
        """
        ftx.client.api.connect with an ssl: string verifies the server, unlike
        Twisted's own ssl: client, and trusts the CAs of caCertsDir.
        """
        number = await self.listenTLS(self.pki.server)
        await self.assertFailure(connect(reactor, "ssl:host=127.0.0.1:port={}".format(number)), errors.ConnectionLost)
        client = await connect(
            reactor, "ssl:host=127.0.0.1:port={}:caCertsDir={}".format(number, os.path.dirname(self.pki.serverCA))
        )
        self.assertEqual(await client.hash("hello.txt"), sha1(str(self.root / "hello.txt")))
        await client.quit()

    async def test_insecureSkipsVerification(self):
        number = await self.listenTLS(self.pki.otherName)
        client = await openSession(reactor, "127.0.0.1:{}".format(number), insecure=True)
        try:
            self.assertEqual([e.name for e in await client.list()], ["hello.txt"])
            self.assertIs(interfacesOf(client), True)
        finally:
            await client.quit()

    async def test_tlsClientAgainstPlainServer(self):
        port = await listenInProcess(reactor, str(self.root))
        self.addCleanup(port.stopListening)
        error = await self.refused("127.0.0.1:{}".format(port.getHost().port), tls=True, cafile=self.pki.serverCA)
        self.assertTrue(isinstance(error, errors.TLSError) and not isinstance(error, errors.CertificateError), error)
        self.assertIn("did not answer in TLS", str(error))

    async def test_plainClientAgainstTLSServerGivesUpWithAHint(self):
        """
        Without TLS the client would wait for a greeting the TLS server never
        sends in the clear; it gives up after the greeting timeout and says why.
        """
        # openSession takes one reactor for its connection and its timer, so
        # the timeout is shortened rather than passed on a Clock.
        self.patch(ftx.client.session, "GREETING_TIMEOUT", 0.3)
        number = await self.listenTLS(self.pki.server)
        error = await self.refused("127.0.0.1:{}".format(number))
        self.assertTrue(isinstance(error, errors.ConnectionLost) and "--tls" in str(error), error)

    async def test_clientCertificateRequiredAcceptedAndRefused(self):
        """
        With a client CA, a client without a certificate or with one from
        another CA is refused with a TLSError; one signed by that CA works.
        """
        pki = self.pki
        number = await self.listenTLS(pki.server, clientCA=pki.clientCA)
        address = "127.0.0.1:{}".format(number)
        for certificate in (None, pki.strangerClient):
            error = await self.refused(address, cafile=pki.serverCA, certificate=certificate)
            self.assertIs(type(error), errors.TLSError, error)
            self.assertIn("certificate", str(error))
        with capturedLogs() as events:
            client = await openSession(reactor, address, cafile=pki.serverCA, certificate=pki.client)
            try:
                self.assertEqual(await client.hash("hello.txt"), sha1(str(self.root / "hello.txt")))
            finally:
                await client.quit()
        self.assertTrue(any(e.get("log_format", "").endswith("TLS client certificate {subject}") for e in events))

    async def test_noWarningForPasswordsOverTLS(self):
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse

        from ftx.server.accounts import AccessControl

        storage = FilesystemStorage(str(self.root))
        access = AccessControl(storage, checkers=[InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")], reactor=reactor)
        factory = FtxServerFactory(storage, reactor, access=access)
        port = await tls.serverEndpoint(reactor, "ssl:0:interface=127.0.0.1:privateKey=" + self.pki.server).listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(_cutWhatQuitLeftOpen, factory)
        with capturedLogs() as events:
            client = await openSession(
                reactor, "127.0.0.1:{}".format(port.getHost().port), cafile=self.pki.serverCA, user="alice", password="secret"
            )
            await client.quit()
        self.assertEqual([e for e in events if e.get("log_level") == LogLevel.warn], [])
        self.assertTrue(any("logged in as" in e.get("log_format", "") for e in events))

    async def test_twistdServesTLSWithClientCertificatesAndAccounts(self):
        """
        The plugin as a user runs it: an ssl: port, --client-ca and --auth.
        """
        pki, root = self.pki, self.root
        port = "ssl:0:interface=127.0.0.1:privateKey=" + pki.server
        local = self.top / "got.txt"
        with ServerProcess(str(root), "--client-ca", pki.clientCA, "--auth", "memory:alice:secret", port=port) as server:
            client = await openSession(
                reactor, "ssl:host=127.0.0.1:port={}".format(server.port),
                cafile=pki.serverCA, certificate=pki.client, user="alice", password="secret",
            )
            try:
                await client.sget("hello.txt", str(local))
            finally:
                await client.quit()
            error = await self.refused(server.address, cafile=pki.serverCA, user="alice", password="secret")
        self.assertEqual(local.read_bytes(), (root / "hello.txt").read_bytes())
        self.assertIs(type(error), errors.TLSError)


class AddressAndOptionTests(SynchronousTestCase):
    """
    Addresses, options and the command line; no reactor in this process.
    """

    def test_addressesTakenApart(self):
        self.assertEqual(
            tls.parseAddress("ssl:host=files.example.org:port=990:caCertsDir=/ca"),
            tls.Address("ssl", "files.example.org", 990, {"caCertsDir": "/ca"}),
        )
        self.assertEqual(tls.parseAddress("tls:example.org:443"), tls.Address("tls", "example.org", 443, {}))
        self.assertEqual(tls.parseAddress("tcp6:host=\\:\\:1:port=7"), tls.Address("tcp", "::1", 7, {}))
        self.assertEqual(tls.parseAddress("[::1]:7"), tls.Address("tcp", "::1", 7, {}))
        self.assertEqual(tls.parseAddress("1234").host, "localhost")
        self.assertIsNone(tls.parseAddress("unix:path=/run/ftx.sock").kind)
        self.assertRaises(errors.FtxError, tls.parseAddress, "ssl:host=x")

    def test_clientCANeedsAnSSLPort(self):
        from ftx.server.tap import Options

        top, pki, root = _makeFolders(self)
        error = self.assertRaises(
            usage.UsageError, Options().parseOptions, ["--root", str(top), "--port", "tcp:0", "--client-ca", pki.clientCA]
        )
        self.assertIn("needs an ssl: port", str(error))
        port = "ssl:0:privateKey=" + pki.server
        missing = str(top / "missing.pem")
        error = self.assertRaises(
            usage.UsageError, Options().parseOptions, ["--root", str(top), "--port", port, "--client-ca", missing]
        )
        self.assertIn("cannot read", str(error))
        error = self.assertRaises(errors.TLSError, tls.clientEndpoint, reactor, "unix:path=/run/ftx.sock")
        self.assertIn("TCP only", str(error))

    def test_commandLineOverTLS(self):
        """
        The ftx command, which leaves the TLS libraries out of a plain
        connection (ftx._io.notls), still loads them when TLS is asked for: a
        listing and a download over an ssl: twistd work from the command line.
        """
        top, pki, root = _makeFolders(self)
        port = "ssl:0:interface=127.0.0.1:privateKey=" + pki.server
        local = top / "local"
        local.mkdir()
        with ServerProcess(str(root), port=port) as server:
            listed = runFtx(["--server", server.address, "--tls", "--cafile", pki.serverCA, "--quiet", "list"])
            fetched = runFtx(
                ["--server", server.address, "--tls", "--cafile", pki.serverCA, "--dir", str(local), "--quiet", "sget", "hello.txt"]
            )
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(b"hello.txt", listed.stdout)
        self.assertEqual(fetched.returncode, 0, fetched.stderr)
        self.assertEqual((local / "hello.txt").read_bytes(), (root / "hello.txt").read_bytes())

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
