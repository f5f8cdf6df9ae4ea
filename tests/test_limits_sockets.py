"""
Limits over real loopback sockets: what the server buffers for a client
that sends without reading, or stops reading a download, stays bounded;
a client over the connection limit gets 503.
"""

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from ftx import errors
from ftx.client.api import connect
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from tests.reliability import measure
from tests.support import digestOf, listenInProcess, sha1, writeRandom

MiB = 1 << 20


def _sleep(seconds):
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def _outBuffered(transport) -> int:
    # What a Twisted TCP transport holds to write (private attributes).
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


async def _serve(root, policy=None):
    factory = FtxServerFactory(FilesystemStorage(str(root)), reactor, policy)
    port = await listenInProcess(reactor, str(root), factory=factory)
    return port, factory


async def _serverSide(factory, count=1):
    for _ in range(200):
        if len(factory.admission.active) >= count:
            break
        await _sleep(0.01)
    return list(factory.admission.active)


class _Spammer(Protocol):
    def __init__(self):
        self.received = b""
        self.lines = 0
        self.target = None
        self.done = Deferred()

    def dataReceived(self, data):
        self.received += data[-64:]
        self.lines += data.count(b"\r\n")
        if self.target is not None and self.lines >= self.target and not self.done.called:
            self.done.callback(None)


@pytest_twisted.ensureDeferred
async def test_clientThatNeverReadsRepliesCannotGrowServerBuffers(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"a")
    port, factory = await _serve(tmp_path)
    spam = _Spammer()
    try:
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), spam)
        (server,) = await _serverSide(factory)
        # A small kernel send buffer, so that what piles up piles up in the
        # server's own buffer.
        server.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        spam.transport.pauseProducing()
        commands = 60000
        spam.transport.write(b"df\r\n" * commands)
        peakOut = peakIn = 0
        for _ in range(15):
            await _sleep(0.1)
            peakOut = max(peakOut, _outBuffered(server.transport))
            peakIn = max(peakIn, len(server._buffer))
        # Replies to every command would be ~1.9 MB; the server stopped
        # reading commands once about its write threshold was waiting.
        assert peakOut <= server.transport.bufferSize + 64 * 1024, peakOut
        assert peakIn <= 1 * MiB
        assert spam.lines < commands
        measure("limits: server buffers, client never reading", "{} KiB out, {} KiB in".format(peakOut // 1024, peakIn // 1024))
        spam.target = commands + 1  # the greeting too
        spam.transport.resumeProducing()
        await spam.done
        assert spam.lines == commands + 1
        assert spam.received.endswith(b"\r\n") and b"212 " in spam.received
    finally:
        spam.transport.loseConnection()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_stalledReaderStopsTheProducer(tmp_path):
    digest = writeRandom(str(tmp_path / "root" / "big.bin"), 48 * MiB, seed=3)
    port, factory = await _serve(tmp_path / "root")
    client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
    try:
        (server,) = await _serverSide(factory)
        server.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        client.protocol.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        d = client.sget("big.bin", str(tmp_path / "big.bin"))
        client.protocol.transport.pauseProducing()
        await _sleep(0.5)
        sent = 48 * MiB - server.downloads.sender.remaining
        await _sleep(0.5)
        # Nothing more is read from disk while the client does not read.
        assert 48 * MiB - server.downloads.sender.remaining == sent
        assert sent < 16 * MiB
        assert _outBuffered(server.transport) <= 512 * 1024
        client.protocol.transport.resumeProducing()
        transfer = await d
        assert digest == sha1(str(tmp_path / "big.bin"))
        assert transfer.digest == digestOf(str(tmp_path / "big.bin"), transfer.checksum)
    finally:
        await client.quit()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_overLimitGets503(tmp_path):
    port, factory = await _serve(tmp_path, ServerPolicy(maxConnections=1))
    address = "127.0.0.1:{}".format(port.getHost().port)
    first = await connect(reactor, address)
    try:
        with pytest.raises(errors.Unavailable):
            await connect(reactor, address)
        assert factory.admission.refused == 1
        await first.quit()
        await _sleep(0.05)
        again = await connect(reactor, address)
        assert (await again.df()).total > 0
        await again.quit()
    finally:
        await port.stopListening()
