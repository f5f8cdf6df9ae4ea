"""
Upload bodies moved by threads of their own: the client's
L{ftx._io.threadedsend} (C{sendfile} in a loop, each piece hashed just
before it goes) and the server's L{ftx._io.threadedreceive} (C{recv_into},
write and hash in one thread). Each sends or reads exactly the body's
length, so the trailer stays with the reactor; and, end to end, a client
with C{bodyThreads} set (as the C{ftx} command sets it) uploads files
byte for byte through both, resumes, fails cleanly on a full disk, and
goes on using the connection afterwards.
"""

from __future__ import annotations

import errno
import os
import queue
import socket
import threading

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io import threadedreceive, threadedsend
from ftx._io.threadedreceive import ThreadedReceive
from ftx._io.threadedsend import ThreadedSend
from ftx.client import connect
from ftx.errors import NoSpace
from ftx.protocol import checksums
from ftx.server.partial import Upload
from tests.clitools import ftx, serverFor
from tests.clitools import temporaryFolder as localFolder
from tests.loopback import KiB, MiB, socketPair
from tests.support import listenInProcess, temporaryFolder

TRAILER = b"xxh128 0123\r\n"
_WAIT = 10.0


class _ThreadReactor:
    """
    The one reactor method the threads use, C{callFromThread}, as a queue
    the test thread runs calls from.
    """

    def __init__(self) -> None:
        self.calls: "queue.Queue" = queue.Queue()

    def callFromThread(self, f, *args) -> None:
        self.calls.put((f, args))

    def runUntil(self, condition) -> None:
        while not condition():
            f, args = self.calls.get(timeout=_WAIT)
            f(*args)


def _xxh(data: bytes) -> str:
    hasher = checksums.new(checksums.XXH128)
    hasher.update(data)
    return hasher.hexdigest()


def _readAll(sock, count: int, into: list) -> threading.Thread:
    """
    Read exactly C{count} bytes of C{sock} in a thread, into C{into}.
    """

    def run():
        sock.settimeout(_WAIT)
        pieces, left = [], count
        while left:
            data = sock.recv(min(left, MiB))
            if not data:
                break
            pieces.append(data)
            left -= len(data)
        into.append(b"".join(pieces))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class ThreadedSendTests(SynchronousTestCase):
    """
    L{ThreadedSend} sends a range of a file to a non-blocking socket,
    hashing it on the way, and reports back through C{callFromThread}.
    """

    def _file(self, data: bytes):
        path = os.path.join(temporaryFolder(self), "source.bin")
        with open(path, "wb") as f:
            f.write(data)
        f = open(path, "rb", buffering=0)
        self.addCleanup(f.close)
        return f

    def test_sendsExactlyTheRange(self):
        """
        The bytes from the offset, no more: what the socket carries after
        them is the caller's (the trailer); the hasher saw those same
        bytes; the progress reports add up to the whole.
        """
        self.patch(threadedsend, "REPORT_EVERY", 512 * KiB)
        data = os.urandom(3 * MiB + 11)
        f = self._file(data)
        mine, peer = socketPair(self)
        mine.setblocking(False)
        hasher = checksums.new(checksums.XXH128)
        sender = ThreadedSend(mine, f.fileno(), 5, len(data) - 5, hasher)
        clock = _ThreadReactor()
        progress, finished, received = [], [], []
        reader = _readAll(peer, len(data) - 5 + len(TRAILER), received)
        sender.start(clock, progress.append, finished.append)
        clock.runUntil(lambda: finished)
        self.assertEqual(finished, [len(data) - 5])
        self.assertIsNone(sender.error)
        self.assertEqual(sum(progress), len(data) - 5)
        self.assertEqual(hasher.hexdigest(), _xxh(data[5:]))
        mine.sendall(TRAILER)
        reader.join(_WAIT)
        self.assertEqual(received, [data[5:] + TRAILER])

    def test_fileShorterThanSaid(self):
        """
        A file that ends before the body does is an L{EOFError}, with what
        went reported.
        """
        data = os.urandom(MiB)
        f = self._file(data)
        mine, peer = socketPair(self)
        mine.setblocking(False)
        sender = ThreadedSend(mine, f.fileno(), 0, 2 * MiB, checksums.new(checksums.XXH128))
        clock = _ThreadReactor()
        finished, received = [], []
        reader = _readAll(peer, len(data), received)
        sender.start(clock, lambda n: None, finished.append)
        clock.runUntil(lambda: finished)
        self.assertEqual(finished, [len(data)])
        self.assertIsInstance(sender.error, EOFError)
        reader.join(_WAIT)
        self.assertEqual(received, [data])

    def test_stopWhilePeerDoesNotRead(self):
        """
        L{ThreadedSend.stop} (the connection was dropped) ends a thread
        waiting for room the peer will never make; the socket the caller
        holds is still its own, open.
        """
        f = self._file(os.urandom(16 * MiB))
        mine, peer = socketPair(self)
        mine.setblocking(False)
        sender = ThreadedSend(mine, f.fileno(), 0, 16 * MiB)
        clock = _ThreadReactor()
        finished = []
        sender.start(clock, lambda n: None, finished.append)
        sender.stop()
        clock.runUntil(lambda: finished)
        self.assertLess(finished[0], 16 * MiB)
        self.assertIsNone(sender.error)
        self.assertNotEqual(mine.fileno(), -1)


