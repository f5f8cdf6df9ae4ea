"""
The performance fast paths, checked for what they must not change: the
bytes that arrive. C{sendfile} with a digest hashed aside or cached,
bodies read with C{recv_into} into pooled buffers, storing and hashing in
two worker lanes, small files sent and stored whole, and the command
line's C{mget} done as one server request.

The unit tests (socket pairs and fake reactors) are trial
C{SynchronousTestCase}s; the loopback and command-line tests are
pytest-twisted functions, which trial does not collect.
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import socket
import tempfile
import threading
import time

import pytest
import pytest_twisted
from twisted.internet import main, reactor, task
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx._io import bodyreads, filebody, internals, zerocopy
from ftx._io.background import HIGH_WATER, LOW_WATER, BackgroundWriter
from ftx.client import localfiles
from ftx.client.api import connect
from ftx.server import digests as digestcache
from ftx.server.filesystem import FilesystemStorage
from ftx.server.partial import partialName
from ftx.server.protocol import FtxServerFactory
from tests.support import (
    ServerProcess,
    digestOf,
    listenInProcess,
    runFtx,
    sha1,
    writeRandom,
)

KiB = 1 << 10
MiB = 1 << 20


def _tempDir(case: SynchronousTestCase) -> str:
    path = tempfile.mkdtemp(prefix="ftx-fastpaths-")
    case.addCleanup(shutil.rmtree, path, True)
    return path


def _randomFile(case: SynchronousTestCase, size: int, seed: int = 0):
    """
    A temporary file of C{size} reproducible random bytes, open for reading
    without buffering, and its content.
    """
    path = os.path.join(_tempDir(case), "data.bin")
    writeRandom(path, size, seed)
    with open(path, "rb") as f:
        content = f.read()
    f = open(path, "rb", buffering=0)
    case.addCleanup(f.close)
    return f, content


def _socketPair(case: SynchronousTestCase):
    a, b = socket.socketpair()
    case.addCleanup(a.close)
    case.addCleanup(b.close)
    return a, b


def _tcpPair(case: SynchronousTestCase):
    """
    Two ends of a TCP connection on 127.0.0.1 (C{SO_RCVLOWAT} is a TCP
    matter).
    """
    listener = socket.create_server(("127.0.0.1", 0))
    case.addCleanup(listener.close)
    b = socket.create_connection(listener.getsockname(), timeout=10)
    case.addCleanup(b.close)
    a, _ = listener.accept()
    case.addCleanup(a.close)
    return a, b


class _Reader(threading.Thread):
    """
    Reads a socket until end of file, in a thread, so that a blocking
    sender never waits on the test itself.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.chunks = []

    def run(self) -> None:
        self.sock.settimeout(20)
        try:
            while True:
                chunk = self.sock.recv(256 * KiB)
                if not chunk:
                    return
                self.chunks.append(chunk)
        except OSError:
            return

    def received(self) -> bytes:
        self.join(20)
        return b"".join(self.chunks)


def _drain(sock: socket.socket) -> bytes:
    """
    Whatever is waiting in C{sock} right now.
    """
    sock.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = sock.recv(256 * KiB)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# -- ftx._io.zerocopy ----------------------------------------------------------


class SendSomeTests(SynchronousTestCase):
    """
    L{zerocopy.sendSome} moves exactly the asked-for range of a file to a
    socket, and never blocks the reactor on a full socket.
    """

    def test_sendsTheExactRangeFromAnOffset(self):
        f, content = _randomFile(self, 600 * KiB, seed=11)
        a, b = _socketPair(self)
        reader = _Reader(b)
        reader.start()
        offset, count = 12345, 300000
        sent = zerocopy.sendSome(a, f.fileno(), offset, count)
        a.shutdown(socket.SHUT_WR)
        self.assertEqual(sent, count)
        self.assertEqual(reader.received(), content[offset : offset + count])

    def test_oneCallSendsAtMostATurn(self):
        """
        A single call stops after L{zerocopy.TURN} bytes, so one fast
        reader cannot keep the reactor from the other connections.
        """
        f, content = _randomFile(self, zerocopy.TURN + 4 * KiB, seed=12)
        a, b = _socketPair(self)
        reader = _Reader(b)
        reader.start()
        sent = zerocopy.sendSome(a, f.fileno(), 0, len(content))
        a.shutdown(socket.SHUT_WR)
        self.assertEqual(sent, zerocopy.TURN)
        self.assertEqual(reader.received(), content[: zerocopy.TURN])

    def test_fileShorterThanTheRangeRaisesEOFError(self):
        f, content = _randomFile(self, 1000, seed=13)
        a, b = _socketPair(self)
        with self.assertRaises(EOFError):
            zerocopy.sendSome(a, f.fileno(), 900, 200)
        # What the file did have went out; nothing else.
        self.assertEqual(_drain(b), content[900:])
        with self.assertRaises(EOFError):
            zerocopy.sendSome(a, f.fileno(), 1000, 1)
        self.assertEqual(_drain(b), b"")

    def test_fullNonBlockingSocketReturnsShortInsteadOfBlocking(self):
        size = 2 * MiB
        f, content = _randomFile(self, size, seed=14)
        a, b = _socketPair(self)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * KiB)
        a.setblocking(False)
        calls = []
        outcome = {}

        def sendUntilFull():
            total = 0
            try:
                for _ in range(100):
                    n = zerocopy.sendSome(a, f.fileno(), total, size - total)
                    calls.append(n)
                    total += n
                    if n == 0:
                        break
            except BaseException as e:
                outcome["error"] = e
            outcome["total"] = total

        worker = threading.Thread(target=sendUntilFull, daemon=True)
        worker.start()
        worker.join(10)
        if worker.is_alive():
            # Blocked on the peer that never reads: free it, then fail.
            b.close()
            worker.join(10)
            self.fail("sendSome blocked on a full non-blocking socket")
        self.assertNotIn("error", outcome)
        total = outcome["total"]
        self.assertLess(calls[0], size)
        self.assertEqual(calls[-1], 0)
        self.assertGreater(total, 0)
        self.assertLess(total, size)
        self.assertEqual(_drain(b), content[:total])

    def test_noSocketForInMemoryTransports(self):
        self.assertIsNone(internals.socketOf(StringTransport()))


