"""
C{hash} answered from the digest cache (L{ftx.server.hashcommand}): a
digest the server already knows for an unchanged file is sent at once, on
the reactor thread, without a turn in the hash lane; anything else (a
prefix, a digest not known, a file changed even with its size and time
put back) is read in the lane as before.
"""

import hashlib
import os
import re
import time

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ftx.server import digests
from ftx.server.filesystem import FilesystemStorage
from ftx.server.hashcommand import Hashes
from ftx.server.hashlane import HashLane
from ftx.server.protocol import FtxServerFactory
from ftx.testing import MemoryStorage
from tests.support import InlineReactor, temporaryFolder

_TIME = 1_500_000_000


class _HeldPool:
    """
    A thread pool whose jobs wait until the test runs them: the jobs it
    holds are the digests the lane was asked to read.
    """

    def __init__(self):
        self.jobs = []

    def callInThreadWithCallback(self, onResult, f, *args):
        self.jobs.append((onResult, f, args))

    def finish(self):
        onResult, f, args = self.jobs.pop(0)
        try:
            result = f(*args)
        except Exception:
            onResult(False, Failure())
        else:
            onResult(True, result)


def _reply(data: bytes) -> bytes:
    return b"213 " + hashlib.sha1(data).hexdigest().encode() + b" %d\r\n" % len(data)


