"""
Real servers on real loopback sockets with real files: the round trips a
user depends on, the plugin as twistd runs it, and the promise that one
client's slow work does not stall another.
"""

import os
import subprocess
import threading
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from ftx import errors
from ftx.client.api import connect
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.support import (
    BIN,
    ServerProcess,
    digestOf,
    listenInProcess,
    sha1,
    writeRandom,
)

MiB = 1 << 20


def _sleep(seconds):
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def _session(root):
    port = await listenInProcess(reactor, str(root))
    client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
    return port, client


@pytest_twisted.ensureDeferred
async def test_roundTripsAreByteIdentical(tmp_path):
    """
    An empty file, one full of CR/LF/NUL, 100 MiB of random bytes and a
    UTF-8 name in a subdirectory go down and back up unchanged.
    """
    root, local, back = tmp_path / "root", tmp_path / "local", tmp_path / "back"
    for d in (root, local, back):
        d.mkdir()
    (root / "empty").write_bytes(b"")
    (root / "crlf.bin").write_bytes(b"\r\n\x00\r\r\n\n\x00" * 100000)
    bigDigest = writeRandom(str(root / "big.bin"), 100 * MiB, seed=1)
    (root / "ünï cødé" / "sub").mkdir(parents=True)
    (root / "ünï cødé" / "sub" / "fïlé ñame.txt").write_bytes("data ✓\n".encode())
    names = ["empty", "crlf.bin", "big.bin", "ünï cødé/sub/fïlé ñame.txt"]
    port, client = await _session(root)
    try:
        for name in names:
            target = str(local / name.replace("/", "_"))
            transfer = await client.sget(name, target)
            assert sha1(target) == sha1(str(root / name))
            assert transfer.digest == digestOf(target, transfer.checksum)
            assert os.path.getsize(target) == os.path.getsize(root / name)
            sent = await client.put(target, "back/" + name)
            assert sent.digest == transfer.digest
            assert digestOf(str(root / "back" / name), sent.checksum) == sent.digest
        assert sha1(str(root / "back" / "big.bin")) == bigDigest
        listed = {e.name: e.size for e in await client.list("back")}
        assert listed == {"back/" + n: os.path.getsize(root / n) for n in names}
    finally:
        await client.quit()
        await port.stopListening()


class _GatedStorage(FilesystemStorage):
    """
    Hashing that cannot finish until the test opens the gate: it proves the
    server answered others while a hash was still running.
    """

    def __init__(self, root):
        super().__init__(root)
        self.started = threading.Event()
        self.gate = threading.Event()
        self.finishedAt = None

    def digest(self, name, length=None):
        self.started.set()
        result = super().digest(name, length)
        self.gate.wait(30)
        self.finishedAt = time.monotonic()
        return result


