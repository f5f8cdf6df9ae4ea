"""
Graceful shutdown of a real ``twistd ftx`` process: SIGTERM stops new
connections, lets a running upload finish within --shutdown-grace, closes
idle clients with 503, and leaves no temporary file of a completed upload.
An upload still running when the grace period ends is cut; its received
part is kept for a resume (and expires with --partial-ttl). Also: the
startup sweep removes abandoned partial uploads.
"""

import hashlib
import os
import signal
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.client.api import connect
from tests.reliability import leftovers
from tests.support import ServerProcess, closeSocketsAfter, sha1, temporaryFolder, waitUntil

MiB = 1 << 20
# twistd exits through the signal that stopped it, after a clean shutdown.
STOPPED = (0, -signal.SIGTERM)


def _sleep(seconds):
    return deferLater(reactor, seconds, lambda: None)


class _RawClient(Protocol):
    """
    Speaks the protocol by hand, so that the test controls the pace of a
    body.
    """

    def __init__(self):
        self.buffer = b""
        self.closed = Deferred()

    def dataReceived(self, data):
        self.buffer += data

    def connectionLost(self, reason):
        self.closed.callback(None)

    async def waitFor(self, marker, timeout=10.0):
        await waitUntil(reactor, lambda: marker in self.buffer or self.closed.called, timeout)
        return marker in self.buffer


async def _raw(server):
    client = _RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), client)
    await client.waitFor(b"220 ")
    return client


async def _waitExit(server, timeout):
    await waitUntil(reactor, lambda: server.process.poll() is not None, timeout, 0.02)
    return server.process.poll()


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


class ShutdownTests(TestCase):
    """
    SIGTERM to a twistd subprocess: its grace period is a real timer in
    another process, so these tests wait for it in real time, each wait
    polled with a deadline.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        self.top = Path(temporaryFolder(self))

    async def test_runningUploadFinishesThenServerExits(self):
        root = self.top / "root"
        root.mkdir()
        server = ServerProcess(str(root), "--shutdown-grace", "10")
        self.addCleanup(server.stop)
        idle = await _raw(server)
        uploader = await _raw(server)
        body = os.urandom(2 * MiB)
        uploader.transport.write(b"put slow.bin %d\r\n" % len(body))
        self.assertTrue(await uploader.waitFor(b"350 0"))
        piece = 128 * 1024
        uploader.transport.write(body[:piece])
        # The server has the first piece before it is asked to stop.
        self.assertTrue(await waitUntil(reactor, lambda: _size(root / ".slow.bin.ftx-partial") == piece, 5))
        stopAsked = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # The idle client is told and closed; newcomers are refused.
        self.assertTrue(await idle.waitFor(b"503 unavailable the server is shutting down"))
        await idle.closed
        for _ in range(100):
            try:
                client = await connect(reactor, server.address)
            except ConnectionRefusedError:
                break
            await client.quit()
            await _sleep(0.05)
        else:
            self.fail("the server still accepts connections")
        # The upload goes on at its own (slow) pace and completes.
        for start in range(piece, len(body), piece):
            uploader.transport.write(body[start : start + piece])
            await _sleep(0.05)
        uploader.transport.write(b"sha1 " + hashlib.sha1(body).hexdigest().encode() + b"\r\n")
        self.assertTrue(await uploader.waitFor(b"226 slow.bin"))
        await uploader.closed
        self.assertIn(await _waitExit(server, 10), STOPPED)
        self.assertLess(time.monotonic() - stopAsked, 10)
        self.assertEqual(sha1(str(root / "slow.bin")), hashlib.sha1(body).hexdigest())
        self.assertEqual(leftovers(str(root)), [])
        self.assertNotIn("Traceback", server.output())

    async def test_stalledUploadCutAfterGraceAndResumable(self):
        root, local = self.top / "root", self.top / "local"
        root.mkdir()
        local.mkdir()
        server = ServerProcess(str(root), "--shutdown-grace", "1")
        self.addCleanup(server.stop)
        body = os.urandom(MiB)
        (local / "big.bin").write_bytes(body)
        stalled = await _raw(server)
        stalled.transport.write(b"put big.bin %d\r\n" % len(body))
        self.assertTrue(await stalled.waitFor(b"350 0"))
        stalled.transport.write(body[:300000])
        empty = await _raw(server)
        empty.transport.write(b"put empty-start.bin 1000\r\n")
        self.assertTrue(await empty.waitFor(b"350 0"))
        # The server has stored what was sent before it is asked to stop.
        self.assertTrue(await waitUntil(reactor, lambda: _size(root / ".big.bin.ftx-partial") == 300000, 5))
        stopAsked = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        self.assertIn(await _waitExit(server, 8), STOPPED)
        self.assertTrue(0.9 < time.monotonic() - stopAsked < 6)
        server.stop()
        await stalled.closed
        await empty.closed
        # Never under the final name; the received part kept for a resume; an
        # upload that had received nothing leaves nothing.
        self.assertEqual(sorted(os.listdir(root)), [".big.bin.ftx-partial"])
        self.assertEqual((root / ".big.bin.ftx-partial").read_bytes(), body[:300000])
        again = ServerProcess(str(root))
        self.addCleanup(again.stop)
        client = await connect(reactor, again.address)
        transfer = await client.put(str(local / "big.bin"), "big.bin", resume=True)
        self.assertEqual(transfer.transferred, len(body) - 300000)
        await client.quit()
        again.stop()
        self.assertEqual(sha1(str(root / "big.bin")), hashlib.sha1(body).hexdigest())
        self.assertEqual(leftovers(str(root)), [])


class StartupSweepTests(SynchronousTestCase):
    def test_startupSweepExpiresAbandonedPartials(self):
        root = Path(temporaryFolder(self)) / "root"
        root.mkdir()
        (root / "sub").mkdir()
        old = root / "sub" / ".gone.bin.ftx-partial"
        fresh = root / ".kept.bin.ftx-partial"
        old.write_bytes(b"x" * 10)
        fresh.write_bytes(b"y" * 10)
        past = time.time() - 2 * 3600
        os.utime(old, (past, past))
        server = ServerProcess(str(root), "--partial-ttl", "1h")
        try:
            # Another process sweeps: poll, bounded.
            deadline = time.monotonic() + 10
            while old.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertFalse(old.exists())
            self.assertTrue(fresh.exists())
        finally:
            self.assertIn(server.stop(), STOPPED)
        self.assertIn("removed 1 abandoned partial uploads", server.output())