# -- ftx._io.bodyreads ---------------------------------------------------------


class _FakeTransport:
    """
    Where L{bodyreads.DirectBody} installs its C{doRead}: like a Twisted
    transport, it has a C{doRead} of its own for the reactor to call.
    """

    def doRead(self):
        raise AssertionError("the transport's own doRead ran while a body was being read directly")


TRAILER = b"250 trailer\r\n"


def _collector():
    """
    A list and a C{deliver} for L{bodyreads.DirectBody} that copies each
    read into it and gives its buffer back at once.
    """
    pieces = []

    def deliver(data, release):
        pieces.append(bytes(data))
        if release is not None:
            release()

    return pieces, deliver


class DirectBodyTests(SynchronousTestCase):
    """
    L{bodyreads.DirectBody} reads exactly a body's length from a socket
    into pooled buffers and leaves what follows for the protocol.

    A read is delivered either as a view lent from a pooled buffer, with
    the callable that gives it back, or (for a short read) as bytes of its
    own with no such callable; both are accepted here.
    """

    def _feed(self, data: bytes, closeAfter: bool = False):
        """
        A socket pair whose far end sends C{data} from a thread; returns the
        near end, non-blocking, once the data is all in the socket (or after
        a bounded wait), so that reads come in full-sized pieces.
        """
        a, b = _socketPair(self)
        # Room for the whole body in the socket, where the system allows it.
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)
        a.setblocking(False)
        sent = threading.Event()

        def send():
            try:
                b.sendall(data)
                if closeAfter:
                    b.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sent.set()

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        self.addCleanup(writer.join, 10)
        # If a test fails midway the writer may be stuck in sendall:
        # closing the reading end (cleanups run last-in first-out) frees it.
        self.addCleanup(a.close)
        sent.wait(2)
        return a

    def _readBody(self, sock, length, deliver, pool, clock=None):
        """
        Install a L{bodyreads.DirectBody} on a fake transport and call its
        C{doRead} as data arrives, until C{done} (or the read returns
        something), within a bounded number of rounds.
        """
        transport = _FakeTransport()
        finished = []
        body = bodyreads.DirectBody(transport, sock, length, pool, deliver, lambda: finished.append(True), clock)
        body.install()
        self.assertEqual(transport.doRead, body.doRead)
        result = None
        for _ in range(5000):
            if finished:
                break
            select.select([sock], [], [], 1.0)
            result = transport.doRead()
            if result is not None:
                break
        return transport, finished, result

    def test_deliversTheBodyAndLeavesTheTrailer(self):
        body = os.urandom(3 * MiB + 17)
        sock = self._feed(body + TRAILER)
        pool = bodyreads.BufferPool()
        pieces = []
        lent = []

        def deliver(data, release):
            pieces.append(bytes(data))
            if release is not None:
                lent.append(memoryview(data).obj)
                release()

        transport, finished, result = self._readBody(sock, len(body), deliver, pool)
        self.assertEqual(finished, [True])
        self.assertIsNone(result)
        self.assertEqual(b"".join(pieces), body)
        # Back on the transport's own reads, and the pool knows the body
        # is over.
        self.assertNotIn("doRead", transport.__dict__)
        self.assertEqual(pool.active, 0)
        # Buffers given back at once are lent again: three megabytes did
        # not need a buffer each.
        self.assertTrue(lent, "no read was lent from the pool")
        self.assertLessEqual(len({id(buffer) for buffer in lent}), 2)
        sock.setblocking(True)
        sock.settimeout(10)
        trailer = b""
        while len(trailer) < len(TRAILER):
            chunk = sock.recv(len(TRAILER) - len(trailer))
            if not chunk:
                break
            trailer += chunk
        self.assertEqual(trailer, TRAILER)

    def _lowWaterWhileReading(self, sock, length):
        """
        Read a body from C{sock}; the C{SO_RCVLOWAT} values seen as each
        read is delivered, the bytes, and the value left once it is over.
        """
        seen, pieces = [], []

        def deliver(data, release):
            pieces.append(bytes(data))
            seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))
            if release is not None:
                release()

        clock = task.Clock()
        transport, finished, result = self._readBody(sock, length, deliver, bodyreads.BufferPool(), clock)
        self.assertEqual(finished, [True])
        self.assertEqual(clock.getDelayedCalls(), [])
        return seen, b"".join(pieces), sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)

    def test_lowWaterRisesForAFastSenderAndIsReset(self):
        """
        Bytes arriving fast make the socket wake the reader only for a good
        part of a buffer; once the body is over, the line after it is read
        as soon as it arrives again.
        """
        body = os.urandom(3 * MiB + 17)
        a, b = _tcpPair(self)
        b.sendall(body[: 2 * MiB])
        a.setblocking(False)
        writer = threading.Thread(target=b.sendall, args=(body[2 * MiB :] + TRAILER,), daemon=True)
        writer.start()
        self.addCleanup(writer.join, 10)
        seen, received, after = self._lowWaterWhileReading(a, len(body))
        self.assertEqual(received, body)
        self.assertIn(bodyreads.LOW_WATER, seen)
        self.assertEqual(after, 1)

    def test_lowWaterStaysLowForASlowSender(self):
        """
        A sender that trickles is not made to fill 256 KiB before each
        wake-up: the reader waits at most about 50 ms' worth of its rate.
        """
        body = os.urandom(160 * KiB)
        a, b = _tcpPair(self)
        a.setblocking(False)

        def trickle():
            for start in range(0, len(body), 4 * KiB):
                b.sendall(body[start : start + 4 * KiB])
                time.sleep(0.005)

        writer = threading.Thread(target=trickle, daemon=True)
        writer.start()
        self.addCleanup(writer.join, 10)
        seen, received, after = self._lowWaterWhileReading(a, len(body))
        self.assertEqual(received, body)
        # About 40 KB arrive in 50 ms: the reader waits for 32 KiB at a
        # time, not for the whole body.
        self.assertLessEqual(max(seen), 64 * KiB)
        self.assertGreaterEqual(len(seen), 4)
        self.assertEqual(after, 1)

    def test_lowWaterDropsWhenTheSenderStops(self):
        """
        A sender that stops mid-body after a fast start: within
        L{bodyreads.LOW_WATER_STALL} the mark is back to one byte and every
        byte it sent is read and delivered (an interrupted upload keeps all
        of it for a resume).
        """
        a, b = _tcpPair(self)
        a.setblocking(False)
        sent = os.urandom(2 * MiB + 1000)
        b.sendall(sent)
        clock = task.Clock()
        pieces, deliver = _collector()

        transport = _FakeTransport()
        body = bodyreads.DirectBody(transport, a, 3 * MiB, bodyreads.BufferPool(), deliver, lambda: None, clock)
        body.install()
        for _ in range(100):
            if not select.select([a], [], [], 0.2)[0]:
                break
            transport.doRead()
        received = sum(len(p) for p in pieces)
        self.assertLess(received, len(sent), "the low-water mark never held back a partial read")
        self.assertGreater(a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT), 1)
        clock.advance(bodyreads.LOW_WATER_STALL)
        self.assertEqual(a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT), 1)
        for _ in range(100):
            if not select.select([a], [], [], 0.2)[0]:
                break
            transport.doRead()
        self.assertEqual(b"".join(pieces), sent)
        body.uninstall()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_unreleasedViewKeepsItsBytes(self):
        """
        A buffer goes back to the pool only when it is released: a view
        held while megabytes more arrive still shows the bytes it was
        delivered with, and no later read lands in its buffer.
        """
        body = os.urandom(3 * MiB + 5)
        sock = self._feed(body + TRAILER)
        pool = bodyreads.BufferPool()
        held = []
        pieces = []
        otherBuffers = []

        def deliver(data, release):
            pieces.append(bytes(data))
            if release is None:
                return
            if not held:
                offset = sum(len(piece) for piece in pieces[:-1])
                held.append((data, bytes(data), release, offset))
                return
            buffer = memoryview(data).obj
            if buffer is not held[0][0].obj:
                otherBuffers.append(buffer)
            elif otherBuffers:
                self.fail("a read landed in the held buffer before it was released")
            release()

        transport, finished, result = self._readBody(sock, len(body), deliver, pool)
        self.assertEqual(finished, [True])
        self.assertEqual(b"".join(pieces), body)
        self.assertTrue(held, "no read was lent from the pool")
        self.assertTrue(otherBuffers, "the body never needed another buffer")
        view, original, release, offset = held[0]
        self.assertEqual(bytes(view), original)
        self.assertEqual(original, body[offset : offset + len(original)])
        release()

    def test_peerClosingMidwayEndsTheBody(self):
        sent = os.urandom(100 * KiB)
        sock = self._feed(sent, closeAfter=True)
        pool = bodyreads.BufferPool()
        pieces, deliver = _collector()

        transport, finished, result = self._readBody(sock, 2 * MiB, deliver, pool)
        self.assertEqual(finished, [])
        self.assertIs(result, main.CONNECTION_DONE)
        self.assertEqual(b"".join(pieces), sent)
        self.assertNotIn("doRead", transport.__dict__)
        self.assertEqual(pool.active, 0)