@pytest_twisted.ensureDeferred
async def test_listAnsweredWhileAnotherClientHashes(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    digest = writeRandom(str(root / "large.bin"), 64 * MiB, seed=2)
    storage = _GatedStorage(str(root))
    port = await listenInProcess(reactor, str(root), factory=FtxServerFactory(storage, reactor))
    address = "127.0.0.1:{}".format(port.getHost().port)
    hasher = await connect(reactor, address)
    lister = await connect(reactor, address)
    try:
        hashed = hasher.hash("large.bin")
        for _ in range(200):
            if storage.started.is_set():
                break
            await _sleep(0.01)
        assert storage.started.is_set()
        entries = await lister.list()
        answeredAt = time.monotonic()
        assert [e.name for e in entries] == ["large.bin"]
        assert not hashed.called
        storage.gate.set()
        assert await hashed == digest
        assert storage.finishedAt > answeredAt
    finally:
        storage.gate.set()
        await hasher.quit()
        await lister.quit()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_partialUploadNeverUnderFinalName(tmp_path):
    """
    While an upload's body is still arriving the final name does not exist;
    a dropped connection leaves only the hidden partial file.
    """
    root = tmp_path / "root"
    root.mkdir()
    port = await listenInProcess(reactor, str(root))
    from twisted.internet.endpoints import TCP4ClientEndpoint
    from twisted.internet.protocol import Factory, Protocol

    class Raw(Protocol):
        def __init__(self):
            self.received = b""

        def dataReceived(self, data):
            self.received += data

    raw = Raw()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
    await endpoint.connect(Factory.forProtocol(lambda: raw))
    try:
        raw.transport.write(b"put final.bin 1000\r\n")
        for _ in range(200):
            if b"350 0" in raw.received:
                break
            await _sleep(0.01)
        raw.transport.write(b"x" * 500)
        await _sleep(0.2)
        assert not (root / "final.bin").exists()
        assert (root / ".final.bin.ftx-partial").exists()
        raw.transport.abortConnection()
        await _sleep(0.2)
        assert not (root / "final.bin").exists()
        assert os.listdir(root) == [".final.bin.ftx-partial"]
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_pendingRequestsFailWhenConnectionDrops(tmp_path):
    """
    A request in flight when the connection drops fails with
    ConnectionLost, and so does any later one; the partial download stays.
    """
    root = tmp_path / "root"
    root.mkdir()
    writeRandom(str(root / "f.bin"), 64 * MiB)
    port, client = await _session(root)
    try:
        started = []
        download = client.sget("f.bin", str(tmp_path / "f.bin"), progress=lambda n, done, total: started.append(done))
        for _ in range(500):
            if started and started[-1] > 0:
                break
            await _sleep(0.01)
        client.protocol.transport.abortConnection()
        with pytest.raises(errors.ConnectionLost):
            await download
        with pytest.raises(errors.ConnectionLost):
            await client.df()
        assert not (tmp_path / "f.bin").exists()
        assert (tmp_path / ".f.bin.ftx-partial").exists()
    finally:
        await port.stopListening()


def test_twistdListsThePlugin():
    out = subprocess.run([os.path.join(BIN, "twistd"), "--help"], capture_output=True, timeout=60)
    assert b"ftx" in out.stdout


def test_twistdRejectsMissingRoot(tmp_path):
    out = subprocess.run(
        [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "ftx", "--root", str(tmp_path / "nope")],
        capture_output=True, timeout=60,
    )
    assert out.returncode != 0
    assert b"--root must be an existing directory" in out.stdout + out.stderr


@pytest_twisted.ensureDeferred
async def test_twistdServerServesAndLogs(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello\n")
    with ServerProcess(str(root)) as server:
        client = await connect(reactor, server.address)
        await client.sget("hello.txt", str(tmp_path / "got.txt"))
        with pytest.raises(errors.NotFound):
            await client.hash("missing.txt")
        await client.quit()
        assert (tmp_path / "got.txt").read_bytes() == b"hello\n"
        for _ in range(100):
            if "sget hello.txt 6 bytes" in server.output():
                break
            await _sleep(0.05)
        log = server.output()
        maps = _mappedFiles(server.process.pid)
    assert "sget hello.txt 6 bytes" in log
    assert "hash refused: 404" in log
    # A plain-TCP server leaves the TLS stack out (ftx.server.twistd).
    assert maps is None or not any("cryptography" in path for path in maps)


def _mappedFiles(pid):
    """
    The files a process has mapped (its loaded libraries), or L{None}
    where /proc cannot tell.
    """
    try:
        with open("/proc/{}/maps".format(pid)) as f:
            return {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return None


def test_embeddingExampleRuns(tmp_path):
    """
    The example in examples/ works as its docstring says.
    """
    root = tmp_path / "root"
    root.mkdir()
    (root / "some file.txt").write_bytes(b"example content\n")
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "fetch_and_upload.py")
    with ServerProcess(str(root)) as server:
        out = subprocess.run(
            [os.path.join(BIN, "python"), example, server.address, "some file.txt"],
            capture_output=True, timeout=60, cwd=str(tmp_path),
        )
    assert out.returncode == 0, out.stderr
    assert b"matches" in out.stdout
    assert (root / "copy-of-some file.txt").read_bytes() == b"example content\n"
