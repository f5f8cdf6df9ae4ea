"""
Storage under attack (issue 12): symbolic-link loops, names the server
hides, announcements bigger than the disk, quotas filled with tiny files
in fresh folders, and folders swapped for links while the sweep walks.
Each is sent as a client would send it, to a server on a
C{StringTransport} with its threads run inline.
"""

import hashlib
import os

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from ftx.testing import MemoryStorage
from tests.reliability import TempDirs
from tests.support import InlineReactor


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


class _Wire:
    """
    A server over a storage, spoken to line by line.
    """

    def serve(self, storage):
        self.storage = storage
        self.reactor = InlineReactor()
        self.factory = FtxServerFactory(storage, self.reactor)

    def connect(self):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        proto.makeConnection(transport)
        transport.clear()
        return proto, transport

    def send(self, connection, data: bytes) -> bytes:
        proto, transport = connection
        transport.clear()
        proto.dataReceived(data)
        for _ in range(1000):
            if transport.producer is None or transport.streaming:
                break
            transport.producer.resumeProducing()
        return transport.value()

    def put(self, connection, name: bytes, data: bytes) -> bool:
        """
        Upload C{data} whole; whether it was stored.
        """
        return b"\r\n226 " in self.send(connection, b"put " + name + b" %d\r\n" % len(data) + data + b"sha1 " + _sha1(data) + b"\r\n")


class SymlinkLoopTests(TempDirs, _Wire, SynchronousTestCase):
    """
    Item 10: C{ln -s a b; ln -s b a} answers not-found, never a server error.
    """

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "d"))
        os.symlink("a", os.path.join(self.root, "b"))
        os.symlink("b", os.path.join(self.root, "a"))
        os.symlink("e", os.path.join(self.root, "d", "f"))
        os.symlink("f", os.path.join(self.root, "d", "e"))
        with open(os.path.join(self.root, "real.txt"), "wb") as f:
            f.write(b"real")
        self.serve(FilesystemStorage(self.root))
        self.connection = self.connect()

    def test_everyCommandAnswersNotFound(self):
        for line in (
            b"sget a", b"hash a", b"hash a 1", b"cget a 0 " + _sha1(b""), b"put a 3", b"put d/e/x 3",
            b"sget d/e/x",
        ):
            reply = self.send(self.connection, line + b"\r\n")
            self.assertTrue(reply.startswith(b"404 not-found"), (line, reply))
            self.assertIn(b"loop of symbolic links", reply, line)
        self.assertTrue(self.send(self.connection, b"mget a\r\n").startswith(b"404 not-found no files match a"))
        self.assertEqual(self.send(self.connection, b"list a\r\n"), b"211 0\r\n")
        # The loops are left out of a listing; the rest is there.
        self.assertEqual(self.send(self.connection, b"list\r\n").split(b"\r\n")[-2], b"211 1")

    def test_deleteRemovesTheLinkOnly(self):
        self.assertTrue(self.send(self.connection, b"delete a\r\n").startswith(b"200 "))
        self.assertFalse(os.path.lexists(os.path.join(self.root, "a")))
        self.assertTrue(os.path.islink(os.path.join(self.root, "b")))


class ReservedNameTests(_Wire, SynchronousTestCase):
    """
    Item 8: what an upload may store, a listing shows; what a listing
    hides, an upload is refused with a clear error.
    """

    def test_temporaryLookingNamesAreStoredAndListed(self):
        self.serve(MemoryStorage())
        connection = self.connect()
        self.assertTrue(self.put(connection, b".ftx-tmp-stash", b"kept"))
        self.assertTrue(self.put(connection, b"sub/.ftx-tmp-x", b"also"))
        listing = self.send(connection, b"list\r\n")
        self.assertIn(b" .ftx-tmp-stash 4 ", listing)
        self.assertIn(b" sub/.ftx-tmp-x 4 ", listing)
        batch = self.send(connection, b"mget .ftx-tmp-*\r\n")
        self.assertIn(b"kept", batch)

    def test_temporaryLookingNamesOnDisk(self):
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        self.serve(FilesystemStorage(root))
        connection = self.connect()
        self.assertTrue(self.put(connection, b".ftx-tmp-stash", b"kept"))
        self.assertIn(b" .ftx-tmp-stash 4 ", self.send(connection, b"list\r\n"))

    def test_hiddenNamesAreRefused(self):
        self.serve(MemoryStorage())
        connection = self.connect()
        for name in (b".x.ftx-partial", b"sub/.y.ftx-partial", b"a.ftx-partial", b"bell%07"):
            reply = self.send(connection, b"put " + name + b" 1\r\n")
            self.assertTrue(reply.startswith(b"403 "), (name, reply))
        self.assertEqual(self.send(connection, b"list\r\n"), b"211 0\r\n")

    def mktemp(self):
        return TempDirs.mktemp(self)


