"""
The storage contract (L{ftx.server.storage.IStorage}) checked over both
backends: what the filesystem does, L{ftx.testing.MemoryStorage} does too,
with the same errors and messages wherever a client could tell.
"""

import hashlib
import io
import os
import shutil
import tempfile
import time

import xxhash
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ftx import errors
from ftx.protocol import checksums
from ftx.protocol.wire import EMPTY_SHA1
from ftx.server import digests
from ftx.server.accounts import AccessRules, FtxRealm, Permissions
from ftx.server.lifecycle import SweepService
from ftx.server.limits import Quota
from ftx.server.storage import IStorage, IUpload, SweepResult
from ftx.testing import MemoryFile, MemoryStorage
from tests.reliability import measure
from tests.storages import InMemory, OnFilesystem
from tests.support import InlineReactor

FILES = {
    b"a.txt": b"hello",
    b"b.bin": b"0123456789" * 100,
    b"sub/c.txt": b"in sub",
    b"sub/deeper/d.txt": b"deep",
    b".hidden": b"listed like any file",
}


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class _StorageContract:
    """
    The tests every backend passes; C{makeStorage} comes from
    L{OnFilesystem} or L{InMemory}.
    """

    def setUp(self):
        # Files written a moment ago count as settled, so that the digest
        # cache of the filesystem keeps their digests (tests/test_fastpaths
        # checks the settling rule itself).
        self.patch(digests, "SETTLED_NS", 0)
        self.makeStorage(FILES)

    def put(self, name: bytes, data: bytes, checksum: str = checksums.SHA1):
        upload = self.storage.beginUpload(name, len(data), 0, None, checksum)
        upload.store(data)
        upload.hasher.update(data)
        upload.finish(_digest(data, checksum))
        return upload

    def test_providesTheInterfaces(self):
        self.assertTrue(verifyObject(IStorage, self.storage))
        upload = self.storage.beginUpload(b"x", 1)
        self.assertTrue(verifyObject(IUpload, upload))
        upload.abort(keep=False)
        self.assertIsInstance(self.storage.location, str)

    # -- listing --------------------------------------------------------

    def test_listFiles(self):
        entries = self.storage.listFiles(None)
        self.assertEqual([e.name for e in entries], sorted(FILES))
        self.assertEqual({e.name: e.size for e in entries}, {k: len(v) for k, v in FILES.items()})
        self.assertTrue(all(isinstance(e.mtime, int) and e.mtime > 0 for e in entries))
        self.assertEqual([e.name for e in self.storage.listFiles(b"")], sorted(FILES))
        self.assertEqual([e.name for e in self.storage.listFiles(b"*.txt")], [b"a.txt"])
        self.assertEqual([e.name for e in self.storage.listFiles(b"sub/*")], [b"sub/c.txt"])
        self.assertEqual([e.name for e in self.storage.listFiles(b"sub")], [b"sub/c.txt", b"sub/deeper/d.txt"])
        self.assertEqual([e.name for e in self.storage.listFiles(b"a.txt")], [b"a.txt"])
        self.assertEqual(self.storage.listFiles(b"nothing*"), [])
        self.assertRaises(errors.PermissionDenied, self.storage.listFiles, b"../*")

    def test_partialUploadsAreNotListed(self):
        self.storePartial(b"sub/kept.bin", b"kept")
        upload = self.storage.beginUpload(b"new.bin", 10)
        upload.store(b"12345")
        self.assertEqual([e.name for e in self.storage.listFiles()], sorted(FILES))
        upload.abort(keep=True)
        self.assertEqual([e.name for e in self.storage.listFiles()], sorted(FILES))

    # -- reading --------------------------------------------------------

    def test_nothingStorableIsHidden(self):
        """
        Issue 12, item 8: a name that looks like a temporary file is
        listed like any other once stored.
        """
        self.put(b".ftx-tmp-stash", b"kept")
        self.put(b"sub/.ftx-tmp-x", b"also")
        names = [e.name for e in self.storage.listFiles(None)]
        self.assertIn(b".ftx-tmp-stash", names)
        self.assertIn(b"sub/.ftx-tmp-x", names)
        self.assertEqual([e.name for e in self.storage.listFiles(b".ftx-tmp-*")], [b".ftx-tmp-stash"])

    def test_openForRead(self):
        f, size = self.storage.openForRead(b"b.bin")
        try:
            self.assertEqual(size, 1000)
            self.assertEqual(f.read(10), b"0123456789")
            f.seek(995)
            self.assertEqual(f.read(100), b"56789")
        finally:
            f.close()

    def test_openForReadErrors(self):
        e = self.assertRaises(errors.NotFound, self.storage.openForRead, b"missing.txt")
        self.assertEqual(e.message, "no such file: missing.txt")
        e = self.assertRaises(errors.Conflict, self.storage.openForRead, b"sub")
        self.assertEqual(e.message, "is a directory: sub")
        e = self.assertRaises(errors.NotFound, self.storage.openForRead, b"a.txt/x")
        self.assertEqual(e.message, "no such file: a.txt/x")
        for bad in (b"../a.txt", b"/etc/passwd", b"sub//c.txt", b"a\\b", b"x.ftx-partial", b""):
            self.assertRaises(errors.PermissionDenied, self.storage.openForRead, bad)

    def test_openFileKeepsItsBytes(self):
        """
        A file opened before an upload replaces it reads the old bytes.
        """
        f, size = self.storage.openForRead(b"a.txt")
        self.put(b"a.txt", b"replaced")
        try:
            self.assertEqual((f.read(), size), (b"hello", 5))
        finally:
            f.close()
        self.assertEqual(self.storedContent(b"a.txt"), b"replaced")

    def test_digest(self):
        data = FILES[b"b.bin"]
        self.assertEqual(self.storage.digest(b"b.bin"), (_sha1(data), 1000))
        self.assertEqual(self.storage.digest(b"b.bin", None), (_sha1(data), 1000))
        self.assertEqual(self.storage.digest(b"b.bin", 10), (_sha1(data[:10]), 10))
        self.assertEqual(self.storage.digest(b"b.bin", 0), (EMPTY_SHA1, 0))
        self.assertEqual(self.storage.digest(b"b.bin", 1000), (_sha1(data), 1000))
        e = self.assertRaises(errors.BadOffset, self.storage.digest, b"b.bin", 1001)
        self.assertEqual(e.message, "b.bin has 1000 bytes, fewer than 1001")
        self.assertRaises(errors.NotFound, self.storage.digest, b"missing")
        self.assertRaises(errors.Conflict, self.storage.digest, b"sub")

    def test_prefixHasher(self):
        data = FILES[b"b.bin"]
        also = xxhash.xxh3_128()
        f, hasher, size = self.storage.prefixHasher(b"b.bin", 100, also)
        try:
            self.assertEqual((hasher.hexdigest(), size), (_sha1(data[:100]), 1000))
            self.assertEqual(also.hexdigest(), xxhash.xxh3_128(data[:100]).hexdigest())
            self.assertEqual(f.read(5), data[100:105])
        finally:
            f.close()
        f, hasher, size = self.storage.prefixHasher(b"b.bin", 0)
        f.close()
        self.assertEqual(hasher.hexdigest(), EMPTY_SHA1)
        e = self.assertRaises(errors.BadOffset, self.storage.prefixHasher, b"b.bin", 1001)
        self.assertEqual(e.message, "b.bin has 1000 bytes, fewer than 1001")
        self.assertRaises(errors.NotFound, self.storage.prefixHasher, b"missing", 0)

    def test_readSmall(self):
        for checksum in (checksums.SHA1, checksums.XXH128):
            for _ in range(2):
                f, size = self.storage.openForRead(b"a.txt")
                try:
                    self.assertEqual(self.storage.readSmall(f, size, checksum), (b"hello", _digest(b"hello", checksum)))
                finally:
                    f.close()
            f, size = self.storage.openForRead(b"a.txt")
            try:
                self.assertEqual(self.storage.cachedDigest(f, checksum), _digest(b"hello", checksum))
            finally:
                f.close()

    def test_digestCache(self):
        """
        A whole file's digest is kept for the file as it is; a new upload
        under the name is not answered from it.
        """
        f, _ = self.storage.openForRead(b"b.bin")
        with f:
            self.assertIsNone(self.storage.cachedDigest(f, checksums.SHA1))
        digest, _ = self.storage.digest(b"b.bin")
        f, _ = self.storage.openForRead(b"b.bin")
        with f:
            self.assertEqual(self.storage.cachedDigest(f, checksums.SHA1), digest)
            self.assertIsNone(self.storage.cachedDigest(f, checksums.XXH128))
        self.put(b"b.bin", b"other bytes")
        f, _ = self.storage.openForRead(b"b.bin")
        with f:
            self.assertIsNone(self.storage.cachedDigest(f, checksums.SHA1))
        self.assertEqual(self.storage.digest(b"b.bin"), (_sha1(b"other bytes"), 11))

    def test_rememberDigest(self):
        f, _ = self.storage.openForRead(b"b.bin")
        with f:
            version = self.storage.fileVersion(f)
            self.assertIsNone(self.storage.cachedDigest(f, checksums.XXH128))
            self.storage.rememberDigest(f, "ab" * 16, version, checksums.XXH128)
        f, _ = self.storage.openForRead(b"b.bin")
        with f:
            self.assertEqual(self.storage.cachedDigest(f, checksums.XXH128), "ab" * 16)

    # -- uploads --------------------------------------------------------

    def test_upload(self):
        upload = self.storage.beginUpload(b"new dir/up.bin", 10, 0, None, checksums.XXH128)
        self.assertEqual((upload.name, upload.size, upload.offset, upload.received), (b"new dir/up.bin", 10, 0, 0))
        self.assertEqual(upload.checksum, checksums.XXH128)
        for piece in (b"01234", memoryview(b"56789")):
            upload.store(piece)
            upload.hasher.update(piece)
        self.assertEqual(upload.received, 10)
        self.assertIsNone(self.storedContent(b"new dir/up.bin"))
        upload.finish(xxhash.xxh3_128(b"0123456789").hexdigest())
        self.assertEqual(self.storedContent(b"new dir/up.bin"), b"0123456789")
        self.assertEqual(self.folderEntries(b"new dir"), [b"up.bin"])
        upload.abort(keep=False)
        self.assertEqual(self.storedContent(b"new dir/up.bin"), b"0123456789")

    def test_uploadReplaces(self):
        self.put(b"a.txt", b"new content")
        self.assertEqual(self.storage.digest(b"a.txt"), (_sha1(b"new content"), 11))
        self.assertEqual(self.folderEntries(), sorted([b".hidden", b"a.txt", b"b.bin", b"sub"]))

    def test_uploadDigestMismatchKeepsNothing(self):
        upload = self.storage.beginUpload(b"a.txt", 3)
        upload.store(b"abc")
        upload.hasher.update(b"abc")
        e = self.assertRaises(errors.IntegrityError, upload.finish, "0" * 40)
        self.assertEqual(e.message, "SHA-1 mismatch: the upload of a.txt was corrupted")
        self.assertEqual(self.storedContent(b"a.txt"), b"hello")
        self.assertIsNone(self.partialContent(b"a.txt"))
        upload = self.storage.beginUpload(b"short.bin", 3)
        upload.store(b"ab")
        e = self.assertRaises(errors.IntegrityError, upload.finish, _sha1(b"ab"))
        self.assertEqual(e.message, "received 2 bytes, expected 3")
        self.assertIsNone(self.partialContent(b"short.bin"))
        self.assertEqual(self.folderEntries(), sorted([b".hidden", b"a.txt", b"b.bin", b"sub"]))

    def test_oneUploadPerName(self):
        first = self.storage.beginUpload(b"same.bin", 5)
        e = self.assertRaises(errors.Conflict, self.storage.beginUpload, b"same.bin", 5)
        self.assertEqual(e.message, "an upload to same.bin is already in progress")
        first.abort(keep=False)
        self.storage.beginUpload(b"same.bin", 5).abort(keep=False)

    def test_uploadToAFolder(self):
        e = self.assertRaises(errors.Conflict, self.storage.beginUpload, b"sub", 5)
        self.assertEqual(e.message, "is a directory: sub")
        e = self.assertRaises(errors.NotFound, self.storage.beginUpload, b"a.txt/x", 5)
        self.assertEqual(e.message, "no such file: a.txt/x")
        self.assertRaises(errors.PermissionDenied, self.storage.beginUpload, b"../x", 5)

    def test_keptAndResumed(self):
        data = b"resumable bytes!"
        upload = self.storage.beginUpload(b"sub/r.bin", len(data))
        upload.store(data[:6])
        upload.abort(keep=True)
        self.assertEqual(self.storage.partialUpload(b"sub/r.bin"), (6, _sha1(data[:6])))
        self.assertEqual(self.partialContent(b"sub/r.bin"), data[:6])
        for checksum in (checksums.XXH128, checksums.SHA1):
            upload = self.storage.beginUpload(b"sub/r.bin", len(data), 6, _sha1(data[:6]), checksum)
            self.assertEqual((upload.offset, upload.received), (6, 6))
            if checksum == checksums.SHA1:
                upload.store(data[6:])
                upload.hasher.update(data[6:])
                upload.finish(_sha1(data))
            else:
                upload.abort(keep=True)
        self.assertEqual(self.storedContent(b"sub/r.bin"), data)
        self.assertEqual(self.storage.partialUpload(b"sub/r.bin"), (0, EMPTY_SHA1))

    def test_resumeRefused(self):
        self.storePartial(b"p.bin", b"12345")
        e = self.assertRaises(errors.BadOffset, self.storage.beginUpload, b"p.bin", 10, 6, _sha1(b"123456"))
        self.assertEqual(e.message, "the server holds 5 bytes of p.bin, fewer than 6")
        e = self.assertRaises(errors.IntegrityError, self.storage.beginUpload, b"p.bin", 10, 5, _sha1(b"xxxxx"))
        self.assertEqual(e.message, "the part the server holds differs from yours; upload it again from the start")
        # Refusals give the name back.
        upload = self.storage.beginUpload(b"p.bin", 10, 3, _sha1(b"123"))
        self.assertEqual(self.partialContent(b"p.bin"), b"123")
        upload.abort(keep=False)
        self.assertIsNone(self.partialContent(b"p.bin"))
        self.assertEqual(self.storage.partialUpload(b"p.bin"), (0, EMPTY_SHA1))

    def test_freshUploadDropsWhatWasKept(self):
        self.storePartial(b"p.bin", b"12345")
        upload = self.storage.beginUpload(b"p.bin", 2)
        self.assertEqual(self.storage.partialUpload(b"p.bin"), (0, EMPTY_SHA1))
        upload.store(b"ab")
        upload.hasher.update(b"ab")
        upload.finish(_sha1(b"ab"))
        self.assertEqual(self.storedContent(b"p.bin"), b"ab")

    def test_partialUploadOfNothing(self):
        self.assertEqual(self.storage.partialUpload(b"never.bin"), (0, EMPTY_SHA1))
        self.assertEqual(self.storage.partialUpload(b"no/such/folder.bin"), (0, EMPTY_SHA1))
        self.assertRaises(errors.PermissionDenied, self.storage.partialUpload, b"../x")

    # -- delete and space -----------------------------------------------

    def test_delete(self):
        self.storage.delete(b"sub/c.txt")
        self.assertIsNone(self.storedContent(b"sub/c.txt"))
        e = self.assertRaises(errors.NotFound, self.storage.delete, b"sub/c.txt")
        self.assertEqual(e.message, "no such file: sub/c.txt")
        e = self.assertRaises(errors.NotFound, self.storage.delete, b"nowhere/x")
        self.assertEqual(e.message, "no such file: nowhere/x")
        e = self.assertRaises(errors.Conflict, self.storage.delete, b"sub")
        self.assertEqual(e.message, "is a directory: sub")
        self.assertRaises(errors.PermissionDenied, self.storage.delete, b"../a.txt")
        # The folder stays, empty of c.txt.
        self.assertEqual(self.folderEntries(b"sub"), [b"deeper"])

    def test_diskSpace(self):
        total, free = self.storage.diskSpace()
        self.assertGreater(total, 0)
        self.assertTrue(0 <= free <= total, (free, total))

    def test_quota(self):
        # Bytes only: what every backend counts. The charges per file and
        # per folder are L{_QuotaChargesContract}.
        quota = self.storage.quota = Quota(2000, perFile=0, perFolder=0)
        self.assertEqual(self.storage.sweep(3600, time.time())[:2], (0, sum(map(len, FILES.values()))))
        used = quota.used
        self.assertEqual(self.storage.diskSpace()[1], 2000 - used)
        e = self.assertRaises(errors.NoSpace, self.storage.beginUpload, b"big.bin", 2000)
        self.assertEqual(e.message, "quota exceeded: big.bin needs 2000 bytes, {} of the 2000-byte quota are free".format(2000 - used))
        self.assertEqual(self.storedContent(b"big.bin"), None)
        upload = self.storage.beginUpload(b"up.bin", 100)
        self.assertEqual(quota.reserved, 100)
        upload.store(b"x" * 40)
        self.assertEqual((quota.used, quota.reserved), (used + 40, 60))
        upload.abort(keep=True)
        self.assertEqual((quota.used, quota.reserved), (used + 40, 0))
        upload = self.storage.beginUpload(b"up.bin", 100, 40, _sha1(b"x" * 40))
        upload.store(b"x" * 60)
        upload.hasher.update(b"x" * 60)
        upload.finish(_sha1(b"x" * 100))
        self.assertEqual((quota.used, quota.reserved), (used + 100, 0))
        self.storage.delete(b"b.bin")
        self.assertEqual(quota.used, used + 100 - 1000)
        self.put(b"up.bin", b"y" * 10)
        self.assertEqual((quota.used, quota.reserved), (used - 1000 + 10, 0))
        upload = self.storage.beginUpload(b"gone.bin", 10)
        upload.store(b"z" * 10)
        upload.abort(keep=False)
        self.assertEqual((quota.used, quota.reserved), (used - 1000 + 10, 0))

    # -- home folders ---------------------------------------------------

    def test_child(self):
        home = self.storage.child(b"sub")
        self.assertTrue(verifyObject(IStorage, home))
        self.assertEqual([e.name for e in home.listFiles()], [b"c.txt", b"deeper/d.txt"])
        self.assertEqual(home.digest(b"c.txt"), (_sha1(b"in sub"), 6))
        self.assertRaises(errors.PermissionDenied, home.openForRead, b"../a.txt")
        self.assertRaises(errors.NotFound, home.openForRead, b"a.txt")
        upload = home.beginUpload(b"from home.bin", 3)
        # The view and the root share one set of names being uploaded.
        e = self.assertRaises(errors.Conflict, self.storage.beginUpload, b"sub/from home.bin", 3)
        self.assertEqual(e.message, "an upload to sub/from home.bin is already in progress")
        upload.store(b"abc")
        upload.hasher.update(b"abc")
        upload.finish(_sha1(b"abc"))
        self.assertEqual(self.storedContent(b"sub/from home.bin"), b"abc")
        self.assertEqual(home.digest(b"deeper/d.txt")[0], _sha1(b"deep"))
        f, _ = self.storage.openForRead(b"sub/deeper/d.txt")
        with f:
            self.assertEqual(self.storage.cachedDigest(f), _sha1(b"deep"))

    def test_childCreatedAndSharingTheQuota(self):
        home = self.storage.child(b"homes/alice")
        self.assertEqual(self.folderEntries(b"homes"), [b"alice"])
        self.assertEqual(home.listFiles(), [])
        self.storage.quota = Quota(10 ** 6)
        self.assertIs(home.quota, self.storage.quota)
        self.assertRaises(errors.PermissionDenied, self.storage.child, b"../out")

    def test_accountHomesAreChildViews(self):
        """
        The realm gives an account with a home the root's child view of it,
        one per home folder.
        """
        realm = FtxRealm(AccessRules(), self.storage)
        alice = realm.account("alice", Permissions("rw", b"sub"))
        self.assertEqual([e.name for e in alice.storage.listFiles()], [b"c.txt", b"deeper/d.txt"])
        self.assertIs(realm.account("bob", Permissions("r", b"sub")).storage, alice.storage)
        self.assertIsNone(realm.account("carol", Permissions("r")).storage)

    # -- sweep ----------------------------------------------------------

    def test_sweepExpiresOnlyAbandonedOldPartials(self):
        self.storage.quota = Quota(10 << 20, perFile=0, perFolder=0)
        past = time.time() - 7200
        self.storePartial(b"sub/old.bin", b"p" * 10, past)
        self.storePartial(b"fresh.bin", b"p" * 10)
        # An old partial that an upload holds right now stays.
        self.storePartial(b"held.bin", b"h" * 10, past)
        upload = self.storage.beginUpload(b"held.bin", 20, 10, _sha1(b"h" * 10))
        result = self.storage.sweep(3600, time.time())
        self.assertEqual(result.expired, 1)
        self.assertIsNone(self.partialContent(b"sub/old.bin"))
        self.assertEqual((self.partialContent(b"fresh.bin"), self.partialContent(b"held.bin")), (b"p" * 10, b"h" * 10))
        files = sum(map(len, FILES.values()))
        self.assertEqual(result[:2], (1, files + 20))
        self.assertEqual(self.storage.quota.used, files + 20)
        upload.abort(keep=False)
        self.assertEqual(self.storage.sweep(0, time.time() + 1)[:2], (1, files))

    def test_sweepServiceRunsTheSweep(self):
        """
        L{SweepService} sweeps through the storage's C{sweep} in the
        reactor's thread pool when it starts, and with a C{None} TTL keeps
        every partial upload but still counts.
        """
        self.storage.quota = Quota(10 << 20)
        self.storePartial(b"old.bin", b"o" * 7, time.time() - 7200)
        reactor = InlineReactor()
        for ttl, kept in ((None, b"o" * 7), (60, None)):
            service = SweepService(self.storage, ttl, reactor)
            service.clock = Clock()
            service.startService()
            service.stopService()
            self.assertEqual(self.partialContent(b"old.bin"), kept)
            self.assertTrue(self.storage.quota.counted)