# -- ftx._io.background --------------------------------------------------------


class _QueuedPool:
    """
    A thread pool that runs nothing until the test says so: submitted
    jobs wait in C{jobs}.
    """

    def __init__(self) -> None:
        self.jobs = []

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        self.jobs.append((onResult, f, args, kwargs))


class _FakeReactor:
    def __init__(self) -> None:
        self.pool = _QueuedPool()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class _Sink:
    def __init__(self) -> None:
        self.stored = []
        self.failWith = None

    def store(self, data) -> None:
        if self.failWith is not None:
            raise self.failWith
        self.stored.append(len(data))


class _Hasher:
    def __init__(self) -> None:
        self.updated = []

    def update(self, data) -> None:
        self.updated.append(len(data))


class BackgroundWriterTests(SynchronousTestCase):
    """
    L{BackgroundWriter}'s two lanes, run one batch at a time by the test.
    """

    def setUp(self) -> None:
        self.reactor = _FakeReactor()
        self.sink = _Sink()
        self.hasher = _Hasher()
        self.paused = 0
        self.resumed = 0
        self.writer = BackgroundWriter(self.sink, self.reactor, self._pause, self._resume, self.hasher)

    def _pause(self) -> None:
        self.paused += 1

    def _resume(self) -> None:
        self.resumed += 1

    def runBatch(self, lane: str) -> int:
        """
        Run the first queued batch of C{lane} and report it done; returns
        how many pieces it held.
        """
        jobs = self.reactor.pool.jobs
        for index, (onResult, f, args, kwargs) in enumerate(jobs):
            if self._laneOf(f, args, kwargs) == lane:
                del jobs[index]
                stored, updated = len(self.sink.stored), len(self.hasher.updated)
                try:
                    result = f(*args, **kwargs)
                except BaseException:
                    onResult(False, Failure())
                    return 0
                touched = (len(self.sink.stored) - stored) + (len(self.hasher.updated) - updated)
                onResult(True, result)
                return touched
        self.fail("no queued batch for the {} lane".format(lane))

    def _laneOf(self, f, args, kwargs) -> str:
        """
        The lane ("store" or "hash") a queued job belongs to, told from
        what its work touches in a dry run against fresh recorders, without
        looking inside the lane.
        """
        stored, updated = self.sink.stored, self.hasher.updated
        self.sink.stored, self.hasher.updated = [], []
        try:
            try:
                f(*args, **kwargs)
            except BaseException:
                return "store"
            return "store" if self.sink.stored else "hash"
        finally:
            self.sink.stored, self.hasher.updated = stored, updated

    def test_releaseWaitsForBothLanes(self):
        released = []
        self.writer.write(b"x" * 10, lambda: released.append("first"))
        self.runBatch("store")
        self.assertEqual(released, [])
        self.runBatch("hash")
        self.assertEqual(released, ["first"])
        self.writer.write(b"y" * 10, lambda: released.append("second"))
        self.runBatch("hash")
        self.assertEqual(released, ["first"])
        self.runBatch("store")
        self.assertEqual(released, ["first", "second"])
        self.assertEqual(self.sink.stored, [10, 10])
        self.assertEqual(self.hasher.updated, [10, 10])

    def test_releaseInOrderAcrossBatches(self):
        """
        Pieces written while a lane is busy form its next batch; each piece
        is released once both lanes are past it, never earlier.
        """
        released = []
        for name in ("a", "b", "c"):
            self.writer.write(name.encode() * 5, lambda name=name: released.append(name))
        self.assertEqual(self.runBatch("store"), 1)
        self.assertEqual(self.runBatch("store"), 2)
        self.assertEqual(released, [])
        self.assertEqual(self.runBatch("hash"), 1)
        self.assertEqual(released, ["a"])
        self.assertEqual(self.runBatch("hash"), 2)
        self.assertEqual(released, ["a", "b", "c"])
        self.assertEqual(self.reactor.pool.jobs, [])

    def test_whenDrainedWaitsForBothLanes(self):
        self.assertTrue(self.writer.whenDrained().called)
        self.writer.write(b"z" * 100)
        drained = self.writer.whenDrained()
        self.assertFalse(drained.called)
        self.runBatch("hash")
        self.assertFalse(drained.called)
        self.runBatch("store")
        self.assertTrue(drained.called)
        self.assertTrue(self.writer.whenDrained().called)

    def test_pausesAboveHighWaterAndResumesBelowLowWater(self):
        piece = bytes(3 * MiB)
        count = HIGH_WATER // len(piece) + 1
        for _ in range(count):
            self.writer.write(piece)
        self.assertGreater(count * len(piece), HIGH_WATER)
        self.assertEqual(self.paused, 1)
        self.writer.write(piece)
        self.assertEqual(self.paused, 1)
        # Store lane empties; the hash lane still holds everything.
        while any(self._laneOf(f, a, k) == "store" for _, f, a, k in self.reactor.pool.jobs):
            self.runBatch("store")
        self.assertEqual(self.resumed, 0)
        # One hash batch done: the rest is still above the low mark.
        self.assertEqual(self.runBatch("hash"), 1)
        self.assertGreaterEqual(count * len(piece), LOW_WATER)
        self.assertEqual(self.resumed, 0)
        while self.reactor.pool.jobs:
            self.runBatch("hash")
        self.assertEqual(self.resumed, 1)
        self.assertEqual(self.paused, 1)
        self.assertEqual(len(self.sink.stored), count + 1)
        self.assertEqual(len(self.hasher.updated), count + 1)

    def test_storeFailureReleasesEverythingAndDrains(self):
        released = []
        self.sink.failWith = OSError(28, "No space left on device")
        self.writer.write(b"a" * 10, lambda: released.append("a"))
        self.writer.write(b"b" * 10, lambda: released.append("b"))
        drained = self.writer.whenDrained()
        self.runBatch("store")
        self.assertIsInstance(self.writer.error, OSError)
        while self.reactor.pool.jobs:
            self.runBatch("hash")
        self.assertEqual(sorted(released), ["a", "b"])
        self.assertTrue(drained.called)
        self.writer.write(b"c" * 10, lambda: released.append("c"))
        self.assertEqual(released[-1], "c")
        self.assertEqual(self.reactor.pool.jobs, [])


