"""
Digest work under a flood (issue 12, item 6): the hash lane's turns
(L{ftx.server.hashlane.HashLane}), prefix states kept between requests
(L{ftx.server.digests.PrefixCheckpoints}), a C{list} that answers while
every digest thread is busy, and the server's CPU under forty connections
asking for a wrong prefix of one large file.
"""

import hashlib
import os
import selectors
import socket
import threading
import time

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx.client.api import connect
from ftx.server import digests
from ftx.server.filesystem import FilesystemStorage
from ftx.server.hashlane import HashLane
from ftx.server.protocol import FtxServerFactory
from ftx.testing import MemoryStorage
from tests.connections import Connections
from tests.reliability import measure
from tests.support import InlineReactor, ServerProcess, closeSocketsAfter, temporaryFolder, waitUntil


class _HeldPool:
    """
    A thread pool whose jobs wait until the test finishes them, in any
    order.
    """

    def __init__(self):
        self.jobs = []

    def callInThreadWithCallback(self, onResult, f, *args):
        self.jobs.append((onResult, f, args))

    def finish(self, index=0):
        onResult, f, args = self.jobs.pop(index)
        onResult(True, f(*args))


class _InlineReactor(Clock):
    def callFromThread(self, f, *args):
        f(*args)


class HashLaneTests(SynchronousTestCase):
    def setUp(self):
        self.pool = _HeldPool()
        self.lane = HashLane(_InlineReactor(), width=2, perAddress=1, pool=self.pool)

    def test_turnsGoRoundTheAddresses(self):
        """
        One address with many jobs gets one at a time (its share); another
        address's job starts before the rest of the first's queue.
        """
        done = []
        for i in range(5):
            self.lane.run("10.0.0.1", lambda i=i: ("a", i)).addCallback(done.append)
        self.lane.run("10.0.0.2", lambda: ("b", 0)).addCallback(done.append)
        self.assertEqual(self.lane.running, 2)
        self.assertEqual([f() for _, f, _ in self.pool.jobs], [("a", 0), ("b", 0)])
        self.pool.finish(0)
        self.pool.finish(0)
        self.assertEqual(done, [("a", 0), ("b", 0)])
        # Alone now, the first address still runs one job at a time.
        self.assertEqual((self.lane.running, self.lane.waiting), (1, 3))
        for _ in range(3):
            self.pool.finish(0)
        self.assertEqual(done[-1], ("a", 3))
        self.assertEqual(self.lane.waiting, 0)

    def test_goneClientsJobsAreDropped(self):
        gone = []
        self.lane.run("10.0.0.1", lambda: 1)
        d = self.lane.run("10.0.0.1", lambda: self.fail("run for a client that left"), wanted=lambda: False)
        d.addErrback(lambda f: gone.append(f.check(CancelledError)))
        cancelled = self.lane.run("10.0.0.1", lambda: self.fail("cancelled job ran"))
        cancelled.addErrback(lambda f: gone.append(f.check(CancelledError)))
        cancelled.cancel()
        self.pool.finish()
        self.assertEqual(gone, [CancelledError, CancelledError])
        self.assertEqual((self.lane.running, self.lane.waiting, self.lane.dropped), (0, 0, 1))

    def test_failuresReachTheCaller(self):
        def broken():
            raise errors.NotFound("no such file: x")

        d = self.lane.run("10.0.0.1", broken)
        onResult, f, args = self.pool.jobs.pop()
        try:
            f()
        except errors.NotFound:
            onResult(False, Failure())
        self.failureResultOf(d, errors.NotFound)
        self.assertEqual(self.lane.running, 0)


class PrefixCheckpointTests(SynchronousTestCase):
    """
    Prefix digests start from the furthest kept state, and are right.
    """

    def setUp(self):
        self.patch(digests, "CHECKPOINT_STRIDE", 4096)
        self.patch(digests, "SETTLED_NS", 0)
        root = temporaryFolder(self)
        self.data = os.urandom(50000)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(self.data)
        os.utime(os.path.join(root, "big.bin"), (1000, 1000))
        self.storage = FilesystemStorage(root)

    def test_prefixesAreRightFromAnyState(self):
        for length in (4096, 50000, 30001, 8191, 8192, 12289, 49999, 4097, 30001):
            f, hasher, size = self.storage.prefixHasher(b"big.bin", length)
            with f:
                self.assertEqual(hasher.hexdigest(), hashlib.sha1(self.data[:length]).hexdigest(), length)
                self.assertEqual(f.tell(), length)
            self.assertEqual(self.storage.digest(b"big.bin", length), (hashlib.sha1(self.data[:length]).hexdigest(), length))
        # The returned hasher goes on hashing the rest (cget's trailer).
        f, hasher, size = self.storage.prefixHasher(b"big.bin", 30001)
        with f:
            hasher.update(f.read())
        self.assertEqual(hasher.hexdigest(), hashlib.sha1(self.data).hexdigest())

    def test_aRepeatedPrefixIsNotReadAgain(self):
        self.storage.prefixHasher(b"big.bin", 30001)[0].close()
        st = os.stat(os.path.join(self.storage.root, b"big.bin"))
        checkpoints = self.storage._shared.checkpoints
        self.assertEqual(checkpoints.nearest(st, 30001)[0], 30001)
        self.assertEqual(checkpoints.nearest(st, 30000)[0], 28672)
        # A changed file starts over.
        with open(os.path.join(self.storage.root, b"big.bin"), "r+b") as f:
            f.write(b"changed")
        f, hasher, _ = self.storage.prefixHasher(b"big.bin", 30001)
        f.close()
        self.assertEqual(hasher.hexdigest(), hashlib.sha1(b"changed" + self.data[7:30001]).hexdigest())


