"""
The fast paths end to end over real loopback connections, checked for
what they must not change: the bytes that arrive. C{sendfile} with a
digest hashed aside or cached, resumed transfers both ways, the digest
cache, the same paths over a Unix socket, and the listen backlog.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io import filebody, workers
from ftx.client import localfiles
from ftx.client.api import connect
from ftx.server import digests as digestcache
from ftx.server.filesystem import FilesystemStorage
from ftx.server.partial import partialName
from ftx.server.protocol import FtxServerFactory
from tests.loopback import MIX, MiB, makeMix, roots, session, whenLost
from tests.support import digestOf, sha1, writeRandom


class DownloadTests(TestCase):
    async def _hashedAsideThenFromCacheThenChanged(self, checksum):
        """
        The first download of a large file hashes it in a thread beside
        sendfile; the second takes the digest from the cache; a file
        rewritten with other bytes of the same size is hashed afresh, not
        served with the old digest.
        """
        made = []

        class CountingHasher(filebody.AsideHasher):
            def __init__(self, *args, **kwargs):
                made.append(args[2])
                super().__init__(*args, **kwargs)

        self.patch(filebody, "AsideHasher", CountingHasher)
        # Files written a moment ago are not cached (next test); these are.
        self.patch(digestcache, "SETTLED_NS", 0)
        root, local = roots(self, "root", "local")
        size = 3 * MiB
        path = os.path.join(root, "f.bin")
        writeRandom(path, size, seed=21)
        first = digestOf(path, checksum)
        port, client = await session(self, reactor, root, checksum=checksum)
        storage = port.factory.storage
        one = await client.sget("f.bin", os.path.join(local, "one.bin"))
        self.assertEqual(one.checksum, checksum)
        self.assertEqual(one.digest, first)
        self.assertEqual(first, digestOf(os.path.join(local, "one.bin"), checksum))
        self.assertEqual(made, [size])
        self.assertEqual(storage.digests.get(os.stat(path), checksum), first)

        two = await client.sget("f.bin", os.path.join(local, "two.bin"))
        self.assertEqual(two.digest, first)
        self.assertEqual(first, digestOf(os.path.join(local, "two.bin"), checksum))
        self.assertEqual(made, [size], "the second download hashed the file again")

        writeRandom(path, size, seed=22)
        second = digestOf(path, checksum)
        self.assertNotEqual(second, first)
        three = await client.sget("f.bin", os.path.join(local, "three.bin"))
        self.assertEqual(three.digest, second)
        self.assertEqual(second, digestOf(os.path.join(local, "three.bin"), checksum))
        self.assertEqual(len(made), 2)
        self.assertEqual(os.path.getsize(os.path.join(local, "three.bin")), size)

    async def test_downloadHashedAsideThenFromCacheThenChanged_sha1(self):
        await self._hashedAsideThenFromCacheThenChanged("sha1")

    async def test_downloadHashedAsideThenFromCacheThenChanged_xxh128(self):
        await self._hashedAsideThenFromCacheThenChanged("xxh128")

    async def _cgetContinuesLocalPartial(self, checksum):
        root, local = roots(self, "root", "local")
        size, held = 5 * MiB, 2 * MiB + 3
        digest = writeRandom(os.path.join(root, "five.bin"), size, seed=23)
        target = os.path.join(local, "five.bin")
        partial = localfiles.partialPath(target)
        with open(os.path.join(root, "five.bin"), "rb") as src, open(partial, "wb") as dst:
            dst.write(src.read(held))
        port, client = await session(self, reactor, root, checksum=checksum)
        transfer = await client.cget("five.bin", target)
        self.assertEqual(sha1(target), digest)
        self.assertEqual(transfer.checksum, checksum)
        self.assertEqual(transfer.digest, digestOf(target, checksum))
        self.assertEqual(transfer.size, size)
        self.assertEqual(transfer.transferred, size - held)
        self.assertFalse(os.path.exists(partial))

    async def test_cgetContinuesLocalPartial_sha1(self):
        await self._cgetContinuesLocalPartial("sha1")

    async def test_cgetContinuesLocalPartial_xxh128(self):
        await self._cgetContinuesLocalPartial("xxh128")


class UploadTests(TestCase):
    async def _putResumesServerPartial(self, checksum):
        root, local = roots(self, "root", "local")
        size, held = 4 * MiB, 1 * MiB + 5
        path = os.path.join(local, "up.bin")
        digest = writeRandom(path, size, seed=31)
        with open(path, "rb") as f:
            prefix = f.read(held)
        serverPartial = os.path.join(root, os.fsdecode(partialName(b"up.bin")))
        self.assertEqual(os.path.basename(serverPartial), ".up.bin.ftx-partial")
        with open(serverPartial, "wb") as f:
            f.write(prefix)
        port, client = await session(self, reactor, root, checksum=checksum)
        storage = port.factory.storage
        self.assertEqual(storage.partialUpload(b"up.bin"), (held, hashlib.sha1(prefix).hexdigest()))
        self.assertEqual(await client.partial("up.bin"), (held, hashlib.sha1(prefix).hexdigest()))
        transfer = await client.put(path, "up.bin", resume=True)
        self.assertEqual(sha1(os.path.join(root, "up.bin")), digest)
        self.assertEqual(transfer.checksum, checksum)
        self.assertEqual(transfer.digest, digestOf(path, checksum))
        self.assertEqual(transfer.size, size)
        self.assertEqual(transfer.transferred, size - held)
        self.assertFalse(os.path.exists(serverPartial))

    async def test_putResumesServerPartial_sha1(self):
        await self._putResumesServerPartial("sha1")

    async def test_putResumesServerPartial_xxh128(self):
        await self._putResumesServerPartial("xxh128")


class DigestCacheTests(SynchronousTestCase):
    def test_digestCacheWaitsUntilAFileHasSettled(self):
        """
        A digest of bytes read within a few milliseconds of the file's last
        change is not kept: a same-size rewrite within one tick of the
        filesystem clock would leave the key unchanged, and the cache would
        answer with the digest of other bytes. Read later, it is kept.
        """
        (base,) = roots(self, "base")
        path = os.path.join(base, "f.bin")
        with open(path, "wb") as f:
            f.write(b"first")
        st = os.stat(path)
        cache = digestcache.DigestCache()
        cache.put(st, "0" * 40, "sha1", readSince=st.st_ctime_ns + digestcache.SETTLED_NS // 2)
        self.assertIsNone(cache.get(st))
        cache.put(st, "1" * 40, "sha1", readSince=st.st_ctime_ns + digestcache.SETTLED_NS + 1)
        self.assertEqual(cache.get(st), "1" * 40)
        self.assertIsNone(cache.get(st, "xxh128"))

    def test_repeatedHashAnsweredFromTheCache(self):
        """
        C{hash} of an unchanged file reads it once; after a rewrite of the same
        size (a new change time) it is read again and the new digest given.
        """
        from ftx.server import digestreads

        reads = []
        realHashPrefix = digestreads.hashPrefix

        def countingHashPrefix(f, count, name, also=None):
            reads.append(count)
            return realHashPrefix(f, count, name, also)

        self.patch(digestreads, "hashPrefix", countingHashPrefix)
        # Written just now: take it as settled, as it would be a moment later.
        self.patch(digestcache, "SETTLED_NS", 0)
        (root,) = roots(self, "root")
        path = os.path.join(root, "f.bin")
        with open(path, "wb") as f:
            f.write(b"a" * 5000)
        storage = FilesystemStorage(root)
        first = storage.digest(b"f.bin")
        self.assertEqual(storage.digest(b"f.bin"), first)
        self.assertEqual(first, (hashlib.sha1(b"a" * 5000).hexdigest(), 5000))
        self.assertEqual(reads, [5000])
        with open(path, "wb") as f:
            f.write(b"b" * 5000)
        # The filesystem's timestamps are real time, not a clock the test
        # can move: a rewrite within the same tick keeps its change time.
        # Setting the modification time gives the rewrite a key of its own
        # (and a new change time) without waiting for the tick to pass.
        before = os.stat(path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        self.assertEqual(storage.digest(b"f.bin"), (hashlib.sha1(b"b" * 5000).hexdigest(), 5000))
        self.assertEqual(reads, [5000, 5000])


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


class UnixSocketTests(TestCase):
    async def test_unixSocketTransfersUseTheSamePaths(self):
        """
        A Unix socket is a plain socket too: sendfile down, direct reads up,
        and small and large files in one mget, all byte-identical.
        """
        root, local = roots(self, "root", "local")
        digests = makeMix(root)
        up = os.path.join(local, "up.bin")
        upDigest = writeRandom(up, 3 * MiB + 11, seed=9)
        # Socket paths are short (108 bytes): keep this one near the root.
        folder = tempfile.mkdtemp(prefix="ftx-")
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "s")
        self.addCleanup(workers.stopPools, reactor)
        factory = FtxServerFactory(FilesystemStorage(root), reactor)
        serverLost = []
        build = factory.buildProtocol
        factory.buildProtocol = lambda addr: _recorded(build(addr), serverLost)
        port = await serverFromString(reactor, "unix:" + path).listen(factory)
        self.addCleanup(lambda: serverLost[0] if serverLost else None)
        self.addCleanup(port.stopListening)
        client = await connect(reactor, "unix:path=" + path)
        clientLost = whenLost(client.protocol)
        try:
            transfers = await client.mget("mix/*", os.path.join(local, "got"))
            await client.put(up, "back/up.bin")
            back = await client.sget("back/up.bin", os.path.join(local, "again.bin"))
        finally:
            await client.quit()
            await clientLost
        self.assertEqual([t.name for t in transfers], [name for name, _ in MIX])
        for transfer in transfers:
            self.assertEqual(sha1(transfer.path), digests[transfer.name])
        self.assertEqual(sha1(os.path.join(root, "back", "up.bin")), upDigest)
        self.assertEqual(upDigest, sha1(os.path.join(local, "again.bin")))
        self.assertEqual(back.digest, digestOf(os.path.join(local, "again.bin"), back.checksum))


def _recorded(protocol, lost):
    lost.append(whenLost(protocol))
    return protocol