# -- real loopback sockets -------------------------------------------------


async def _session(root, factory=None, checksum=None):
    port = await listenInProcess(reactor, str(root), factory=factory)
    client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port), checksum=checksum)
    return port, client


#: Both checksums a connection can agree on; the default picks xxh128.
BOTH_CHECKSUMS = pytest.mark.parametrize("checksum", ["sha1", "xxh128"])


@BOTH_CHECKSUMS
@pytest_twisted.ensureDeferred
async def test_downloadHashedAsideThenFromCacheThenChanged(tmp_path, monkeypatch, checksum):
    """
    The first download of a large file hashes it in a thread beside
    sendfile; the second takes the digest from the cache; a file rewritten
    with other bytes of the same size is hashed afresh, not served with the
    old digest.
    """
    made = []

    class CountingHasher(filebody.AsideHasher):
        def __init__(self, *args, **kwargs):
            made.append(args[2])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(filebody, "AsideHasher", CountingHasher)
    # Files written a moment ago are not cached (next test); these are.
    monkeypatch.setattr(digestcache, "SETTLED_NS", 0)
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    size = 3 * MiB
    writeRandom(str(root / "f.bin"), size, seed=21)
    first = digestOf(str(root / "f.bin"), checksum)
    port, client = await _session(root, checksum=checksum)
    storage = port.factory.storage
    try:
        one = await client.sget("f.bin", str(local / "one.bin"))
        assert one.checksum == checksum
        assert one.digest == first == digestOf(str(local / "one.bin"), checksum)
        assert made == [size]
        assert storage.digests.get(os.stat(root / "f.bin"), checksum) == first

        two = await client.sget("f.bin", str(local / "two.bin"))
        assert two.digest == first == digestOf(str(local / "two.bin"), checksum)
        assert made == [size], "the second download hashed the file again"

        writeRandom(str(root / "f.bin"), size, seed=22)
        second = digestOf(str(root / "f.bin"), checksum)
        assert second != first
        three = await client.sget("f.bin", str(local / "three.bin"))
        assert three.digest == second == digestOf(str(local / "three.bin"), checksum)
        assert len(made) == 2
        assert os.path.getsize(local / "three.bin") == size
    finally:
        await client.quit()
        await port.stopListening()


