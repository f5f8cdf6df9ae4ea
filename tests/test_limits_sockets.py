"""
Limits over real loopback sockets: what the server buffers for a client
that sends without reading, or stops reading a download, stays bounded;
a client over the connection limit gets 503.
"""

import os
import socket

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from ftx import errors
from ftx.client.api import connect
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from tests.reliability import measure
from tests.support import closeSocketsAfter, digestOf, listenInProcess, sha1, temporaryFolder, waitUntil, writeRandom

MiB = 1 << 20


def _sleep(seconds):
    return deferLater(reactor, seconds, lambda: None)


def _outBuffered(transport) -> int:
    # What a Twisted TCP transport holds to write (private attributes).
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


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


class SocketLimitTests(TestCase):
    """
    What the kernel and the server buffer can only be seen on real sockets
    over real time: these tests sample it for a bounded while.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        self.top = temporaryFolder(self)

    async def serve(self, root, policy=None):
        factory = FtxServerFactory(FilesystemStorage(str(root)), reactor, policy)
        port = await listenInProcess(reactor, str(root), factory=factory)
        self.addCleanup(port.stopListening)
        return port, factory

    async def serverSide(self, factory, count=1):
        self.assertTrue(await waitUntil(reactor, lambda: len(factory.admission.active) >= count, 2))
        return list(factory.admission.active)

    async def test_clientThatNeverReadsRepliesCannotGrowServerBuffers(self):
        with open(os.path.join(self.top, "a.txt"), "wb") as f:
            f.write(b"a")
        port, factory = await self.serve(self.top)
        spam = _Spammer()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), spam)
        try:
            (server,) = await self.serverSide(factory)
            # A small kernel send buffer, so that what piles up piles up in the
            # server's own buffer.
            server.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            spam.transport.pauseProducing()
            commands = 60000
            spam.transport.write(b"df\r\n" * commands)
            peakOut = peakIn = 0
            # The peaks over 1.5 s of a client that does not read.
            for _ in range(15):
                await _sleep(0.1)
                peakOut = max(peakOut, _outBuffered(server.transport))
                peakIn = max(peakIn, len(server._buffer))
            # Replies to every command would be ~1.9 MB; the server stopped
            # reading commands once about its write threshold was waiting.
            self.assertLessEqual(peakOut, server.transport.bufferSize + 64 * 1024)
            self.assertLessEqual(peakIn, 1 * MiB)
            self.assertLess(spam.lines, commands)
            measure("limits: server buffers, client never reading", "{} KiB out, {} KiB in".format(peakOut // 1024, peakIn // 1024))
            spam.target = commands + 1  # the greeting too
            spam.transport.resumeProducing()
            await spam.done
            self.assertEqual(spam.lines, commands + 1)
            self.assertTrue(spam.received.endswith(b"\r\n") and b"212 " in spam.received)
        finally:
            spam.transport.loseConnection()

    async def test_stalledReaderStopsTheProducer(self):
        root = os.path.join(self.top, "root")
        digest = writeRandom(os.path.join(root, "big.bin"), 48 * MiB, seed=3)
        local = os.path.join(self.top, "big.bin")
        port, factory = await self.serve(root)
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
        try:
            (server,) = await self.serverSide(factory)
            server.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            client.protocol.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            d = client.sget("big.bin", local)
            client.protocol.transport.pauseProducing()
            # Real sockets fill in real time: let them, then watch for a
            # further half second that nothing more is read from disk.
            await _sleep(0.5)
            sent = 48 * MiB - server.downloads.sender.remaining
            await _sleep(0.5)
            self.assertEqual(48 * MiB - server.downloads.sender.remaining, sent)
            self.assertLess(sent, 16 * MiB)
            self.assertLessEqual(_outBuffered(server.transport), 512 * 1024)
            client.protocol.transport.resumeProducing()
            transfer = await d
            self.assertEqual(digest, sha1(local))
            self.assertEqual(transfer.digest, digestOf(local, transfer.checksum))
        finally:
            await client.quit()

    async def test_overLimitGets503(self):
        port, factory = await self.serve(self.top, ServerPolicy(maxConnections=1))
        address = "127.0.0.1:{}".format(port.getHost().port)
        first = await connect(reactor, address)
        try:
            await self.assertFailure(connect(reactor, address), errors.Unavailable)
            self.assertEqual(factory.admission.refused, 1)
        finally:
            await first.quit()
        # The server frees the place when it sees the connection go.
        self.assertTrue(await waitUntil(reactor, lambda: not factory.admission.active, 5))
        again = await connect(reactor, address)
        try:
            self.assertGreater((await again.df()).total, 0)
        finally:
            await again.quit()