class _QuotaChargesContract:
    """
    Issue 12, item 5: a quota counts disk, not only sizes. Every backend
    should pass these; the filesystem and memory backends do (the S3
    backend does not charge files and folders yet).
    """

    def test_quotaCharges(self):
        """
        A quota counts what the disk gives up: each file (partial uploads
        too) is charged C{perFile} on top of its bytes, and each folder
        C{perFolder}.
        """
        quota = self.storage.quota = Quota(10000, perFile=100, perFolder=1000)
        size = sum(map(len, FILES.values()))
        # FILES: five files, in two folders (sub, sub/deeper).
        self.assertEqual(self.storage.sweep(3600, time.time()), SweepResult(0, size, 5, 2))
        used = quota.used
        self.assertEqual(used, size + 5 * 100 + 2 * 1000)
        free = 10000 - used
        self.assertEqual(self.storage.diskSpace()[1], free)
        e = self.assertRaises(errors.NoSpace, self.storage.beginUpload, b"big.bin", free - 99)
        self.assertEqual(e.message, "quota exceeded: big.bin needs {} bytes, {} of the 10000-byte quota are free".format(free + 1, free))
        self.assertEqual(self.storedContent(b"big.bin"), None)
        upload = self.storage.beginUpload(b"up.bin", 100)
        # The partial file is charged as soon as it exists.
        self.assertEqual((quota.used, quota.reserved), (used + 100, 100))
        upload.store(b"x" * 40)
        self.assertEqual((quota.used, quota.reserved), (used + 140, 60))
        upload.abort(keep=True)
        self.assertEqual((quota.used, quota.reserved), (used + 140, 0))
        upload = self.storage.beginUpload(b"up.bin", 100, 40, _sha1(b"x" * 40))
        upload.store(b"x" * 60)
        upload.hasher.update(b"x" * 60)
        upload.finish(_sha1(b"x" * 100))
        self.assertEqual((quota.used, quota.reserved), (used + 200, 0))
        self.storage.delete(b"b.bin")
        self.assertEqual(quota.used, used + 200 - 1100)
        # A replaced file gives back its bytes and its charge.
        self.put(b"up.bin", b"y" * 10)
        self.assertEqual((quota.used, quota.reserved), (used - 1100 + 110, 0))
        upload = self.storage.beginUpload(b"gone.bin", 10)
        upload.store(b"z" * 10)
        upload.abort(keep=False)
        self.assertEqual((quota.used, quota.reserved), (used - 1100 + 110, 0))
        # Folders an upload creates are charged; existing ones are not.
        self.put(b"new/deeper/n.bin", b"n")
        self.assertEqual((quota.used, quota.reserved), (used - 1100 + 110 + 2101, 0))
        self.put(b"new/deeper/m.bin", b"m")
        self.assertEqual(quota.used, used - 1100 + 110 + 2101 + 101)
        # The running count and a fresh walk agree.
        counted = quota.used
        self.storage.sweep(3600, time.time())
        self.assertEqual(quota.used, counted)

    def test_quotaRefusesFoldersItCannotHold(self):
        quota = self.storage.quota = Quota(10000, perFile=100, perFolder=1000)
        self.storage.sweep(3600, time.time())
        free = quota.available()
        # The file alone would fit; with the three folders it would not.
        e = self.assertRaises(errors.NoSpace, self.storage.beginUpload, b"p/q/r/s.bin", free - 100)
        self.assertIn("needs {} bytes".format(free + 3000), e.message)
        self.assertNotIn(b"p", self.folderEntries())
        self.assertEqual(quota.reserved, 0)

    def test_tinyFilesInFreshFoldersFillTheQuota(self):
        """
        Issue 12, item 5: a thousand one-byte uploads, each into a folder
        of its own, under a 64 KiB quota with the default charges: refused
        after a handful, having used far less disk than the 12 MiB the
        byte count alone allowed.
        """
        quota = self.storage.quota = Quota(64 << 10)
        self.storage.sweep(3600, time.time())
        stored = 0
        for i in range(1000):
            try:
                self.put(b"f%d/x" % i, b"1")
            except errors.NoSpace:
                break
            stored += 1
        self.assertLess(stored, 10)
        self.assertLessEqual(quota.used, quota.limit)
        if self.backend == "filesystem":
            allocated = 0
            for directory, dirnames, filenames in os.walk(self.storageRoot):
                for entry in dirnames + filenames:
                    allocated += os.lstat(os.path.join(directory, entry)).st_blocks * 512
            self.assertLess(allocated, 256 << 10)
            measure(
                "quota: 1000 one-byte uploads into fresh folders, 64 KiB quota",
                "{} stored, {} KiB of disk used, then 507".format(stored, allocated >> 10),
            )

    def test_sweepCountsFilesAndFolders(self):
        quota = self.storage.quota = Quota(10 << 20)
        self.storePartial(b"sub/kept.bin", b"p" * 10)
        result = self.storage.sweep(3600, time.time())
        files = sum(map(len, FILES.values()))
        self.assertEqual(result, SweepResult(0, files + 10, 5 + 1, 2))
        self.assertEqual(quota.used, quota.charge(files + 10, 6, 2))