class _Sink:
    def __init__(self, failAfter=None) -> None:
        self.pieces = []
        self.failAfter = failAfter

    def store(self, data) -> None:
        if self.failAfter is not None and len(self.pieces) >= self.failAfter:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.pieces.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)


def _send(sock, data: bytes) -> threading.Thread:
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class ThreadedReceiveTests(SynchronousTestCase):
    """
    L{ThreadedReceive} reads exactly a body's length from a non-blocking
    socket, storing and hashing each read in its thread.
    """

    def _receive(self, body: bytes, length: int, sink=None, extra=TRAILER):
        mine, peer = socketPair(self)
        mine.setblocking(False)
        sink = sink or _Sink()
        hasher = checksums.new(checksums.XXH128)
        receiver = ThreadedReceive(mine, length, sink.store, hasher)
        clock = _ThreadReactor()
        finished = []
        receiver.finished.addCallback(finished.append)
        sender = _send(peer, body + extra)
        receiver.start(clock, lambda n: None)
        clock.runUntil(lambda: finished)
        sender.join(_WAIT)
        return mine, peer, receiver, sink, hasher, finished

    def test_readsExactlyTheBody(self):
        body = os.urandom(3 * MiB + 17)
        mine, _, receiver, sink, hasher, finished = self._receive(body, len(body))
        self.assertEqual(finished, [len(body)])
        self.assertEqual(sink.data, body)
        self.assertEqual(hasher.hexdigest(), _xxh(body))
        self.assertIsNone(receiver.error)
        mine.setblocking(True)
        mine.settimeout(_WAIT)
        self.assertEqual(mine.recv(100), TRAILER)

    def test_storeFailsFramingKept(self):
        """
        A store that fails (a full disk) is the receiver's error; the rest
        of the body is still read and dropped, so the trailer comes next.
        """
        body = os.urandom(2 * MiB)
        mine, _, receiver, sink, _, finished = self._receive(body, len(body), sink=_Sink(failAfter=1))
        self.assertEqual(finished, [len(body)])
        self.assertIsInstance(receiver.error, OSError)
        self.assertEqual(sink.data, body[: len(sink.data)])
        mine.setblocking(True)
        mine.settimeout(_WAIT)
        self.assertEqual(mine.recv(100), TRAILER)

    def test_quietClientGetsTheSocketBack(self):
        """
        A client that stops sending halfway: after L{HAND_BACK_SECONDS}
        the thread ends with what arrived, all of it stored, so the
        reactor's timers and reads take over.
        """
        self.patch(threadedreceive, "HAND_BACK_SECONDS", 0.3)
        body = os.urandom(MiB)
        _, _, receiver, sink, _, finished = self._receive(body, 4 * MiB, extra=b"")
        self.assertEqual(finished, [len(body)])
        self.assertEqual(sink.data, body)
        self.assertIsNone(receiver.error)

    def test_stop(self):
        mine, _ = socketPair(self)
        mine.setblocking(False)
        receiver = ThreadedReceive(mine, MiB, _Sink().store, checksums.new(checksums.XXH128))
        clock = _ThreadReactor()
        finished = []
        receiver.finished.addCallback(finished.append)
        receiver.start(clock, lambda n: None)
        receiver.stop()
        clock.runUntil(lambda: finished)
        self.assertEqual(finished, [0])

    def test_slots(self):
        """
        No more bodies are read by threads at once than the slots allow.
        """
        slots = threadedreceive.Slots(2)
        self.assertEqual([slots.take(), slots.take(), slots.take()], [True, True, False])
        slots.give()
        self.assertTrue(slots.take())


