"""
Real servers on real loopback sockets with real files: the round trips a
user depends on, the plugin as twistd runs it, and the promise that one
client's slow work does not stall another.
"""

import os
import subprocess
import threading
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx.client.api import connect
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.support import (
    BIN,
    ServerProcess,
    closeSocketsAfter,
    digestOf,
    listenInProcess,
    sha1,
    temporaryFolder,
    waitUntil,
    writeRandom,
)

MiB = 1 << 20


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


class _Raw(Protocol):
    def __init__(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


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


class LoopbackTests(TestCase):
    """
    Servers in this process on loopback ports, and a twistd subprocess.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        self.top = Path(temporaryFolder(self))

    async def listen(self, root, factory=None):
        port = await listenInProcess(reactor, str(root), factory=factory)
        self.addCleanup(port.stopListening)
        return port

    async def session(self, root):
        port = await self.listen(root)
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
        return port, client

    async def test_roundTripsAreByteIdentical(self):
        """
        An empty file, one full of CR/LF/NUL, 100 MiB of random bytes and a
        UTF-8 name in a subdirectory go down and back up unchanged.
        """
        root, local, back = self.top / "root", self.top / "local", self.top / "back"
        for d in (root, local, back):
            d.mkdir()
        (root / "empty").write_bytes(b"")
        (root / "crlf.bin").write_bytes(b"\r\n\x00\r\r\n\n\x00" * 100000)
        bigDigest = writeRandom(str(root / "big.bin"), 100 * MiB, seed=1)
        (root / "ünï cødé" / "sub").mkdir(parents=True)
        (root / "ünï cødé" / "sub" / "fïlé ñame.txt").write_bytes("data ✓\n".encode())
        names = ["empty", "crlf.bin", "big.bin", "ünï cødé/sub/fïlé ñame.txt"]
        port, client = await self.session(root)
        try:
            for name in names:
                target = str(local / name.replace("/", "_"))
                transfer = await client.sget(name, target)
                self.assertEqual(sha1(target), sha1(str(root / name)))
                self.assertEqual(transfer.digest, digestOf(target, transfer.checksum))
                self.assertEqual(os.path.getsize(target), os.path.getsize(root / name))
                sent = await client.put(target, "back/" + name)
                self.assertEqual(sent.digest, transfer.digest)
                self.assertEqual(digestOf(str(root / "back" / name), sent.checksum), sent.digest)
            self.assertEqual(sha1(str(root / "back" / "big.bin")), bigDigest)
            listed = {e.name: e.size for e in await client.list("back")}
            self.assertEqual(listed, {"back/" + n: os.path.getsize(root / n) for n in names})
        finally:
            await client.quit()

    async def test_listAnsweredWhileAnotherClientHashes(self):
        root = self.top / "root"
        root.mkdir()
        digest = writeRandom(str(root / "large.bin"), 64 * MiB, seed=2)
        storage = _GatedStorage(str(root))
        self.addCleanup(storage.gate.set)
        port = await self.listen(root, factory=FtxServerFactory(storage, reactor))
        address = "127.0.0.1:{}".format(port.getHost().port)
        hasher = await connect(reactor, address)
        lister = await connect(reactor, address)
        try:
            hashed = hasher.hash("large.bin")
            # The hash runs in a worker thread: only real time shows it started.
            self.assertTrue(await waitUntil(reactor, storage.started.is_set, 2))
            entries = await lister.list()
            answeredAt = time.monotonic()
            self.assertEqual([e.name for e in entries], ["large.bin"])
            self.assertFalse(hashed.called)
            storage.gate.set()
            self.assertEqual(await hashed, digest)
            self.assertGreater(storage.finishedAt, answeredAt)
        finally:
            storage.gate.set()
            await hasher.quit()
            await lister.quit()

    async def test_partialUploadNeverUnderFinalName(self):
        """
        While an upload's body is still arriving the final name does not exist;
        a dropped connection leaves only the hidden partial file.
        """
        root = self.top / "root"
        root.mkdir()
        port = await self.listen(root)
        raw = _Raw()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        await endpoint.connect(Factory.forProtocol(lambda: raw))
        partial = root / ".final.bin.ftx-partial"
        try:
            raw.transport.write(b"put final.bin 1000\r\n")
            self.assertTrue(await waitUntil(reactor, lambda: b"350 0" in raw.received, 2))
            raw.transport.write(b"x" * 500)
            # Stored by a worker thread: wait (bounded) until all 500 bytes are there.
            self.assertTrue(await waitUntil(reactor, lambda: partial.exists() and partial.stat().st_size == 500, 5))
            self.assertFalse((root / "final.bin").exists())
            raw.transport.abortConnection()
            server = port.factory
            self.assertTrue(await waitUntil(reactor, lambda: not server.admission.active, 5))
            self.assertFalse((root / "final.bin").exists())
            self.assertEqual(os.listdir(root), [".final.bin.ftx-partial"])
        finally:
            raw.transport.abortConnection()

    async def test_pendingRequestsFailWhenConnectionDrops(self):
        """
        A request in flight when the connection drops fails with
        ConnectionLost, and so does any later one; the partial download stays.
        """
        root = self.top / "root"
        root.mkdir()
        writeRandom(str(root / "f.bin"), 64 * MiB)
        port, client = await self.session(root)
        started = []
        download = client.sget("f.bin", str(self.top / "f.bin"), progress=lambda n, done, total: started.append(done))
        self.assertTrue(await waitUntil(reactor, lambda: started and started[-1] > 0, 5))
        client.protocol.transport.abortConnection()
        await self.assertFailure(download, errors.ConnectionLost)
        await self.assertFailure(client.df(), errors.ConnectionLost)
        self.assertFalse((self.top / "f.bin").exists())
        self.assertTrue((self.top / ".f.bin.ftx-partial").exists())
        # The server may see the send fail before it sees the connection
        # lost, and then logs the abandoned sget as a failure.
        self.assertTrue(await waitUntil(reactor, lambda: not port.factory.admission.active, 5))
        self.flushLoggedErrors(ConnectionError)

    async def test_twistdServerServesAndLogs(self):
        root = self.top / "root"
        root.mkdir()
        (root / "hello.txt").write_bytes(b"hello\n")
        with ServerProcess(str(root)) as server:
            client = await connect(reactor, server.address)
            await client.sget("hello.txt", str(self.top / "got.txt"))
            await self.assertFailure(client.hash("missing.txt"), errors.NotFound)
            await client.quit()
            self.assertEqual((self.top / "got.txt").read_bytes(), b"hello\n")
            # Another process writes the log: wait (bounded) for the line.
            await waitUntil(reactor, lambda: "sget hello.txt 6 bytes" in server.output(), 5)
            log = server.output()
            maps = _mappedFiles(server.process.pid)
        self.assertIn("sget hello.txt 6 bytes", log)
        self.assertIn("hash refused: 404", log)
        # A plain-TCP server leaves the TLS stack out (ftx.server.twistd).
        self.assertTrue(maps is None or not any("cryptography" in path for path in maps), maps)


class CommandTests(SynchronousTestCase):
    """
    twistd and the embedding example, as subprocesses.
    """

    def test_twistdListsThePlugin(self):
        out = subprocess.run([os.path.join(BIN, "twistd"), "--help"], capture_output=True, timeout=60)
        self.assertIn(b"ftx", out.stdout)

    def test_twistdRejectsMissingRoot(self):
        missing = os.path.join(temporaryFolder(self), "nope")
        out = subprocess.run(
            [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "ftx", "--root", missing],
            capture_output=True, timeout=60,
        )
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"--root must be an existing directory", out.stdout + out.stderr)

    def test_embeddingExampleRuns(self):
        """
        The example in examples/ works as its docstring says.
        """
        top = temporaryFolder(self)
        root = Path(top) / "root"
        root.mkdir()
        (root / "some file.txt").write_bytes(b"example content\n")
        example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "fetch_and_upload.py")
        with ServerProcess(str(root)) as server:
            out = subprocess.run(
                [os.path.join(BIN, "python"), example, server.address, "some file.txt"],
                capture_output=True, timeout=60, cwd=top,
            )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"matches", out.stdout)
        self.assertEqual((root / "copy-of-some file.txt").read_bytes(), b"example content\n")
