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

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol

from ftx.client.api import connect
from tests.reliability import leftovers
from tests.support import ServerProcess, sha1

MiB = 1 << 20
# twistd exits through the signal that stopped it, after a clean shutdown.
STOPPED = (0, -signal.SIGTERM)


def _sleep(seconds):
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


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
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            assert time.monotonic() < deadline, (marker, self.buffer[-200:])
            if self.closed.called:
                break
            await _sleep(0.01)
        return marker in self.buffer


async def _raw(server):
    client = _RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), client)
    await client.waitFor(b"220 ")
    return client


async def _waitExit(server, timeout):
    deadline = time.monotonic() + timeout
    while server.process.poll() is None and time.monotonic() < deadline:
        await _sleep(0.02)
    return server.process.poll()


@pytest_twisted.ensureDeferred
async def test_runningUploadFinishesThenServerExits(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(str(root), "--shutdown-grace", "10")
    try:
        idle = await _raw(server)
        uploader = await _raw(server)
        body = os.urandom(2 * MiB)
        uploader.transport.write(b"put slow.bin %d\r\n" % len(body))
        await uploader.waitFor(b"350 0")
        piece = 128 * 1024
        uploader.transport.write(body[:piece])
        await _sleep(0.1)
        stopAsked = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # The idle client is told and closed; newcomers are refused.
        assert await idle.waitFor(b"503 unavailable the server is shutting down")
        await idle.closed
        for _ in range(100):
            try:
                await connect(reactor, server.address)
            except ConnectionRefusedError:
                break
            await _sleep(0.05)
        else:
            raise AssertionError("the server still accepts connections")
        # The upload goes on at its own pace and completes.
        for start in range(piece, len(body), piece):
            uploader.transport.write(body[start : start + piece])
            await _sleep(0.05)
        uploader.transport.write(b"sha1 " + hashlib.sha1(body).hexdigest().encode() + b"\r\n")
        assert await uploader.waitFor(b"226 slow.bin")
        await uploader.closed
        assert await _waitExit(server, 10) in STOPPED
        assert time.monotonic() - stopAsked < 10
        assert sha1(str(root / "slow.bin")) == hashlib.sha1(body).hexdigest()
        assert leftovers(str(root)) == []
        assert "Traceback" not in server.output()
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_stalledUploadCutAfterGraceAndResumable(tmp_path):
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    server = ServerProcess(str(root), "--shutdown-grace", "1")
    try:
        body = os.urandom(MiB)
        (local / "big.bin").write_bytes(body)
        stalled = await _raw(server)
        stalled.transport.write(b"put big.bin %d\r\n" % len(body))
        await stalled.waitFor(b"350 0")
        stalled.transport.write(body[:300000])
        empty = await _raw(server)
        empty.transport.write(b"put empty-start.bin 1000\r\n")
        await empty.waitFor(b"350 0")
        await _sleep(0.2)
        stopAsked = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert await _waitExit(server, 8) in STOPPED
        assert 0.9 < time.monotonic() - stopAsked < 6
    finally:
        server.stop()
    # Never under the final name; the received part kept for a resume; an
    # upload that had received nothing leaves nothing.
    assert sorted(os.listdir(root)) == [".big.bin.ftx-partial"]
    assert (root / ".big.bin.ftx-partial").read_bytes() == body[:300000]
    again = ServerProcess(str(root))
    try:
        client = await connect(reactor, again.address)
        transfer = await client.put(str(local / "big.bin"), "big.bin", resume=True)
        assert transfer.transferred == len(body) - 300000
        await client.quit()
    finally:
        again.stop()
    assert sha1(str(root / "big.bin")) == hashlib.sha1(body).hexdigest()
    assert leftovers(str(root)) == []


def test_startupSweepExpiresAbandonedPartials(tmp_path):
    root = tmp_path / "root"
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
        deadline = time.monotonic() + 10
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not old.exists()
        assert fresh.exists()
    finally:
        assert server.stop() in STOPPED
    assert "removed 1 abandoned partial uploads" in server.output()
