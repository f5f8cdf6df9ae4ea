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

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.client.api import connect
from tests.connections import Connections
from tests.reliability import leftovers
from tests.support import ServerProcess, sha1, temporaryFolder, waitUntil

MiB = 1 << 20
# twistd exits through the signal that stopped it, after a clean shutdown.
STOPPED = (0, -signal.SIGTERM)


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
        """
        Whether C{marker} arrived before the connection closed; fails the
        test if neither happens within C{timeout} seconds.
        """
        done = await waitUntil(reactor, lambda: marker in self.buffer or self.closed.called, timeout, 0.01)
        if not done:
            raise AssertionError((marker, self.buffer[-200:]))
        return marker in self.buffer

    async def waitClosed(self, timeout=10.0):
        if not await waitUntil(reactor, lambda: self.closed.called, timeout, 0.01):
            raise AssertionError("the connection is still open after {} s".format(timeout))


async def _raw(case, server):
    """
    A L{_RawClient} connected to C{server} and greeted; aborted, and its
    close waited for, if still open when the test ends.
    """
    client = _RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), client)

    async def close():
        if not client.closed.called:
            client.transport.abortConnection()
            await client.waitClosed()

    case.addCleanup(lambda: Deferred.fromCoroutine(close()))
    await client.waitFor(b"220 ")
    return client


async def _waitExit(server, timeout):
    await waitUntil(reactor, lambda: server.process.poll() is not None, timeout)
    return server.process.poll()


def _sizeOf(path):
    """
    The size of the file at C{path}, -1 while there is none.
    """
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return -1


async def _received(path, size):
    """
    Wait until the server has written C{size} bytes of an upload to its
    partial file C{path}; fails the test after 10 s.
    """
    arrived = await waitUntil(reactor, lambda: _sizeOf(path) >= size, 10.0, 0.005)
    if not arrived:
        raise AssertionError("the server has {} bytes of {}, not {}".format(_sizeOf(path), path, size))


def _root(case, *names):
    """
    Fresh folders C{names} under one temporary folder, by absolute path
    (the server subprocess keeps its log beside them).
    """
    base = temporaryFolder(case, "ftx-shutdown-")
    made = [os.path.join(base, name) for name in names]
    for path in made:
        os.mkdir(path)
    return made


class GracefulShutdownTests(TestCase):
    """
    SIGTERM to a C{twistd ftx} subprocess while raw clients are connected.
    """

    async def test_runningUploadFinishesThenServerExits(self):
        (root,) = _root(self, "root")
        server = ServerProcess(root, "--shutdown-grace", "10")
        self.addCleanup(server.stop)
        Connections(self, reactor)
        partial = os.path.join(root, ".slow.bin.ftx-partial")
        idle = await _raw(self, server)
        uploader = await _raw(self, server)
        body = os.urandom(2 * MiB)
        uploader.transport.write(b"put slow.bin %d\r\n" % len(body))
        await uploader.waitFor(b"350 0")
        piece = 128 * 1024
        uploader.transport.write(body[:piece])
        await _received(partial, piece)
        stopAsked = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # The idle client is told and closed; newcomers are refused.
        self.assertTrue(await idle.waitFor(b"503 unavailable the server is shutting down"))
        await idle.waitClosed()
        for _ in range(100):
            try:
                client = await connect(reactor, server.address)
            except ConnectionRefusedError:
                break
            client.protocol.transport.loseConnection()
            await deferLater(reactor, 0.05, lambda: None)
        else:
            self.fail("the server still accepts connections")
        # The upload goes on, a piece once the server has stored the one
        # before, and completes.
        for start in range(piece, len(body), piece):
            uploader.transport.write(body[start : start + piece])
            await _received(partial, min(start + piece, len(body)))
        uploader.transport.write(b"sha1 " + hashlib.sha1(body).hexdigest().encode() + b"\r\n")
        self.assertTrue(await uploader.waitFor(b"226 slow.bin"))
        await uploader.waitClosed()
        self.assertIn(await _waitExit(server, 10), STOPPED)
        self.assertLess(time.monotonic() - stopAsked, 10)
        self.assertEqual(sha1(os.path.join(root, "slow.bin")), hashlib.sha1(body).hexdigest())
        self.assertEqual(leftovers(root), [])
        self.assertNotIn("Traceback", server.output())

    async def test_stalledUploadCutAfterGraceAndResumable(self):
        root, local = _root(self, "root", "local")
        server = ServerProcess(root, "--shutdown-grace", "1")
        self.addCleanup(server.stop)
        Connections(self, reactor)
        body = os.urandom(MiB)
        with open(os.path.join(local, "big.bin"), "wb") as f:
            f.write(body)
        stalled = await _raw(self, server)
        stalled.transport.write(b"put big.bin %d\r\n" % len(body))
        await stalled.waitFor(b"350 0")
        stalled.transport.write(body[:300000])
        empty = await _raw(self, server)
        empty.transport.write(b"put empty-start.bin 1000\r\n")
        await empty.waitFor(b"350 0")
        await _received(os.path.join(root, ".big.bin.ftx-partial"), 300000)
        stopAsked = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        self.assertIn(await _waitExit(server, 8), STOPPED)
        elapsed = time.monotonic() - stopAsked
        self.assertTrue(0.9 < elapsed < 6, elapsed)
        server.stop()
        # Never under the final name; the received part kept for a resume; an
        # upload that had received nothing leaves nothing.
        self.assertEqual(sorted(os.listdir(root)), [".big.bin.ftx-partial"])
        with open(os.path.join(root, ".big.bin.ftx-partial"), "rb") as f:
            self.assertEqual(f.read(), body[:300000])
        again = ServerProcess(root)
        self.addCleanup(again.stop)
        client = await connect(reactor, again.address)
        transfer = await client.put(os.path.join(local, "big.bin"), "big.bin", resume=True)
        self.assertEqual(transfer.transferred, len(body) - 300000)
        await client.quit()
        again.stop()
        self.assertEqual(sha1(os.path.join(root, "big.bin")), hashlib.sha1(body).hexdigest())
        self.assertEqual(leftovers(root), [])


class StartupSweepTests(SynchronousTestCase):
    def test_startupSweepExpiresAbandonedPartials(self):
        (root,) = _root(self, "root")
        os.mkdir(os.path.join(root, "sub"))
        old = os.path.join(root, "sub", ".gone.bin.ftx-partial")
        fresh = os.path.join(root, ".kept.bin.ftx-partial")
        with open(old, "wb") as f:
            f.write(b"x" * 10)
        with open(fresh, "wb") as f:
            f.write(b"y" * 10)
        past = time.time() - 2 * 3600
        os.utime(old, (past, past))
        server = ServerProcess(root, "--partial-ttl", "1h")
        self.addCleanup(server.stop)
        deadline = time.monotonic() + 10
        while os.path.exists(old) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(fresh))
        self.assertIn(server.stop(), STOPPED)
        self.assertIn("removed 1 abandoned partial uploads", server.output())
