"""
A body read by a thread of its own (L{ftx._io.threadedbody}): exactly the
body's length, the line after it left in the socket for the reactor, every
byte stored and hashed, and the framing kept when storing fails or the
peer goes away; and, end to end, a client whose protocol reads bodies
that way downloads and resumes files byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import queue
import socket

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io import threadedbody
from ftx._io.threadedbody import ThreadedWriter
from ftx.client import connect
from ftx.client.localfiles import partialPath
from ftx.protocol import checksums
from tests.loopback import KiB, MiB, socketPair
from tests.support import listenInProcess, temporaryFolder

TRAILER = b"250 trailer\r\n"
_WAIT = 10.0


class _ThreadReactor:
    """
    The one reactor method the thread uses, C{callFromThread}, as a queue
    the test thread runs calls from.
    """

    def __init__(self) -> None:
        self.calls: "queue.Queue" = queue.Queue()

    def callFromThread(self, f, *args) -> None:
        self.calls.put((f, args))

    def runUntil(self, condition) -> None:
        """
        Run queued calls until C{condition()}; a bounded wait for each.
        """
        while not condition():
            f, args = self.calls.get(timeout=_WAIT)
            f(*args)


class _Sink:
    def __init__(self, failAfter=None) -> None:
        self.pieces = []
        self.failAfter = failAfter

    def store(self, data) -> None:
        if self.failAfter is not None and len(self.pieces) >= self.failAfter:
            raise OSError(28, "No space left on device")
        self.pieces.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)


def _sender(sock, data: bytes, close: bool = False):
    """
    Send C{data} from a thread (the socket buffer holds less than a body).
    """
    import threading

    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass
        if close:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class ThreadedWriterTests(SynchronousTestCase):
    """
    L{ThreadedWriter.receive} reads exactly a body's length from a
    non-blocking socket, stores and hashes it, and reports back through
    C{callFromThread}.
    """

    def _receive(self, body: bytes, length: int, sink=None, close=False, extra=TRAILER):
        mine, peer = socketPair(self)
        mine.setblocking(False)
        sink = sink or _Sink()
        hasher = checksums.new(checksums.XXH128)
        writer = ThreadedWriter(sink, hasher)
        clock = _ThreadReactor()
        progress, finished = [], []
        sender = _sender(peer, body + extra, close=close)
        writer.receive(clock, mine, length, progress.append, finished.append)
        clock.runUntil(lambda: finished)
        sender.join(_WAIT)
        return mine, writer, sink, hasher, progress, finished

    def test_readsExactlyTheBody(self):
        """
        Every byte of the body is stored and hashed, in order; the trailer
        after it is still in the socket; C{whenDrained} fires once done.
        """
        body = os.urandom(3 * MiB + 17)
        mine, writer, sink, hasher, progress, finished = self._receive(body, len(body))
        self.assertEqual(finished, [len(body)])
        self.assertEqual(sink.data, body)
        expected = checksums.new(checksums.XXH128)
        expected.update(body)
        self.assertEqual(hasher.hexdigest(), expected.hexdigest())
        self.assertIsNone(writer.error)
        mine.setblocking(True)
        mine.settimeout(_WAIT)
        self.assertEqual(mine.recv(100), TRAILER)
        self.assertEqual(self.successResultOf(writer.whenDrained()), None)

    def test_progressReported(self):
        """
        The reactor hears how far the thread got every L{REPORT_EVERY}
        bytes, and the rest at the end.
        """
        self.patch(threadedbody, "REPORT_EVERY", 256 * KiB)
        body = os.urandom(2 * MiB)
        _, _, sink, _, progress, finished = self._receive(body, len(body))
        self.assertGreater(len(progress), 0)
        self.assertLess(sum(progress), len(body))
        self.assertEqual(sink.data, body)

    def test_storeFailsFramingKept(self):
        """
        A store that fails (a full disk) is the writer's error; the rest
        of the body is still read and dropped, so the trailer comes next.
        """
        body = os.urandom(4 * MiB)
        mine, writer, sink, hasher, progress, finished = self._receive(body, len(body), sink=_Sink(failAfter=1))
        self.assertEqual(finished, [len(body)])
        self.assertIsInstance(writer.error, OSError)
        self.assertEqual(len(sink.pieces), 1)
        self.assertEqual(sink.data, body[: len(sink.data)])
        mine.setblocking(True)
        mine.settimeout(_WAIT)
        self.assertEqual(mine.recv(100), TRAILER)

    def test_peerClosesEarly(self):
        """
        A peer that closes in the middle of the body: the thread stops with
        what arrived, all of it stored, and reports the shorter count.
        """
        body = os.urandom(2 * MiB)
        _, writer, sink, _, _, finished = self._receive(body, 5 * MiB, close=True, extra=b"")
        self.assertEqual(finished, [len(body)])
        self.assertEqual(sink.data, body)
        self.assertIsNone(writer.error)

    def test_stop(self):
        """
        L{ThreadedWriter.stop} (the connection was dropped) ends a thread
        waiting for bytes that will not come.
        """
        mine, peer = socketPair(self)
        mine.setblocking(False)
        writer = ThreadedWriter(_Sink(), None)
        clock = _ThreadReactor()
        finished = []
        writer.receive(clock, mine, MiB, lambda n: None, finished.append)
        drained = writer.whenDrained()
        self.assertNoResult(drained)
        writer.stop()
        clock.runUntil(lambda: finished)
        self.assertEqual(finished, [0])
        self.successResultOf(drained)


class OneThreadTests(ThreadedWriterTests):
    """
    The same with one thread that receives, stores and hashes in turn
    (L{threadedbody.STORE_THREAD} off), as the limit client does.
    """

    def setUp(self):
        self.patch(threadedbody, "STORE_THREAD", False)


class ThreadedDownloadTests(TestCase):
    """
    A client protocol with C{bodyThreads} set (as the C{ftx} command sets
    it) downloads through L{ThreadedWriter}, and the result is the same
    file, checked by its digest, as through the reactor.
    """

    async def _client(self, root: str, bodyThreads: bool):
        port = await listenInProcess(reactor, root)
        self.addCleanup(port.stopListening)
        client = await connect(reactor, "tcp:127.0.0.1:{}".format(port.getHost().port))
        client.protocol.bodyThreads = bodyThreads

        async def bye():
            await client.quit()

        self.addCleanup(bye)
        return client

    def _countThreads(self):
        started = []
        receive = ThreadedWriter.receive

        def counting(writer, *args):
            started.append(writer)
            return receive(writer, *args)

        self.patch(ThreadedWriter, "receive", counting)
        return started

    async def test_sgetInThread(self):
        root, here = temporaryFolder(self), temporaryFolder(self)
        body = os.urandom(6 * MiB + 5)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(body)
        started = self._countThreads()
        client = await self._client(root, True)
        if client.protocol.checksum != checksums.XXH128:
            self.fail("the server did not agree on XXH3, so no body is read by a thread")
        target = os.path.join(here, "big.bin")
        transfer = await client.sget("big.bin", target)
        self.assertEqual(len(started), 1)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), body)
        self.assertEqual(transfer.size, len(body))
        # The connection goes on after the body: the trailer was read by
        # the reactor again.
        self.assertEqual([e.name for e in await client.list()], ["big.bin"])

    async def test_sgetWithoutThreadsByDefault(self):
        root, here = temporaryFolder(self), temporaryFolder(self)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(os.urandom(2 * MiB))
        started = self._countThreads()
        client = await self._client(root, False)
        await client.sget("big.bin", os.path.join(here, "big.bin"))
        self.assertEqual(started, [])

    async def test_cgetInThread(self):
        """
        A resume through the thread continues the partial file and checks
        the whole file's digest.
        """
        root, here = temporaryFolder(self), temporaryFolder(self)
        body = os.urandom(5 * MiB)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(body)
        target = os.path.join(here, "big.bin")
        with open(partialPath(target), "wb") as f:
            f.write(body[: 2 * MiB])
        started = self._countThreads()
        client = await self._client(root, True)
        transfer = await client.cget("big.bin", target)
        self.assertEqual(len(started), 1)
        self.assertEqual(transfer.transferred, 3 * MiB)
        with open(target, "rb") as f:
            self.assertEqual(hashlib.sha1(f.read()).hexdigest(), hashlib.sha1(body).hexdigest())
        self.assertFalse(os.path.exists(partialPath(target)))

    async def test_mgetInThread(self):
        """
        A batch of small and large files: the large ones through the
        thread, the small ones as before, all in place and intact.
        """
        root, here = temporaryFolder(self), temporaryFolder(self)
        files = {"a.bin": os.urandom(3 * MiB), "b.bin": os.urandom(10 * KiB), "c.bin": os.urandom(2 * MiB + 1)}
        for name, data in files.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        started = self._countThreads()
        client = await self._client(root, True)
        await client.mget("*", here)
        self.assertEqual(len(started), 2)
        for name, data in files.items():
            with open(os.path.join(here, name), "rb") as f:
                self.assertEqual(f.read(), data, name)
