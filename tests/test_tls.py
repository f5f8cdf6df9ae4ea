"""
TLS over real loopback sockets with certificates made by trustme: the
round trip, the refusals a user must see clearly (wrong host name,
unknown authority, plain server), insecure mode, and client certificates.
"""

import os
import subprocess
import sys

import pytest
import pytest_twisted
import trustme
from twisted.internet import reactor
from twisted.logger import LogLevel, capturedLogs
from twisted.python import usage

from ftx import errors
from ftx._io import tls
from ftx.client.api import ClientTLS, connect
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.support import (
    ServerProcess,
    digestOf,
    listenInProcess,
    runFtx,
    sha1,
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


@pytest.fixture
def pki(tmp_path):
    folder = tmp_path / "pki"
    folder.mkdir()
    return PKI(folder)


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    (path / "hello.txt").write_bytes(b"hello\r\n\x00world")
    return path


async def _listenTLS(root, certificate, clientCA=None):
    factory = FtxServerFactory(FilesystemStorage(str(root)), reactor)
    endpoint = tls.serverEndpoint(reactor, "ssl:0:interface=127.0.0.1:privateKey=" + certificate, clientCA)
    port = await endpoint.listen(factory)
    return port, port.getHost().port


async def _refused(address, **options):
    """
    The error connect fails with; the test fails if it connects.
    """
    try:
        client = await connect(reactor, address, **options)
    except errors.FtxError as e:
        return e
    await client.quit()
    raise AssertionError("connected although it should have been refused")


@pytest_twisted.ensureDeferred
async def test_roundTripOverTLSIsByteIdentical(tmp_path, pki, root):
    """
    sget and put through an ssl: address verified against the CA come back
    byte for byte, and so does a tls=True session to HOST:PORT.
    """
    digest = writeRandom(str(root / "random.bin"), 3 << 20, seed=7)
    local = tmp_path / "local"
    local.mkdir()
    port, number = await _listenTLS(root, pki.server)
    try:
        client = await connect(reactor, "ssl:host=127.0.0.1:port={}".format(number), tls=ClientTLS(cafile=pki.serverCA))
        try:
            for name in ("random.bin", "hello.txt"):
                transfer = await client.sget(name, str(local / name))
                assert sha1(str(local / name)) == sha1(str(root / name))
                assert transfer.checksum == "xxh128"
                assert transfer.digest == digestOf(str(local / name), "xxh128")
                await client.put(str(local / name), "back/" + name)
                assert (root / "back" / name).read_bytes() == (root / name).read_bytes()
            assert transfer.transferred == os.path.getsize(root / "hello.txt")
            assert sha1(str(root / "back" / "random.bin")) == digest
        finally:
            await client.quit()
        client = await connect(reactor, "localhost:{}".format(number), tls=ClientTLS(cafile=pki.serverCA))
        try:
            assert [e.name for e in await client.list("hello.txt")] == ["hello.txt"]
            assert interfacesOf(client) is True
        finally:
            await client.quit()
    finally:
        await port.stopListening()


def interfacesOf(client):
    from twisted.internet.interfaces import ISSLTransport

    return ISSLTransport.providedBy(client.protocol.transport)


@pytest_twisted.ensureDeferred
async def test_wrongHostNameIsRefusedClearly(pki, root):
    port, number = await _listenTLS(root, pki.otherName)
    try:
        error = await _refused("127.0.0.1:{}".format(number), tls=ClientTLS(cafile=pki.serverCA))
        assert isinstance(error, errors.CertificateError)
        assert "not valid for the host name 127.0.0.1" in str(error)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_untrustedAuthorityIsRefusedClearly(pki, root):
    """
    A certificate from a CA the client was not given is refused, whether
    the client trusts another CA or (by default) the system's store.
    """
    port, number = await _listenTLS(root, pki.server)
    try:
        for options in (dict(tls=ClientTLS(cafile=pki.strangerCA)), dict()):
            error = await _refused("ssl:host=127.0.0.1:port={}".format(number), **options)
            assert isinstance(error, errors.CertificateError), error
            assert "could not be verified" in str(error) and "--cafile" in str(error)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_connectWithAnSSLAddressVerifiesToo(pki, root):
    """
    ftx.client.api.connect with an ssl: string verifies the server, unlike
    Twisted's own ssl: client, and trusts the CAs of caCertsDir.
    """
    port, number = await _listenTLS(root, pki.server)
    try:
        with pytest.raises(errors.CertificateError):
            await connect(reactor, "ssl:host=127.0.0.1:port={}".format(number))
        client = await connect(
            reactor, "ssl:host=127.0.0.1:port={}:caCertsDir={}".format(number, os.path.dirname(pki.serverCA))
        )
        assert await client.hash("hello.txt") == sha1(str(root / "hello.txt"))
        await client.quit()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_insecureSkipsVerification(pki, root):
    port, number = await _listenTLS(root, pki.otherName)
    try:
        client = await connect(reactor, "127.0.0.1:{}".format(number), tls=ClientTLS(insecure=True))
        try:
            assert [e.name for e in await client.list()] == ["hello.txt"]
            assert interfacesOf(client) is True
        finally:
            await client.quit()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_tlsClientAgainstPlainServer(pki, root):
    port = await listenInProcess(reactor, str(root))
    try:
        error = await _refused("127.0.0.1:{}".format(port.getHost().port), tls=ClientTLS(cafile=pki.serverCA))
        assert isinstance(error, errors.TLSError) and not isinstance(error, errors.CertificateError)
        assert "did not answer in TLS" in str(error)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_plainClientAgainstTLSServerGivesUpWithAHint(pki, root):
    """
    Without TLS the client would wait for a greeting the TLS server never
    sends in the clear; it gives up after the greeting timeout and says why.
    """
    port, number = await _listenTLS(root, pki.server)
    try:
        error = await _refused("127.0.0.1:{}".format(number), timeout=0.3)
        assert isinstance(error, errors.ConnectionLost) and "--tls" in str(error)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_clientCertificateRequiredAcceptedAndRefused(pki, root):
    """
    With a client CA, a client without a certificate or with one from
    another CA is refused with a TLSError; one signed by that CA works.
    """
    port, number = await _listenTLS(root, pki.server, clientCA=pki.clientCA)
    address = "127.0.0.1:{}".format(number)
    try:
        for certificate in (None, pki.strangerClient):
            error = await _refused(address, tls=ClientTLS(cafile=pki.serverCA, certificate=certificate))
            assert type(error) is errors.TLSError, error
            assert "certificate" in str(error)
        with capturedLogs() as events:
            client = await connect(reactor, address, tls=ClientTLS(cafile=pki.serverCA, certificate=pki.client))
            try:
                assert await client.hash("hello.txt") == sha1(str(root / "hello.txt"))
            finally:
                await client.quit()
        assert any(e.get("log_format", "").endswith("TLS client certificate {subject}") for e in events)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_noWarningForPasswordsOverTLS(pki, root):
    from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse

    from ftx.server.accounts import AccessControl

    storage = FilesystemStorage(str(root))
    access = AccessControl(storage, checkers=[InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")], reactor=reactor)
    factory = FtxServerFactory(storage, reactor, access=access)
    port = await tls.serverEndpoint(reactor, "ssl:0:interface=127.0.0.1:privateKey=" + pki.server).listen(factory)
    try:
        with capturedLogs() as events:
            client = await connect(
                reactor, "127.0.0.1:{}".format(port.getHost().port), tls=ClientTLS(cafile=pki.serverCA),
                credentials=("alice", "secret"),
            )
            await client.quit()
        assert not [e for e in events if e.get("log_level") == LogLevel.warn]
        assert any("logged in as" in e.get("log_format", "") for e in events)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_twistdServesTLSWithClientCertificatesAndAccounts(tmp_path, pki, root):
    """
    The plugin as a user runs it: an ssl: port, --client-ca and --auth.
    """
    port = "ssl:0:interface=127.0.0.1:privateKey=" + pki.server
    local = tmp_path / "got.txt"
    with ServerProcess(str(root), "--client-ca", pki.clientCA, "--auth", "memory:alice:secret", port=port) as server:
        client = await connect(
            reactor, "ssl:host=127.0.0.1:port={}".format(server.port),
            tls=ClientTLS(cafile=pki.serverCA, certificate=pki.client), credentials=("alice", "secret"),
        )
        try:
            await client.sget("hello.txt", str(local))
        finally:
            await client.quit()
        error = await _refused(server.address, tls=ClientTLS(cafile=pki.serverCA), credentials=("alice", "secret"))
    assert local.read_bytes() == (root / "hello.txt").read_bytes()
    assert type(error) is errors.TLSError


def test_clientCANeedsAnSSLPort(pki, tmp_path):
    from ftx.server.tap import Options

    with pytest.raises(usage.UsageError, match="needs an ssl: port"):
        Options().parseOptions(["--root", str(tmp_path), "--port", "tcp:0", "--client-ca", pki.clientCA])
    with pytest.raises(usage.UsageError, match="cannot read"):
        port = "ssl:0:privateKey=" + pki.server
        Options().parseOptions(["--root", str(tmp_path), "--port", port, "--client-ca", str(tmp_path / "missing.pem")])
    with pytest.raises(errors.TLSError, match="TCP only"):
        tls.clientEndpoint(reactor, "unix:path=/run/ftx.sock")


def test_commandLineOverTLS(tmp_path, pki, root):
    """
    The ftx command, which leaves the TLS libraries out of a plain
    connection (ftx._io.notls), still loads them when TLS is asked for: a
    listing and a download over an ssl: twistd work from the command line.
    """
    port = "ssl:0:interface=127.0.0.1:privateKey=" + pki.server
    local = tmp_path / "local"
    local.mkdir()
    with ServerProcess(str(root), port=port) as server:
        listed = runFtx(["--server", server.address, "--tls", "--cafile", pki.serverCA, "--quiet", "list"])
        fetched = runFtx(
            ["--server", server.address, "--tls", "--cafile", pki.serverCA, "--dir", str(local), "--quiet", "sget", "hello.txt"]
        )
    assert listed.returncode == 0, listed.stderr
    assert b"hello.txt" in listed.stdout
    assert fetched.returncode == 0, fetched.stderr
    assert (local / "hello.txt").read_bytes() == (root / "hello.txt").read_bytes()


def test_plainProcessLeavesTheTLSStackOut():
    """
    After leaveOutTLS, importing the reactor does not import pyOpenSSL.
    """
    code = (
        "import sys; from ftx._io import notls; assert notls.leaveOutTLS(); "
        "import twisted.internet.reactor; "
        "print(sys.modules.get('OpenSSL', 'absent'), 'cryptography' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "False"]
