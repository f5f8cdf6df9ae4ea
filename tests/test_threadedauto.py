"""
The embedded client's default (C{bodyThreads} left to L{None}): a large
body is read by a thread of its own when it is the one large body the
process receives, and the reactor goes on serving every other connection
meanwhile; a second large body at the same time stays on the reactor.
"""

from __future__ import annotations

import os
import threading

import xxhash
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase

from ftx._io import bodyreads, threadedbody
from ftx._io.threadedbody import ThreadedWriter
from ftx.client import connect, localfiles
from ftx.client.protocol import THREAD_MIN, FtxClientProtocol
from ftx.protocol import checksums
from tests.loopback import MiB
from tests.support import listenInProcess, temporaryFolder

#: What the scripted server sends of its body before it waits.
_FIRST = 2 * MiB


class _HeldBodyServer(LineReceiver):
    """
    Just enough of an ftx server for one C{sget}: it sends the header and
    the first L{_FIRST} bytes of the body, then holds the rest until the
    test calls C{factory.release()}.
    """

    delimiter = b"\r\n"

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.sendLine(b"220 ftx/1 list,sget,quit," + checksums.XXH128.encode("ascii"))

    def lineReceived(self, line: bytes) -> None:
        verb = line.split(b" ")[0]
        if verb == b"checksum":
            self.sendLine(b"200 checksum " + checksums.XXH128.encode("ascii"))
        elif verb == b"sget":
            body = self.factory.body
            self.sendLine(b"150 big.bin %d 0" % (len(body),))
            self.transport.write(body[:_FIRST])
            self.factory.asked.callback(self)
        elif verb == b"quit":
            self.sendLine(b"221 bye")
            self.transport.loseConnection()

    def sendRest(self) -> None:
        body = self.factory.body
        self.transport.write(body[_FIRST:])
        self.sendLine(b"250 " + xxhash.xxh3_128(body).hexdigest().encode("ascii"))


class _HeldBodyFactory(protocol.ServerFactory):
    protocol = _HeldBodyServer

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.asked: Deferred = Deferred()
        self.connections = []


