"""
The private Twisted attributes ftx reaches through L{ftx._io.internals},
checked against real Twisted objects: a real TCP connection on 127.0.0.1,
a real C{LineReceiver}. When a Twisted release removes one or changes
what it means, a test here fails with a message naming the attribute and
the fast path lost.

Each is paired with its fallback: a transport or receiver without the
attribute sends the caller down the ordinary path, and the bytes still
arrive intact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile

from twisted.internet import reactor, tcp
from twisted.internet.interfaces import IPullProducer, ISSLTransport
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.python.filepath import FilePath
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

import twisted
from ftx._io import bodyreads, filebody, internals, zerocopy
from ftx.client.api import FtxClient, FtxClientProtocol
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests import loopback
from tests.support import InlineReactor, sha1, writeRandom

MiB = loopback.MiB


def changed(attribute: str, lost: str) -> str:
    """
    The message of a test that found a Twisted internal gone or changed.
    """
    return (
        "Twisted {} changed {} (ftx._io.internals was checked against Twisted {}): "
        "{} is lost. Update ftx/_io/internals.py and its comments.".format(
            twisted.__version__, attribute, internals.TWISTED_CHECKED, lost
        )
    )


async def turns(count: int = 5, delay: float = 0.01) -> None:
    """
    Let the reactor run a few turns (real sockets: the kernel moves the
    bytes, so the test can only wait for it, a bounded time).
    """
    for _ in range(count):
        await deferLater(reactor, delay, lambda: None)


class RealTransportTests(TestCase):
    """
    The attributes of C{twisted.internet.tcp.Connection} and
    C{abstract.FileDescriptor} the zero-copy paths use, on a real
    connection.
    """

    async def test_socketOfServerAndClient(self):
        server, client = await loopback.tcpConnection(self, reactor)
        for protocol, kind in ((server, tcp.Server), (client, tcp.Client)):
            transport = protocol.transport
            self.assertIsInstance(transport, kind)
            for name in ("socket", "dataBuffer", "offset", "_tempDataLen", "startWriting", "doRead"):
                self.assertTrue(
                    hasattr(transport, name),
                    changed("{}.{}".format(kind.__name__, name), "sendfile and recv_into past the transport"),
                )
            sock = internals.socketOf(transport)
            self.assertIsInstance(
                sock, socket.socket, changed("tcp.Connection.socket", "sendfile and recv_into past the transport")
            )
            self.assertIs(sock, transport.getHandle(), changed("tcp.Connection.socket", "sendfile and recv_into"))

    async def test_transportIdleFollowsUnsentWrites(self):
        """
        Bytes written while the peer does not read stay in the transport's
        buffer: C{_tempDataLen} counts them at once, C{dataBuffer} and
        C{offset} hold what C{send} has not taken; once the peer has read
        everything the transport is idle again.
        """
        server, client = await loopback.tcpConnection(self, reactor)
        transport = server.transport
        lost = "sendfile waiting for the header to be written (bodies could overtake it)"
        self.assertTrue(internals.transportIdle(transport), changed("FileDescriptor.dataBuffer/offset", lost))
        client.transport.pauseProducing()
        big = os.urandom(32 * MiB)
        transport.write(big)
        self.assertEqual(transport._tempDataLen, len(big), changed("FileDescriptor._tempDataLen", lost))
        self.assertFalse(internals.transportIdle(transport), changed("FileDescriptor._tempDataLen", lost))
        await turns()
        self.assertEqual(transport._tempDataLen, 0, changed("FileDescriptor._tempDataLen", lost))
        self.assertGreater(
            len(transport.dataBuffer) - transport.offset, 0, changed("FileDescriptor.dataBuffer/offset", lost)
        )
        self.assertFalse(internals.transportIdle(transport), changed("FileDescriptor.dataBuffer/offset", lost))
        client.transport.resumeProducing()
        await client.whenReceived(len(big))
        # The last send and the emptying of the buffer happen in the same
        # doWrite; the peer may have the bytes a turn before that.
        for _ in range(200):
            if internals.transportIdle(transport):
                break
            await turns(1)
        self.assertTrue(internals.transportIdle(transport), changed("FileDescriptor.dataBuffer/offset", lost))
        self.assertEqual(client.received(), big)

    async def test_wakeWriterAsksThePullProducerAgain(self):
        server, client = await loopback.tcpConnection(self, reactor)
        calls = []

        @implementer(IPullProducer)
        class Producer:
            def resumeProducing(self):
                calls.append(True)

            def stopProducing(self):
                pass

        server.transport.registerProducer(Producer(), False)
        self.addCleanup(server.transport.unregisterProducer)
        self.assertEqual(calls, [True])
        await turns()
        self.assertEqual(calls, [True], "an idle transport asked its pull producer again without being woken")
        internals.wakeWriter(server.transport)
        for _ in range(200):
            if len(calls) > 1:
                break
            await turns(1)
        self.assertEqual(
            len(calls), 2, changed("FileDescriptor.startWriting", "sendfile resuming once the socket has room")
        )

    async def test_bufferSizeIsTheReadSize(self):
        server, client = await loopback.tcpConnection(self, reactor)
        lost = "big reads (the body comes in 64 KiB pieces)"
        internals.setReadSize(server.transport, 1000)
        client.transport.write(os.urandom(100 * 1000))
        await server.whenReceived(100 * 1000)
        self.assertLessEqual(max(len(c) for c in server.chunks), 1000, changed("FileDescriptor.bufferSize", lost))

        server.chunks.clear()
        internals.setReadSize(server.transport, 4 * MiB)
        server.transport.pauseProducing()
        data = os.urandom(1 * MiB)
        client.transport.write(data)
        sock = internals.socketOf(server.transport)
        for _ in range(500):
            if loopback.queued(sock) >= len(data):
                break
            await turns(1)
        server.transport.resumeProducing()
        await server.whenReceived(len(data))
        self.assertEqual(server.received(), data)
        self.assertGreater(max(len(c) for c in server.chunks), 1 << 16, changed("FileDescriptor.bufferSize", lost))

    async def test_doReadIsWhatTheReactorCalls(self):
        server, client = await loopback.tcpConnection(self, reactor)
        transport = server.transport
        sock = internals.socketOf(transport)
        read = []

        def doRead():
            read.append(sock.recv(1000))
            return None

        self.assertTrue(internals.takeOverReads(transport, doRead))
        self.assertTrue(internals.readsTakenOver(transport, doRead))
        client.transport.write(b"hello")
        for _ in range(200):
            if read:
                break
            await turns(1)
        self.assertEqual(
            read, [b"hello"], changed("tcp.Connection.doRead", "recv_into into pooled buffers (direct body reads)")
        )
        self.assertEqual(server.chunks, [], "the protocol received bytes while its reads were taken over")

        self.assertTrue(internals.giveBackReads(transport, doRead))
        self.assertFalse(internals.readsTakenOver(transport, doRead))
        self.assertFalse(internals.giveBackReads(transport, doRead))
        client.transport.write(b"world")
        await server.whenReceived(5)
        self.assertEqual(server.received(), b"world")
        self.assertEqual(read, [b"hello"])

    async def test_bodySenderUsesSendfileOnARealConnection(self):
        """
        The contrast to the fallbacks below: on a plain TCP transport, a
        file is sent by C{sendfile}, hashed aside, and arrives intact.
        """
        server, client = await loopback.tcpConnection(self, reactor)
        f, content = loopback.randomFile(self, 3 * MiB, seed=41)
        sent = []
        realSendSome = zerocopy.sendSome

        def countingSendSome(*args):
            n = realSendSome(*args)
            sent.append(n)
            return n

        self.patch(zerocopy, "sendSome", countingSendSome)
        sender = filebody.BodySender(f, 10, len(content) - 10, hashlib.sha1(), None, lambda n: None, reactor)
        digest = await sender.begin(server.transport)
        await client.whenReceived(len(content) - 10)
        self.assertEqual(client.received(), content[10:])
        self.assertEqual(digest, hashlib.sha1(content[10:]).hexdigest())
        self.assertEqual(sum(sent), len(content) - 10, changed("tcp.Connection.socket", "sendfile for downloads"))


class LineReceiverTests(SynchronousTestCase):
    """
    C{LineReceiver._buffer}, on a real C{LineReceiver}.
    """

    def receiver(self):
        lines = []
        receiver = LineReceiver()
        receiver.lineReceived = lines.append
        receiver.makeConnection(StringTransport())
        return receiver, lines

    def test_bufferHoldsThePartialLine(self):
        receiver, lines = self.receiver()
        lost = "the bound on unread input and the check before direct body reads"
        receiver.dataReceived(b"one\r\ntw")
        self.assertEqual(lines, [b"one"])
        self.assertEqual(internals.lineBuffered(receiver), 2, changed("LineReceiver._buffer", lost))
        self.assertFalse(internals.lineBufferEmpty(receiver), changed("LineReceiver._buffer", lost))
        receiver.dataReceived(b"o\r\n")
        self.assertEqual(lines, [b"one", b"two"])
        self.assertEqual(internals.lineBuffered(receiver), 0, changed("LineReceiver._buffer", lost))
        self.assertTrue(internals.lineBufferEmpty(receiver), changed("LineReceiver._buffer", lost))

    def test_bufferHoldsWhatArrivesWhilePaused(self):
        receiver, lines = self.receiver()
        receiver.pauseProducing()
        receiver.dataReceived(b"one\r\ntwo\r\n")
        self.assertEqual(lines, [])
        self.assertEqual(
            internals.lineBuffered(receiver), 10, changed("LineReceiver._buffer", "the bound on unread input")
        )
        receiver.resumeProducing()
        self.assertEqual(lines, [b"one", b"two"])
        self.assertEqual(internals.lineBuffered(receiver), 0)


class _HiddenBuffer(LineReceiver):
    """
    A C{LineReceiver} as a Twisted without C{_buffer} would have it.
    """

    @property
    def _buffer(self):
        raise AttributeError("_buffer")


class _NoDict:
    """
    A transport-like object whose C{doRead} cannot be shadowed.
    """

    __slots__ = ()

    def doRead(self):
        return None


@implementer(ISSLTransport)
class _TLSLike:
    socket = dataBuffer = b""
    offset = _tempDataLen = 0

    def startWriting(self):
        pass

    def doRead(self):
        pass


class FallbackTests(SynchronousTestCase):
    """
    Without the attribute, the function answers so that the caller takes
    the ordinary path.
    """

    def test_noSocketWithoutTheAttributes(self):
        self.assertIsNone(internals.socketOf(StringTransport()))
        self.assertIsNone(internals.socketOf(object()))
        self.assertIsNone(internals.socketOf(_TLSLike()))
        client, server, pump = iosim.connectedServerAndClient(LineReceiver, LineReceiver)
        self.assertIsNone(internals.socketOf(server.transport))

    def test_takeOverReadsLeavesOtherTransportsAlone(self):
        reads = []
        transport = StringTransport()
        self.assertFalse(internals.takeOverReads(transport, reads.append))
        self.assertNotIn("doRead", transport.__dict__)
        noDict = _NoDict()
        self.assertFalse(internals.takeOverReads(noDict, reads.append))
        self.assertFalse(internals.readsTakenOver(noDict, reads.append))
        self.assertFalse(internals.giveBackReads(noDict, reads.append))

    def test_directBodyNotInstalledWithoutDoRead(self):
        pool = bodyreads.BufferPool()
        body = bodyreads.DirectBody(StringTransport(), None, 2 * MiB, pool, lambda *a: None, lambda: None)
        self.assertFalse(body.install())
        self.assertEqual(pool.active, 0)

    def test_readSizeLeftAlone(self):
        transport = StringTransport()
        internals.setReadSize(transport, 4 * MiB)
        self.assertFalse(hasattr(transport, "bufferSize"))

    def test_lineBufferUnknown(self):
        self.assertEqual(internals.lineBuffered(object()), 0)
        self.assertTrue(internals.lineBufferEmpty(object()))
        hidden = _HiddenBuffer()
        self.assertEqual(internals.lineBuffered(hidden), 0)
        # Not known to be empty: no direct reads that could overtake it.
        self.assertFalse(internals.lineBufferEmpty(hidden))

    def test_bodySenderCopiesOverATransportWithoutTheAttributes(self):
        f, content = loopback.randomFile(self, 2 * MiB + 3, seed=42)
        transport = StringTransport()
        self.patch(zerocopy, "sendSome", lambda *a: self.fail("sendfile used on a transport without a socket"))
        sender = filebody.BodySender(f, 3, len(content) - 3, hashlib.sha1(), None, lambda n: None, InlineReactor())
        d = sender.begin(transport)
        for _ in range(1000):
            if d.called:
                break
            sender.resumeProducing()
        self.assertEqual(transport.value(), content[3:])
        self.assertEqual(self.successResultOf(d), hashlib.sha1(content[3:]).hexdigest())


class InMemoryTransferTests(SynchronousTestCase):
    """
    Over iosim, where no transport has a socket, large uploads and
    downloads go by the ordinary path and arrive intact.
    """

    def test_uploadAndDownloadOverIosim(self):
        base = tempfile.mkdtemp(prefix="ftx-internals-")
        self.addCleanup(shutil.rmtree, base, True)
        root, local = os.path.join(base, "root"), os.path.join(base, "local")
        os.mkdir(root)
        os.mkdir(local)
        source = os.path.join(local, "up.bin")
        digest = writeRandom(source, 3 * MiB + 5, seed=43)
        factory = FtxServerFactory(FilesystemStorage(root), InlineReactor())
        clientSide, serverSide, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), FtxClientProtocol
        )
        pump.flush()
        self.assertIsNone(internals.socketOf(serverSide.transport))
        self.patch(bodyreads.DirectBody, "install", lambda body: self.fail("direct reads over iosim"))
        client = FtxClient(clientSide, InlineReactor())

        def result(d):
            for _ in range(100000):
                if d.called:
                    break
                pump.pump()
            return self.successResultOf(d)

        result(client.put(source, "up.bin"))
        self.assertEqual(sha1(os.path.join(root, "up.bin")), digest)
        target = os.path.join(local, "back.bin")
        result(client.sget("up.bin", target))
        self.assertEqual(FilePath(target).getContent(), FilePath(source).getContent())


class MissingAttributeTests(TestCase):
    """
    A real connection whose transport (as if in another Twisted) lacks one
    of the attributes: uploads and downloads take the ordinary path and
    arrive intact.
    """

    async def test_transferOverRealSocketsWithoutTheFastPaths(self):
        self.patch(internals, "_TRANSPORT_ATTRIBUTES", internals._TRANSPORT_ATTRIBUTES + ("_notInThisTwisted",))
        self.patch(zerocopy, "sendSome", lambda *a: self.fail("sendfile used without the transport's attributes"))
        self.patch(bodyreads.DirectBody, "install", lambda body: self.fail("direct reads without the attributes"))
        root, local = loopback.roots(self, "root", "local")
        source = os.path.join(local, "up.bin")
        digest = writeRandom(source, 3 * MiB + 7, seed=44)
        port, client = await loopback.session(self, reactor, root)
        await client.put(source, "up.bin")
        self.assertEqual(sha1(os.path.join(root, "up.bin")), digest)
        target = os.path.join(local, "back.bin")
        transfer = await client.sget("up.bin", target)
        self.assertEqual(sha1(target), digest)
        self.assertEqual(transfer.size, 3 * MiB + 7)