class PrefixCheckpointBoundTests(SynchronousTestCase):
    def test_statesAreBounded(self):
        checkpoints = digests.PrefixCheckpoints(files=2, perFile=3)
        files = [os.stat_result((0o100644, i, 1, 1, 0, 0, 1 << 30, 0, 0, 0)) for i in range(3)]
        for st in files:
            checkpoints.keep(st, [(offset, hashlib.sha1(b"%d" % offset)) for offset in range(1, 10)])
        # The oldest file is forgotten; each other keeps its last six states.
        self.assertEqual(checkpoints.nearest(files[0], 9), (0, None))
        offset, hasher = checkpoints.nearest(files[2], 9)
        self.assertEqual((offset, hasher.hexdigest()), (9, hashlib.sha1(b"9").hexdigest()))
        self.assertEqual(checkpoints.nearest(files[1], 3), (0, None))
        self.assertEqual(checkpoints.nearest(files[1], 4)[0], 4)
        self.assertEqual(checkpoints.stride(1 << 40), (1 << 40) // 3 + 1)


class _BlockingStorage(MemoryStorage):
    """
    A storage whose digests wait until the test lets them go (bounded).
    """

    def __init__(self, *args, **kwargs):
        MemoryStorage.__init__(self, *args, **kwargs)
        self.release = threading.Event()
        self.started = 0

    def digest(self, name, length=None):
        self.started += 1
        self.release.wait(30)
        return MemoryStorage.digest(self, name, length)


class ListWhileHashingTests(TestCase):
    """
    Twelve digest jobs from one address, each blocked: at most that
    address's share of the hash lane runs, and a C{list} from another
    connection is answered while they are all still blocked. Before the
    lane all twelve ran at once in the reactor's pool, beside listing.
    """

    async def test_listAnswersWhileHashingIsSaturated(self):
        closeSocketsAfter(self, reactor)
        connections = Connections(self, reactor)
        storage = _BlockingStorage({b"big.bin": b"x" * 1000, b"small.txt": b"s"})
        self.addCleanup(storage.release.set)
        factory = connections.serve(FtxServerFactory(storage, reactor))
        port = await connections.listen(temporaryFolder(self), factory=factory)
        address = "127.0.0.1:{}".format(port.getHost().port)
        hashers = [await connect(reactor, address) for _ in range(12)]
        pending = [client.hash("big.bin") for client in hashers]
        for d in pending:
            d.addErrback(lambda f: None)
        self.assertTrue(await waitUntil(reactor, lambda: storage.started >= 1, 10))
        lister = await connect(reactor, address)
        listed = []
        lister.list().addCallback(listed.append)
        answered = await waitUntil(reactor, lambda: bool(listed), 10)
        self.assertTrue(answered, "list got no answer while digest jobs were blocked")
        self.assertFalse(storage.release.is_set())
        self.assertEqual([e.name for e in listed[0]], ["big.bin", "small.txt"])
        # No more digest jobs ran at once than the lane is wide (one
        # address: its share); the others waited their turn.
        self.assertLessEqual(storage.started, factory.hashing.perAddress)
        self.assertEqual(factory.hashing.waiting, 12 - storage.started)
        storage.release.set()
        self.assertTrue(await waitUntil(reactor, lambda: all(d.called for d in pending), 20))


def _serverCPU(pid: int) -> float:
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prefixFlood(address: str, connections: int, requests: int, size: int, timeout: float = 120.0) -> int:
    """
    C{connections} raw connections each asking C{requests} times for the
    first C{size} bytes of C{big.bin} with a wrong digest; returns the
    number of replies (every one should be a refusal). Bounded by
    C{timeout}.
    """
    host, port = address.rsplit(":", 1)
    selector = selectors.DefaultSelector()
    sockets = []
    wrong = "0" * 40
    try:
        for _ in range(connections):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.setblocking(False)
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_READ, [b"", -1])
            sock.sendall("cget big.bin {} {}\r\n".format(size, wrong).encode() * requests)
        replies = 0
        deadline = time.monotonic() + timeout
        while replies < connections * requests and time.monotonic() < deadline:
            for key, _ in selector.select(1):
                data = key.fileobj.recv(65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                state = key.data
                state[0] += data
                while b"\r\n" in state[0]:
                    line, state[0] = state[0].split(b"\r\n", 1)
                    state[1] += 1
                    if state[1] > 0:
                        # The greeting is line 0; each later line answers a cget.
                        assert line.startswith(b"422 "), line
                        replies += 1
        return replies
    finally:
        for sock in sockets:
            sock.close()
        selector.close()


class PrefixFloodTests(SynchronousTestCase):
    """
    Forty connections, each asking twice for a 48 MiB prefix of one file
    with a wrong digest, against a real server process: its CPU time is
    measured (reliability summary). Before the prefix states it hashed
    every request's 48 MiB anew: 80 x 48 MiB.
    """

    def test_floodCostsAboutOneRead(self):
        root = temporaryFolder(self)
        size = 48 << 20
        with open(os.path.join(root, "big.bin"), "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
        # Settled: the prefix states are kept only for a file that did not
        # change just before it was read.
        os.utime(os.path.join(root, "big.bin"), (1000, 1000))
        server = ServerProcess(root, "--max-per-address", "0")
        self.addCleanup(server.stop)
        before = _serverCPU(server.process.pid)
        started = time.monotonic()
        replies = prefixFlood(server.address, 40, 2, size)
        elapsed = time.monotonic() - started
        spent = _serverCPU(server.process.pid) - before
        self.assertEqual(replies, 80)
        cpu = time.process_time()
        with open(os.path.join(root, "big.bin"), "rb") as f:
            hasher = hashlib.sha1()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                hasher.update(chunk)
        oneRead = time.process_time() - cpu
        measure(
            "prefix-hash flood (40 connections x 2 cget of a 48 MiB prefix, wrong digest)",
            "server CPU {:.2f} s, {:.2f} s wall (hashing every request, as before: ~{:.1f} s)".format(spent, elapsed, 80 * oneRead),
        )
        # Hashed once, and a few more times at most while the first
        # requests of each turn ran side by side: far from 80 reads.
        self.assertLess(spent, max(1.5, 10 * oneRead))


class BeyondTheEndTests(SynchronousTestCase):
    """
    A prefix longer than the file is refused before it takes a turn in
    the hash lane (here a lane that never runs anything).
    """

    def test_refusedWithoutATurn(self):
        clock = InlineReactor()
        factory = FtxServerFactory(MemoryStorage({b"f.bin": b"x" * 10}), clock)
        pool = _HeldPool()
        factory.hashing = HashLane(clock, pool=pool)
        proto = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        proto.makeConnection(transport)
        for line in (b"cget f.bin 11 " + b"0" * 40, b"hash f.bin 11"):
            transport.clear()
            proto.dataReceived(line + b"\r\n")
            self.assertEqual(transport.value(), b"416 bad-offset f.bin has 10 bytes, fewer than 11\r\n")
        self.assertEqual(pool.jobs, [])
        transport.clear()
        proto.dataReceived(b"hash f.bin 10\r\n")
        self.assertEqual((transport.value(), len(pool.jobs)), (b"", 1))
        pool.finish()
        self.assertEqual(transport.value(), b"213 " + hashlib.sha1(b"x" * 10).hexdigest().encode() + b" 10\r\n")

    def test_oneJobAtATimePerConnection(self):
        """
        Digest commands sent ahead on one connection reach the lane one at
        a time: the next is read only once the previous was answered.
        """
        clock = InlineReactor()
        # Three files: a digest already known would be answered at once.
        files = {name: b"x" * 10 for name in (b"f.bin", b"g.bin", b"h.bin")}
        factory = FtxServerFactory(MemoryStorage(files), clock)
        pool = _HeldPool()
        factory.hashing = HashLane(clock, pool=pool)
        proto = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        proto.makeConnection(transport)
        transport.clear()
        proto.dataReceived(b"hash f.bin\r\nhash g.bin\r\nhash h.bin\r\ncget f.bin 5 " + b"0" * 40 + b"\r\n")
        for expected in (b"213 ", b"213 ", b"213 ", b"422 "):
            self.assertEqual(len(pool.jobs), 1)
            pool.finish()
            self.assertTrue(transport.value().split(b"\r\n")[-2].startswith(expected), transport.value())
        self.assertEqual(pool.jobs, [])