class AutomaticThreadTests(TestCase):
    def setUp(self) -> None:
        self.started = []
        receive = ThreadedWriter.receive

        def counting(writer, *args):
            self.started.append(writer)
            return receive(writer, *args)

        self.patch(ThreadedWriter, "receive", counting)

    def test_defaultIsAutomatic(self) -> None:
        self.assertIsNone(FtxClientProtocol.bodyThreads)

    async def _connect(self, address: str):
        client = await connect(reactor, address)

        async def bye():
            if client.protocol.transport.connected:
                await client.quit()

        self.addCleanup(bye)
        return client

    async def test_progressCountsEachByteOnce(self) -> None:
        """
        A download read by a thread reports its progress as it goes and
        never more than the file: the thread's final count was added on
        top of what it had reported (a 20 MiB file once showed 37 MiB).
        """
        self.patch(threadedbody, "REPORT_EVERY", MiB)
        root, here = temporaryFolder(self), temporaryFolder(self)
        body = os.urandom(THREAD_MIN + 9 * MiB + 5)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(body)
        real = await listenInProcess(reactor, root)
        self.addCleanup(real.stopListening)
        client = await self._connect("tcp:127.0.0.1:{}".format(real.getHost().port))
        seen = []
        await client.sget("big.bin", os.path.join(here, "big.bin"), progress=lambda name, done, size: seen.append(done))
        self.assertEqual(len(self.started), 1)
        self.assertGreater(len(seen), 2)
        self.assertEqual(seen, sorted(seen))
        self.assertLessEqual(max(seen), len(body))
        self.assertEqual(seen[-1], len(body))

    async def test_otherConnectionsServedDuringThreadedBody(self) -> None:
        """
        While a thread waits for the rest of a body that the server holds
        back, the same reactor answers a C{list} and completes a whole
        large download on other connections, the latter through the
        reactor (it is not the one large body any more); then the held body
        completes, checked by its digest.
        """
        body = os.urandom(THREAD_MIN + 3 * MiB)
        held = _HeldBodyFactory(body)
        port = reactor.listenTCP(0, held, interface="127.0.0.1")

        def close():
            for connection in held.connections:
                connection.transport.abortConnection()
            return port.stopListening()

        self.addCleanup(close)
        root, here = temporaryFolder(self), temporaryFolder(self)
        other = os.urandom(THREAD_MIN + MiB)
        with open(os.path.join(root, "other.bin"), "wb") as f:
            f.write(other)
        real = await listenInProcess(reactor, root)
        self.addCleanup(real.stopListening)

        slow = await self._connect("tcp:127.0.0.1:{}".format(port.getHost().port))
        fast = await self._connect("tcp:127.0.0.1:{}".format(real.getHost().port))
        self.assertEqual(slow.protocol.checksum, checksums.XXH128)
        download = slow.sget("big.bin", os.path.join(here, "big.bin"))
        server = await held.asked
        # The thread takes the body over once the first bytes are read.
        for _ in range(200):
            if self.started:
                break
            await _tick()
        self.assertEqual(
            len(self.started), 1, "no thread: threads reading {}, reactor bodies {}".format(
                threadedbody.busy(), bodyreads.sharedPool.active),
        )
        self.assertTrue(threadedbody.busy())

        self.assertEqual([e.name for e in await fast.list()], ["other.bin"])
        transfer = await fast.sget("other.bin", os.path.join(here, "other.bin"))
        self.assertEqual(transfer.size, len(other))
        self.assertEqual(len(self.started), 1, "a second large body at once took a thread too")
        self.assertFalse(download.called)

        server.sendRest()
        transfer = await download
        self.assertEqual(transfer.size, len(body))
        with open(os.path.join(here, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), body)
        with open(os.path.join(here, "other.bin"), "rb") as f:
            self.assertEqual(f.read(), other)
        self.assertFalse(threadedbody.busy())

    async def _storedFrom(self, size: int, bodyThreads):
        """
        Download a file of C{size} bytes with C{bodyThreads}; return the
        threads that stored its bytes.
        """
        root, here = temporaryFolder(self), temporaryFolder(self)
        body = os.urandom(size)
        with open(os.path.join(root, "f.bin"), "wb") as f:
            f.write(body)
        port = await listenInProcess(reactor, root)
        self.addCleanup(port.stopListening)
        client = await self._connect("tcp:127.0.0.1:{}".format(port.getHost().port))
        client.protocol.bodyThreads = bodyThreads
        threads = set()
        store = localfiles.PartialFile.store

        def recording(partial, data):
            threads.add(threading.get_ident())
            return store(partial, data)

        self.patch(localfiles.PartialFile, "store", recording)
        await client.sget("f.bin", os.path.join(here, "f.bin"))
        with open(os.path.join(here, "f.bin"), "rb") as f:
            self.assertEqual(f.read(), body)
        return threads

    async def test_reactorNeverStores(self) -> None:
        """
        The bytes that came through the reactor before a body's thread
        started are stored by that thread, not by the reactor's.
        """
        threads = await self._storedFrom(THREAD_MIN + 5, None)
        self.assertEqual(len(self.started), 1)
        self.assertNotIn(threading.get_ident(), threads)

    async def test_reactorNeverStoresWithoutThread(self) -> None:
        """
        A body too short to be worth a thread once its first read is in
        (the C{ftx} command's setting) is stored by a worker, not by the
        reactor's thread.
        """
        threads = await self._storedFrom(1 * MiB + 100 * 1024, True)
        self.assertNotIn(threading.get_ident(), threads)
        self.assertTrue(threads)


def _tick() -> Deferred:
    d: Deferred = Deferred()
    reactor.callLater(0.01, d.callback, None)
    return d