class FreeSpaceTests(TempDirs, _Wire, SynchronousTestCase):
    """
    Item 13: an announcement bigger than the free space is refused at once
    (507), before any body byte; free space is injectable.
    """

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.free = 1000
        self.serve(FilesystemStorage(self.root, freeSpace=lambda: self.free))
        self.connection = self.connect()

    def test_tooBigForTheDisk(self):
        reply = self.send(self.connection, b"put huge.bin 1099511627776\r\n")
        self.assertEqual(reply, b"507 no-space not enough space for huge.bin: it needs 1099511627776 bytes, the server has 1000 free\r\n")
        self.assertEqual(os.listdir(self.root), [])
        self.assertTrue(self.put(self.connection, b"fits.bin", b"x" * 1000))
        self.assertEqual(self.send(self.connection, b"df\r\n").split(b" ")[2], b"1000")

    def test_resumeCountsWhatIsLeft(self):
        self.free = 0
        self.assertTrue(self.send(self.connection, b"put r.bin 10\r\n").startswith(b"507 "))
        with open(os.path.join(self.root, ".r.bin.ftx-partial"), "wb") as f:
            f.write(b"y" * 10)
        reply = self.send(self.connection, b"put r.bin 10 10 " + _sha1(b"y" * 10) + b"\r\n" + b"sha1 " + _sha1(b"y" * 10) + b"\r\n")
        self.assertTrue(reply.startswith(b"350 10\r\n226 "), reply)

    def test_inMemory(self):
        self.serve(MemoryStorage(total=100))
        connection = self.connect()
        self.assertTrue(self.send(connection, b"put m.bin 101\r\n").startswith(b"507 "))
        self.assertTrue(self.put(connection, b"m.bin", b"z" * 100))


class _Listing:
    """
    What C{os.scandir} returns, already read: iterable and a context
    manager, as both the old and the new sweep use it.
    """

    def __init__(self, entries):
        self._entries = entries

    def __iter__(self):
        return iter(self._entries)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self):
        pass


class SweepSwapTests(TempDirs, SynchronousTestCase):
    """
    Item 7: a folder swapped for a symbolic link between the sweep's
    listing of its parent and its descent never makes the sweep remove or
    count anything outside the root.
    """

    def setUp(self):
        base = os.path.abspath(self.mktemp())
        self.root = os.path.join(base, "root")
        self.outside = os.path.join(base, "outside")
        os.makedirs(os.path.join(self.root, "sub"))
        os.makedirs(self.outside)
        self.victim = os.path.join(self.outside, ".victim.ftx-partial")
        with open(self.victim, "wb") as f:
            f.write(b"v" * 5000)
        with open(os.path.join(self.outside, "big.bin"), "wb") as f:
            f.write(b"b" * 100000)
        with open(os.path.join(self.root, "sub", ".mine.ftx-partial"), "wb") as f:
            f.write(b"m" * 7)
        for path in (self.victim, os.path.join(self.root, "sub", ".mine.ftx-partial")):
            os.utime(path, (1000, 1000))
        self.storage = FilesystemStorage(self.root)

    def swapAfterListingTheRoot(self):
        """
        Patch C{os.scandir} so that right after the root is listed, C{sub}
        becomes a link to the outside folder.
        """
        realScandir = os.scandir
        swapped = []
        rootStat = os.stat(self.root)

        def scandir(target):
            with realScandir(target) as listing:
                entries = list(listing)
            listed = os.stat(target) if isinstance(target, int) else os.stat(target)
            if not swapped and os.path.samestat(listed, rootStat):
                swapped.append(True)
                os.rename(os.path.join(self.root, "sub"), os.path.join(self.root, "moved"))
                os.symlink(self.outside, os.path.join(self.root, "sub"))
            return _Listing(entries)

        self.patch(os, "scandir", scandir)
        return swapped

    def test_swappedFolderIsNotFollowed(self):
        swapped = self.swapAfterListingTheRoot()
        result = self.storage.sweep(60, 10000)
        self.assertEqual(swapped, [True])
        self.assertTrue(os.path.exists(self.victim), "the sweep removed a file outside the root")
        self.assertEqual(result.expired, 0)
        self.assertLess(result.used, 5000)

    def test_linkedFolderAtRestIsNotFollowed(self):
        os.symlink(self.outside, os.path.join(self.root, "link"))
        result = self.storage.sweep(60, 10000)
        self.assertTrue(os.path.exists(self.victim))
        self.assertEqual((result.expired, result.used, result.folders), (1, 0, 1))