class _ServerTestMixin:
    def serve(self, storage):
        clock = InlineReactor()
        factory = FtxServerFactory(storage, clock)
        self.pool = _HeldPool()
        factory.hashing = HashLane(clock, pool=self.pool)
        proto = factory.buildProtocol(None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        proto.makeConnection(self.transport)
        self.proto = proto

    def send(self, *lines: bytes) -> bytes:
        """
        Send C{lines} in one read; what the server answered meanwhile.
        """
        self.transport.clear()
        self.proto.dataReceived(b"".join(line + b"\r\n" for line in lines))
        return self.transport.value()

    def throughTheLane(self, line: bytes) -> bytes:
        """
        Send C{line}, which must wait for the lane; let the lane read it.
        """
        self.assertEqual((self.send(line), len(self.pool.jobs)), (b"", 1))
        self.transport.clear()
        self.pool.finish()
        self.assertEqual(self.pool.jobs, [])
        return self.transport.value()


class OnDiskTests(_ServerTestMixin, SynchronousTestCase):
    def setUp(self):
        self.root = temporaryFolder(self)
        self.path = os.path.join(self.root, "f.bin")
        self.data = os.urandom(4096)
        with open(self.path, "wb") as f:
            f.write(self.data)
        os.utime(self.path, (_TIME, _TIME))
        # A digest is kept only for a file unchanged for SETTLED_NS before
        # it was read; that is the file system's clock, not one a test can
        # advance.
        time.sleep(digests.SETTLED_NS / 1e9 + 0.02)
        self.serve(FilesystemStorage(self.root))

    def test_knownDigestAnsweredAtOnce(self):
        self.assertEqual(self.throughTheLane(b"hash f.bin"), _reply(self.data))
        # Pipelined, and answered in the read that brought them.
        self.assertEqual(self.send(b"hash f.bin", b"hash f.bin 4096", b"hash f.bin"), _reply(self.data) * 3)
        self.assertEqual(self.pool.jobs, [])

    def test_aTurnsShareOfAnswers(self):
        """
        At most L{Hashes.perTurn} answers from the cache in one turn of the
        reactor; the others follow in the next turns, in order.
        """
        self.assertEqual(self.throughTheLane(b"hash f.bin"), _reply(self.data))
        self.patch(Hashes, "perTurn", 3)
        clock = self.proto.factory.reactor
        clock.advance(0)
        self.assertEqual(self.send(*[b"hash f.bin"] * 7), _reply(self.data) * 3)
        self.transport.clear()
        # (A Clock runs the calls due meanwhile in the same advance, where
        # the reactor keeps them for its next turn.)
        clock.advance(0)
        self.assertEqual(self.transport.value(), _reply(self.data) * 4)
        self.assertEqual(self.pool.jobs, [])

    def test_prefixIsRead(self):
        self.assertEqual(self.throughTheLane(b"hash f.bin"), _reply(self.data))
        self.assertEqual(self.throughTheLane(b"hash f.bin 100"), _reply(self.data[:100]))

    def test_rewriteWithSameSizeAndTimeIsReadAgain(self):
        """
        Other bytes of the same size, with the modification time put back:
        the change time tells, and the new bytes' digest is answered.
        """
        self.assertEqual(self.throughTheLane(b"hash f.bin"), _reply(self.data))
        other = os.urandom(len(self.data))
        with open(self.path, "r+b") as f:
            f.write(other)
        os.utime(self.path, (_TIME, _TIME))
        self.assertEqual(self.throughTheLane(b"hash f.bin"), _reply(other))

    def test_errorsAnsweredWithoutATurn(self):
        self.assertEqual(self.send(b"hash missing.bin"), b"404 not-found no such file: missing.bin\r\n")
        self.assertEqual(self.send(b"hash f.bin 4097"), b"416 bad-offset f.bin has 4096 bytes, fewer than 4097\r\n")
        self.assertEqual(self.pool.jobs, [])


class _RemoteStorage(MemoryStorage):
    #: As an object store says: its opens wait for the network.
    opensInThread = True

    opened = 0

    def openForRead(self, name):
        self.opened += 1
        return MemoryStorage.openForRead(self, name)


class OpensInThreadTests(_ServerTestMixin, SynchronousTestCase):
    def test_alwaysInTheLane(self):
        """
        A storage whose open waits for the network is not opened on the
        reactor thread to look for a known digest: the lane asks it.
        """
        self.serve(_RemoteStorage({b"f.bin": b"x" * 10}))
        self.assertEqual(self.throughTheLane(b"hash f.bin"), _reply(b"x" * 10))
        self.assertEqual(self.throughTheLane(b"hash f.bin"), _reply(b"x" * 10))

    def test_lengthCheckedInAThread(self):
        """
        A prefix beyond the end is still refused before a turn in the lane,
        by an open in a worker thread.
        """
        storage = _RemoteStorage({b"f.bin": b"x" * 10})
        self.serve(storage)
        threads = _HeldPool()
        self.patch(self.proto.factory.reactor, "getThreadPool", lambda: threads)
        self.assertEqual((self.send(b"hash f.bin 11"), storage.opened), (b"", 0))
        threads.finish()
        self.assertEqual(self.transport.value(), b"416 bad-offset f.bin has 10 bytes, fewer than 11\r\n")
        self.assertEqual((storage.opened, self.pool.jobs), (1, []))


class LogTests(_ServerTestMixin, SynchronousTestCase):
    """
    Answers from the cache given in one turn of the reactor are one log
    line; an answer read in the lane is a line of its own, after them.
    """

    def test_answersFromTheCacheLoggedTogether(self):
        files = {name: b"x" * 10 for name in (b"a.bin", b"b.bin", b"c.bin")}
        self.serve(MemoryStorage(files))
        for name in (b"a.bin", b"b.bin"):
            self.throughTheLane(b"hash " + name)
        clock = self.proto.factory.reactor
        with capturedLogs() as events:
            clock.advance(0)
            self.assertEqual(self.send(b"hash a.bin", b"hash b.bin", b"hash a.bin"), _reply(b"x" * 10) * 3)
            clock.advance(0)
            self.send(b"hash b.bin")
            self.throughTheLane(b"hash c.bin")
            clock.advance(0)
        lines = [re.sub(r"in \d+\.\d+s", "in Ts", formatEvent(e)) for e in events]
        self.assertEqual([line for line in lines if " hash " in line], [
            "127.0.0.1:1 hash 3 files from the digest cache, a.bin first: 30 bytes in Ts: ok",
            "127.0.0.1:1 hash b.bin 10 bytes in Ts: ok",
            "127.0.0.1:1 hash c.bin 10 bytes in Ts: ok",
        ])