class ThreadedUploadTests(TestCase):
    """
    A client protocol with C{bodyThreads} set uploads to an in-process
    server through both threads, and the server stores what was sent,
    checked by its digest.
    """

    def setUp(self):
        # Small files cross the thresholds, so the test stays fast.
        self.patch(threadedreceive, "THREAD_MIN", MiB)
        self.sends, self.receives = [], []
        sendStart, receiveStart = ThreadedSend.start, ThreadedReceive.start

        def countSend(sender, *args):
            self.sends.append(sender)
            return sendStart(sender, *args)

        def countReceive(receiver, *args):
            self.receives.append(receiver)
            return receiveStart(receiver, *args)

        self.patch(ThreadedSend, "start", countSend)
        self.patch(ThreadedReceive, "start", countReceive)

    async def _client(self, root: str, bodyThreads: bool = True):
        port = await listenInProcess(reactor, root)
        self.addCleanup(port.stopListening)
        client = await connect(reactor, "tcp:127.0.0.1:{}".format(port.getHost().port))
        client.protocol.bodyThreads = bodyThreads

        async def bye():
            if client.protocol.transport.connected:
                await client.quit()

        self.addCleanup(bye)
        return client

    def _local(self, data: bytes, name: str = "big.bin") -> str:
        path = os.path.join(temporaryFolder(self), name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    async def test_putThroughThreads(self):
        root = temporaryFolder(self)
        data = os.urandom(6 * MiB + 3)
        client = await self._client(root)
        if client.protocol.checksum != checksums.XXH128:
            self.fail("the server did not agree on XXH3")
        transfer = await client.put(self._local(data))
        self.assertEqual((len(self.sends), len(self.receives)), (1, 1))
        self.assertEqual(transfer.digest, _xxh(data))
        with open(os.path.join(root, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(threadedreceive.slots.used, 0)
        # The trailer and what follows went through the reactor again.
        self.assertEqual([e.name for e in await client.list()], ["big.bin"])
        again = await client.put(self._local(data[::-1], "two.bin"))
        self.assertEqual(again.digest, _xxh(data[::-1]))
        self.assertEqual((len(self.sends), len(self.receives)), (2, 2))

    async def test_noSendThreadByDefault(self):
        root = temporaryFolder(self)
        data = os.urandom(3 * MiB)
        client = await self._client(root, bodyThreads=False)
        await client.put(self._local(data))
        self.assertEqual(self.sends, [])
        # The server reads a large body in a thread whoever the client is.
        self.assertEqual(len(self.receives), 1)
        with open(os.path.join(root, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), data)

    async def test_resumeThroughThreads(self):
        """
        A resumed upload sends the rest from its offset; the server checks
        the whole file's digest.
        """
        root = temporaryFolder(self)
        data = os.urandom(5 * MiB)
        with open(os.path.join(root, ".big.bin.ftx-partial"), "wb") as f:
            f.write(data[: 2 * MiB])
        client = await self._client(root)
        transfer = await client.put(self._local(data), resume=True)
        self.assertEqual(transfer.transferred, 3 * MiB)
        self.assertEqual(transfer.digest, _xxh(data))
        with open(os.path.join(root, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), data)

    async def test_fullDiskInTheThread(self):
        """
        A write that fails in the server's body thread: the body is still
        read to its end, the upload fails with C{507}, nothing is kept
        under the name, and the connection goes on.
        """
        root = temporaryFolder(self)
        written = []

        def fullDisk(upload, data):
            if sum(written) + len(data) > 2 * MiB:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written.append(len(data))
            upload._file.write(data)

        self.patch(Upload, "_writeBytes", fullDisk)
        client = await self._client(root)
        with self.assertRaises(NoSpace):
            await client.put(self._local(os.urandom(6 * MiB)))
        self.assertEqual(len(self.receives), 1)
        self.assertEqual(os.listdir(root), [])
        self.assertEqual(threadedreceive.slots.used, 0)
        self.assertEqual(await client.list(), [])

    async def test_clientGoneMidBody(self):
        """
        A client that drops the connection halfway: the server's thread
        stops, gives its slot back, and the partial file keeps what
        arrived, for a resume.
        """
        self.patch(threadedreceive, "HAND_BACK_SECONDS", 0.3)
        root = temporaryFolder(self)
        port = await listenInProcess(reactor, root)
        self.addCleanup(port.stopListening)
        address = ("127.0.0.1", port.getHost().port)
        sock = socket.create_connection(address, timeout=_WAIT)
        self.addCleanup(sock.close)

        def begin():
            # In a thread: the server greets from this reactor.
            sock.recv(1000)
            sock.sendall(b"put cut.bin %d\r\n" % (8 * MiB,))
            answer = sock.recv(1000)
            sock.sendall(os.urandom(3 * MiB))
            return answer

        self.assertTrue((await deferToThread(begin)).startswith(b"350"))
        partial = os.path.join(root, ".cut.bin.ftx-partial")
        await _until(lambda: os.path.exists(partial) and os.path.getsize(partial) == 3 * MiB and self.receives)
        sock.close()
        await _until(lambda: threadedreceive.slots.used == 0)
        self.assertEqual(os.path.getsize(partial), 3 * MiB)
        self.assertFalse(os.path.exists(os.path.join(root, "cut.bin")))


async def _until(condition, timeout: float = _WAIT) -> None:
    """
    Let the reactor run until C{condition()}, for at most C{timeout} s.
    """
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError("condition not met in {} s".format(timeout))
        d: Deferred = Deferred()
        reactor.callLater(0.02, d.callback, None)
        await d
        waited += 0.02


class CommandUploadTests(SynchronousTestCase):
    """
    The real C{ftx put} against a real C{twistd ftx}: a body above the
    server's L{threadedreceive.THREAD_MIN} goes through both threads (the
    command sets C{bodyThreads}), and the stored file is the local one.
    """

    def test_putLargeFile(self):
        server = serverFor(self)
        local = localFolder(self)
        data = os.urandom(threadedreceive.THREAD_MIN + 3 * MiB + 7)
        (local / "big.bin").write_bytes(data)
        result = ftx(server, "put", "big.bin", cwd=local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((server.rootPath / "big.bin").read_bytes(), data)
        self.assertEqual(sorted(p.name for p in server.rootPath.iterdir()), ["big.bin"])