def test_digestCacheWaitsUntilAFileHasSettled(tmp_path):
    """
    A digest of bytes read within a few milliseconds of the file's last
    change is not kept: a same-size rewrite within one tick of the
    filesystem clock would leave the key unchanged, and the cache would
    answer with the digest of other bytes. Read later, it is kept.
    """
    path = tmp_path / "f.bin"
    path.write_bytes(b"first")
    st = os.stat(path)
    cache = digestcache.DigestCache()
    cache.put(st, "0" * 40, "sha1", readSince=st.st_ctime_ns + digestcache.SETTLED_NS // 2)
    assert cache.get(st) is None
    cache.put(st, "1" * 40, "sha1", readSince=st.st_ctime_ns + digestcache.SETTLED_NS + 1)
    assert cache.get(st) == "1" * 40
    assert cache.get(st, "xxh128") is None


def test_repeatedHashAnsweredFromTheCache(tmp_path, monkeypatch):
    """
    C{hash} of an unchanged file reads it once; after a rewrite of the same
    size (a new change time) it is read again and the new digest given.
    """
    from ftx.server import digestreads

    reads = []

    def countingHashPrefix(f, count, name, also=None):
        reads.append(count)
        return realHashPrefix(f, count, name, also)

    realHashPrefix = digestreads.hashPrefix
    monkeypatch.setattr(digestreads, "hashPrefix", countingHashPrefix)
    # Written just now: take it as settled, as it would be a moment later.
    monkeypatch.setattr(digestcache, "SETTLED_NS", 0)
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(b"a" * 5000)
    storage = FilesystemStorage(str(root))
    first = storage.digest(b"f.bin")
    assert storage.digest(b"f.bin") == first == (hashlib.sha1(b"a" * 5000).hexdigest(), 5000)
    assert reads == [5000]
    time.sleep(0.05)
    (root / "f.bin").write_bytes(b"b" * 5000)
    assert storage.digest(b"f.bin") == (hashlib.sha1(b"b" * 5000).hexdigest(), 5000)
    assert reads == [5000, 5000]


@BOTH_CHECKSUMS
@pytest_twisted.ensureDeferred
async def test_cgetContinuesLocalPartial(tmp_path, checksum):
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    size, held = 5 * MiB, 2 * MiB + 3
    digest = writeRandom(str(root / "five.bin"), size, seed=23)
    target = str(local / "five.bin")
    partial = localfiles.partialPath(target)
    with open(root / "five.bin", "rb") as src, open(partial, "wb") as dst:
        dst.write(src.read(held))
    port, client = await _session(root, checksum=checksum)
    try:
        transfer = await client.cget("five.bin", target)
    finally:
        await client.quit()
        await port.stopListening()
    assert sha1(target) == digest
    assert transfer.checksum == checksum
    assert transfer.digest == digestOf(target, checksum)
    assert transfer.size == size
    assert transfer.transferred == size - held
    assert not os.path.exists(partial)


# Names in order, mixing files sent whole (up to 256 KiB) with streamed ones.
_MIX = [
    ("mix/a-1k.txt", 1 * KiB),
    ("mix/b-big.bin", 2 * MiB + 7),
    ("mix/c-empty", 0),
    ("mix/d-200k.bin", 200 * KiB),
    ("mix/e-big.bin", 3 * MiB),
    ("mix/f-256k.bin", 256 * KiB),
    ("mix/g-256k-plus-1.bin", 256 * KiB + 1),
    ("mix/h-1k.txt", 1 * KiB),
]


def _makeMix(root):
    digests = {}
    for seed, (name, size) in enumerate(_MIX):
        digests[name] = writeRandom(str(root / name), size, seed=100 + seed)
    return digests


@pytest_twisted.ensureDeferred
async def test_mgetOfSmallAndLargeFilesInterleaved(tmp_path):
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    digests = _makeMix(root)
    received = []
    port, client = await _session(root)
    try:
        transfers = await client.mget("mix/*", str(local), received=received.append)
    finally:
        await client.quit()
        await port.stopListening()
    names = [name for name, _ in _MIX]
    assert [t.name for t in transfers] == names
    assert [t.name for t in received] == names
    assert received == transfers
    for transfer, (name, size) in zip(transfers, _MIX):
        path = str(local / name)
        assert transfer.path == path
        assert transfer.size == size
        assert transfer.checksum == "xxh128"
        assert transfer.digest == digestOf(path, "xxh128")
        assert sha1(path) == digests[name]
    assert sorted(os.listdir(local / "mix")) == sorted(os.path.basename(n) for n in names)


@pytest_twisted.ensureDeferred
async def test_mgetAcceptDeclinesAndRedirects(tmp_path):
    """
    C{accept} returning L{False} drops a file (small or large) without
    writing it; returning a path stores the file there; the stream stays in
    step either way.
    """
    root, local, elsewhere = tmp_path / "root", tmp_path / "local", tmp_path / "elsewhere"
    for d in (root, local, elsewhere):
        d.mkdir()
    digests = _makeMix(root)
    redirected = {"mix/d-200k.bin": str(elsewhere / "d.bin"), "mix/e-big.bin": str(elsewhere / "e.bin")}
    declined = {"mix/a-1k.txt", "mix/b-big.bin"}
    asked = []

    def accept(name, size):
        asked.append((name, size))
        if name in declined:
            return False
        return redirected.get(name, True)

    port, client = await _session(root)
    try:
        transfers = await client.mget("mix/*", str(local), accept=accept)
        entries = await client.list("mix")
    finally:
        await client.quit()
        await port.stopListening()
    assert asked == _MIX
    kept = [name for name, _ in _MIX if name not in declined]
    assert [t.name for t in transfers] == kept
    for transfer in transfers:
        expected = redirected.get(transfer.name, str(local / transfer.name))
        assert transfer.path == expected
        assert sha1(expected) == digests[transfer.name]
    for name in declined | set(redirected):
        assert not os.path.exists(local / name)
        assert not os.path.exists(localfiles.partialPath(str(local / name)))
    assert len(entries) == len(_MIX)


class _OneBadDigest(FilesystemStorage):
    """
    Sends one named small file with a wrong SHA-1, as a disk or memory
    fault on the server would.
    """

    def __init__(self, root, badPath):
        super().__init__(root)
        self.badInode = os.stat(badPath).st_ino
        self.corrupted = 0

    def readSmall(self, f, size, checksum="sha1"):
        data, digest = super().readSmall(f, size, checksum)
        if os.fstat(f.fileno()).st_ino == self.badInode:
            self.corrupted += 1
            digest = "0" * len(digest)
        return data, digest


@pytest_twisted.ensureDeferred
async def test_corruptedSmallFileInMgetFailsAtTheEnd(tmp_path):
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    files = [("set/a.txt", 3 * KiB), ("set/b-bad.txt", 5 * KiB), ("set/c.bin", 2 * MiB), ("set/d.txt", 10 * KiB)]
    digests = {name: writeRandom(str(root / name), size, seed=200 + i) for i, (name, size) in enumerate(files)}
    storage = _OneBadDigest(str(root), str(root / "set/b-bad.txt"))
    port, client = await _session(root, factory=FtxServerFactory(storage, reactor))
    try:
        received = []
        with pytest.raises(errors.IntegrityError) as caught:
            await client.mget("set/*", str(local), received=received.append)
        assert "b-bad.txt" in str(caught.value)
        assert storage.corrupted == 1
        assert [t.name for t in received] == ["set/a.txt", "set/c.bin", "set/d.txt"]
        for name, _ in files:
            if name != "set/b-bad.txt":
                assert sha1(str(local / name)) == digests[name]
        assert not os.path.exists(local / "set" / "b-bad.txt")
        assert not os.path.exists(local / "set" / ".b-bad.txt.ftx-partial")
        # The replies after the bad file were all consumed by the mget: the
        # next requests get their own answers.
        entries = await client.list("set")
        assert [e.name for e in entries] == [name for name, _ in files]
        again = await client.sget("set/c.bin", str(local / "c-again.bin"))
        assert sha1(str(local / "c-again.bin")) == digests["set/c.bin"]
        assert again.digest == digestOf(str(local / "c-again.bin"), again.checksum)
    finally:
        await client.quit()
        await port.stopListening()


@BOTH_CHECKSUMS
@pytest_twisted.ensureDeferred
async def test_putResumesServerPartial(tmp_path, checksum):
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    size, held = 4 * MiB, 1 * MiB + 5
    path = str(local / "up.bin")
    digest = writeRandom(path, size, seed=31)
    with open(path, "rb") as f:
        prefix = f.read(held)
    serverPartial = root / os.fsdecode(partialName(b"up.bin"))
    assert serverPartial.name == ".up.bin.ftx-partial"
    serverPartial.write_bytes(prefix)
    port, client = await _session(root, checksum=checksum)
    storage = port.factory.storage
    try:
        assert storage.partialUpload(b"up.bin") == (held, hashlib.sha1(prefix).hexdigest())
        assert await client.partial("up.bin") == (held, hashlib.sha1(prefix).hexdigest())
        transfer = await client.put(path, "up.bin", resume=True)
    finally:
        await client.quit()
        await port.stopListening()
    assert sha1(str(root / "up.bin")) == digest
    assert transfer.checksum == checksum
    assert transfer.digest == digestOf(path, checksum)
    assert transfer.size == size
    assert transfer.transferred == size - held
    assert not serverPartial.exists()


# -- the command line ------------------------------------------------------


def test_cliMgetFetchesTogetherThenSkipsIdentical(tmp_path):
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    names = ["folder/f{:02d}.{}".format(i, "bin" if i in (10, 30) else "txt") for i in range(42)]
    digests = {}
    for i, name in enumerate(names):
        size = 2 * MiB if name.endswith(".bin") else (i * 97) % 4000
        digests[name] = writeRandom(str(root / name), size, seed=300 + i)
    with ServerProcess(str(root)) as server:
        first = runFtx(["--server", server.address, "--dir", str(local), "mget", "folder/*"])
        err = first.stderr.decode("utf-8", "replace")
        assert first.returncode == 0, err
        assert "Traceback" not in err
        assert err.rstrip().endswith("mget: 42 fetched, 0 skipped, 0 failed"), err
        for name in names:
            assert sha1(str(local / name)) == digests[name], name

        for name in ("folder/f01.txt", "folder/f20.txt", "folder/f41.txt"):
            os.unlink(local / name)
        big = local / "folder" / "f30.bin"
        partial = local / "folder" / ".f30.bin.ftx-partial"
        with open(big, "rb") as f:
            partial.write_bytes(f.read(1 * MiB))
        os.unlink(big)

        second = runFtx(["--server", server.address, "--dir", str(local), "mget", "folder/*"])
        err = second.stderr.decode("utf-8", "replace")
        assert second.returncode == 0, err
        assert "Traceback" not in err
        assert err.rstrip().endswith("mget: 4 fetched, 38 skipped, 0 failed"), err
        assert "continued folder/f30.bin" in err
        for name in ("folder/f01.txt", "folder/f20.txt", "folder/f41.txt"):
            assert "received {}".format(name) in err
        assert err.count("is already here and identical; skipped") == 38
        log = server.output()
    for name in names:
        assert sha1(str(local / name)) == digests[name], name
    assert sorted(os.listdir(local / "folder")) == sorted(os.path.basename(n) for n in names)
    # The first run asked for all 42 in one server mget.
    assert "mget folder/*: 42 files" in log, log


# -- ftx.server.tap: listen backlog ----------------------------------------------


class ListenBacklogTests(SynchronousTestCase):
    """
    Servers listen with a backlog deep enough for a burst of clients,
    unless the endpoint string sets its own.
    """

    def test_addedWhereTheEndpointTakesOne(self):
        from ftx.server.tap import LISTEN_BACKLOG, withBacklog

        for description in ("tcp:1234", "tcp:0:interface=127.0.0.1", "ssl:443:privateKey=k.pem", "unix:/run/ftx.sock"):
            self.assertEqual(withBacklog(description), "{}:backlog={}".format(description, LISTEN_BACKLOG))

    def test_leftAloneOtherwise(self):
        from ftx.server.tap import withBacklog

        self.assertEqual(withBacklog("tcp:1234:backlog=7"), "tcp:1234:backlog=7")
        self.assertEqual(withBacklog("systemd:domain=INET:index=0"), "systemd:domain=INET:index=0")


# -- ftx._io.workers -----------------------------------------------------------


class WorkerPoolTests(SynchronousTestCase):
    """
    Lanes of a real reactor run on ftx's own small pools; a stand-in
    reactor lends its own pool.
    """

    def test_standInReactorLendsItsPool(self):
        from ftx._io import workers
        from tests.support import InlineReactor

        fake = InlineReactor()
        self.assertIs(workers.poolFor(fake, workers.HASH), fake.getThreadPool())

    def test_realReactorGetsOnePoolPerKindStoppedAtShutdown(self):
        from twisted.internet.interfaces import IReactorThreads
        from twisted.internet.task import Clock
        from twisted.internet.testing import MemoryReactor
        from zope.interface import implementer

        from ftx._io import workers

        @implementer(IReactorThreads)
        class Reactor(MemoryReactor, Clock):
            def __init__(self):
                MemoryReactor.__init__(self)
                Clock.__init__(self)

            def getThreadPool(self):
                raise AssertionError("ftx's lanes must not use the reactor's own pool")

        reactor = Reactor()
        store = workers.poolFor(reactor, workers.STORE)
        self.assertIs(workers.poolFor(reactor, workers.STORE), store)
        hashing = workers.poolFor(reactor, workers.HASH)
        self.assertIsNot(hashing, store)
        self.assertTrue(store.started and hashing.started)
        triggers = reactor.triggers["during"]["shutdown"]
        self.assertEqual(len(triggers), 2)
        for f, args, kwargs in triggers:
            f(*args, **kwargs)
        self.assertFalse(store.started or hashing.started)


# -- the same paths over a Unix socket -------------------------------------


@pytest_twisted.ensureDeferred
async def test_unixSocketTransfersUseTheSamePaths(tmp_path):
    """
    A Unix socket is a plain socket too: sendfile down, direct reads up,
    and small and large files in one mget, all byte-identical.
    """
    from twisted.internet.endpoints import serverFromString

    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    digests = _makeMix(root)
    up = local / "up.bin"
    upDigest = writeRandom(str(up), 3 * MiB + 11, seed=9)
    # Socket paths are short (108 bytes): pytest's tmp_path may be longer.
    folder = tempfile.mkdtemp(prefix="ftx-")
    path = os.path.join(folder, "s")
    factory = FtxServerFactory(FilesystemStorage(str(root)), reactor)
    port = await serverFromString(reactor, "unix:" + path).listen(factory)
    try:
        client = await connect(reactor, "unix:path=" + path)
        try:
            transfers = await client.mget("mix/*", str(local / "got"))
            await client.put(str(up), "back/up.bin")
            back = await client.sget("back/up.bin", str(local / "again.bin"))
        finally:
            await client.quit()
    finally:
        await port.stopListening()
        shutil.rmtree(folder, True)
    assert [t.name for t in transfers] == [name for name, _ in _MIX]
    for transfer in transfers:
        assert sha1(transfer.path) == digests[transfer.name]
    assert sha1(str(root / "back" / "up.bin")) == upDigest == sha1(str(local / "again.bin"))
    assert back.digest == digestOf(str(local / "again.bin"), back.checksum)