def _digest(data: bytes, checksum: str) -> str:
    hasher = checksums.new(checksum)
    hasher.update(data)
    return hasher.hexdigest()


class FilesystemStorageTests(OnFilesystem, _StorageContract, _QuotaChargesContract, SynchronousTestCase):
    def test_homeLeadingOutsideIsRefused(self):
        outside = tempfile.mkdtemp(prefix="ftx-test-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        os.symlink(outside, os.path.join(self.storageRoot, "out"))
        e = self.assertRaises(errors.PermissionDenied, self.storage.child, b"out")
        self.assertEqual(e.message, "the home folder out leads outside the root")
        e = self.assertRaises(errors.PermissionDenied, FtxRealm(AccessRules(), self.storage).account, "x", Permissions("r", b"out"))
        self.assertEqual(e.message, "the home folder out leads outside the root")


class MemoryStorageTests(InMemory, _StorageContract, _QuotaChargesContract, SynchronousTestCase):
    def test_openFilesHaveNoDescriptor(self):
        """
        Bodies from memory go by copying: no C{fileno()} to send from.
        """
        f, _ = self.storage.openForRead(b"a.txt")
        self.assertIsInstance(f, MemoryFile)
        self.assertRaises(io.UnsupportedOperation, f.fileno)

    def test_diskFull(self):
        storage = MemoryStorage({b"a": b"x" * 90}, total=100)
        self.assertEqual(storage.diskSpace(), (100, 10))
        upload = storage.beginUpload(b"b", 20)
        upload.store(b"y" * 10)
        e = self.assertRaises(errors.NoSpace, upload.store, b"y")
        self.assertEqual(e.message, "no space left on the server for b")
        upload.abort(keep=False)
        self.assertEqual(storage.diskSpace(), (100, 10))

    def test_clockDatesFiles(self):
        clock = Clock()
        clock.advance(1000)
        storage = MemoryStorage({b"a": b"x"}, clock=clock)
        self.assertEqual(storage.listFiles()[0].mtime, 1000)
        storage.setPartial(b"p", b"kept")
        self.assertEqual(storage.sweep(10, 1005), SweepResult(0, 5, 2, 0))
        self.assertEqual(storage.sweep(10, 1010), SweepResult(1, 1, 1, 0))
        self.assertEqual(storage.location, "memory")
        self.assertEqual(storage.child(b"x/y").location, "memory/x/y")
