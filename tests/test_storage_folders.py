"""
The parts of the storage contract that issue 13 added, over both backends:
uploads that refuse to replace a file or pick a free name (atomically, at
the moment the file takes its name), folders made and removed, and the
used space as df(1) counts it.
"""

from __future__ import annotations

import errno
import hashlib
import os

from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx.server.limits import Quota
from ftx.server.storage import PUT_NEW, PUT_RENAME, PUT_REPLACE, renamedLeaves
from tests.storages import InMemory, OnFilesystem, OnS3

FILES = {b"a.txt": b"old", b"photos/x.jpg": b"x" * 10, b"photos/2024/y.jpg": b"yy", b"b.tar.gz": b"t"}


def _begin(storage, name: bytes, data: bytes, mode: str):
    upload = storage.beginUpload(name, len(data), 0, None, "sha1", mode)
    upload.store(data)
    upload.hasher.update(data)
    return upload


def _put(storage, name: bytes, data: bytes, mode: str) -> bytes:
    return _begin(storage, name, data, mode).finish(hashlib.sha1(data).hexdigest())


class _Contract:
    def setUp(self):
        self.quota = Quota(1 << 20)
        self.makeStorage(FILES, quota=self.quota)
        self.storage.sweep(3600, 0)

    def test_replaceIsTheDefault(self):
        self.assertEqual(_put(self.storage, b"a.txt", b"new", PUT_REPLACE), b"a.txt")
        self.assertEqual(self.storedContent(b"a.txt"), b"new")

    def test_newRefusesBeforeTheBody(self):
        e = self.assertRaises(errors.AlreadyExists, self.storage.beginUpload, b"a.txt", 3, 0, None, "sha1", PUT_NEW)
        self.assertIn("a.txt already exists", str(e))
        self.assertEqual(self.storedContent(b"a.txt"), b"old")

    def test_newRefusesAFileThatAppearedMeanwhile(self):
        """
        The check that counts is the one made as the file takes its name:
        a file put there while the body travelled is not replaced.
        """
        upload = _begin(self.storage, b"late.txt", b"mine", PUT_NEW)
        self.placeFile(b"late.txt", b"theirs")
        self.assertRaises(errors.AlreadyExists, upload.finish, hashlib.sha1(b"mine").hexdigest())
        self.assertEqual(self.storedContent(b"late.txt"), b"theirs")
        self.assertIsNone(self.partialContent(b"late.txt"))
        self.assertEqual(_put(self.storage, b"late.txt", b"again", PUT_RENAME), b"late (1).txt")

    def test_newTakesAFreeName(self):
        self.assertEqual(_put(self.storage, b"photos/new.jpg", b"n", PUT_NEW), b"photos/new.jpg")
        self.assertEqual(self.storedContent(b"photos/new.jpg"), b"n")

    def test_renamePicksTheNextFreeName(self):
        self.assertEqual(_put(self.storage, b"a.txt", b"1", PUT_RENAME), b"a (1).txt")
        self.assertEqual(_put(self.storage, b"a.txt", b"2", PUT_RENAME), b"a (2).txt")
        self.assertEqual(_put(self.storage, b"b.tar.gz", b"3", PUT_RENAME), b"b (1).tar.gz")
        self.assertEqual(_put(self.storage, b"photos/x.jpg", b"4", PUT_RENAME), b"photos/x (1).jpg")
        self.assertEqual(self.storedContent(b"a.txt"), b"old")
        self.assertEqual(self.storedContent(b"a (2).txt"), b"2")
        self.assertEqual(self.storedContent(b"photos/x (1).jpg"), b"4")
        self.assertEqual(_put(self.storage, b"free.txt", b"5", PUT_RENAME), b"free.txt")

    def test_renamedLeaves(self):
        names = renamedLeaves(b"archive.tar.gz")
        self.assertEqual([next(names), next(names)], [b"archive (1).tar.gz", b"archive (2).tar.gz"])
        self.assertEqual(next(renamedLeaves(b".profile")), b".profile (1)")
        self.assertEqual(next(renamedLeaves(b"README")), b"README (1)")

    def test_makeFolder(self):
        self.storage.makeFolder(b"new/deeper")
        self.storage.makeFolder(b"new/deeper")
        self.assertIn(b"deeper", self.folderEntries(b"new"))
        e = self.assertRaises(errors.AlreadyExists, self.storage.makeFolder, b"a.txt")
        self.assertEqual(str(e), "a file is in the way of the folder a.txt")
        self.assertRaises(errors.AlreadyExists, self.storage.makeFolder, b"a.txt/sub")
        self.assertRaises(errors.PermissionDenied, self.storage.makeFolder, b"../out")

    def test_removeFolder(self):
        self.storePartial(b"photos/2024/z.jpg", b"zz")
        self.storage.sweep(3600, 0)
        used = self.quota.used
        self.assertEqual(self.storage.removeFolder(b"photos"), 2)
        self.assertEqual([e.name for e in self.storage.listFiles()], [b"a.txt", b"b.tar.gz"])
        self.assertNotIn(b"photos", self.folderEntries())
        # Bytes, and the charge of 3 files (a partial one too) and 2 folders.
        self.assertEqual(self.quota.used, used - self.quota.charge(14, 3, 2))
        e = self.assertRaises(errors.NotFound, self.storage.removeFolder, b"photos")
        self.assertEqual(str(e), "no such folder: photos")
        e = self.assertRaises(errors.Conflict, self.storage.removeFolder, b"a.txt")
        self.assertEqual(str(e), "not a folder: a.txt")
        self.assertEqual(self.storedContent(b"a.txt"), b"old")

    def test_usedSpace(self):
        total, free = self.storage.diskSpace()
        used = self.storage.usedSpace()
        self.assertTrue(0 < used <= total, (used, total))


class FilesystemFolderTests(OnFilesystem, _Contract, SynchronousTestCase):
    def placeFile(self, name: bytes, data: bytes) -> None:
        with open(os.path.join(os.fsencode(self.storageRoot), name), "wb") as f:
            f.write(data)
    def test_usedSpaceIsDfUsed(self):
        st = os.statvfs(self.storageRoot)
        expected = (st.f_blocks - st.f_bfree) * st.f_frsize
        # Other processes write to the same disk meanwhile.
        self.assertLess(abs(self.storage.usedSpace() - expected), 256 << 20)

    def test_removeFolderRemovesLinksWithoutFollowing(self):
        outside = os.path.join(os.path.dirname(self.storageRoot), "outside")
        os.makedirs(outside)
        with open(os.path.join(outside, "keep.txt"), "wb") as f:
            f.write(b"keep")
        os.symlink(outside, os.path.join(self.storageRoot, "photos", "link"))
        os.symlink(os.path.join(outside, "keep.txt"), os.path.join(self.storageRoot, "photos", "file-link"))
        self.storage.removeFolder(b"photos")
        self.assertFalse(os.path.lexists(os.path.join(self.storageRoot, "photos")))
        self.assertEqual(os.listdir(outside), ["keep.txt"])

    def test_noClobberLinksAtomically(self):
        """
        The name is taken by a hard link, which fails if anything holds it:
        even a dangling symbolic link planted there is left alone.
        """
        os.symlink("nowhere", os.path.join(self.storageRoot, "planted"))
        self.assertEqual(_put(self.storage, b"planted", b"p", PUT_RENAME), b"planted (1)")
        self.assertTrue(os.path.islink(os.path.join(self.storageRoot, "planted")))


    def test_withoutHardLinks(self):
        """
        Where hard links are refused, an exclusive create claims the name
        before the rename: still no file replaced.
        """

        def refused(*args, **kwargs):
            raise OSError(errno.EPERM, "Operation not permitted")

        self.patch(os, "link", refused)
        self.assertEqual(_put(self.storage, b"a.txt", b"1", PUT_RENAME), b"a (1).txt")
        self.assertEqual(self.storedContent(b"a (1).txt"), b"1")
        upload = _begin(self.storage, b"late.txt", b"mine", PUT_NEW)
        self.placeFile(b"late.txt", b"theirs")
        self.assertRaises(errors.AlreadyExists, upload.finish, hashlib.sha1(b"mine").hexdigest())
        self.assertEqual(self.storedContent(b"late.txt"), b"theirs")


class MemoryFolderTests(InMemory, _Contract, SynchronousTestCase):
    def placeFile(self, name: bytes, data: bytes) -> None:
        self.storage.setContent(name, data)
    def test_usedSpaceIsWhatIsStored(self):
        self.assertEqual(self.storage.usedSpace(), sum(len(d) for d in FILES.values()))


class S3FolderTests(OnS3, _Contract, SynchronousTestCase):
    """
    The same over an object store. A name is taken there by a HEAD just
    before the write, not atomically between front ends.
    """

    def placeFile(self, name: bytes, data: bytes) -> None:
        self.s3.client.put_object(Bucket=self.s3.name, Key=self.s3Prefix + name.decode("utf-8"), Body=data)

    def test_removeFolder(self):
        self.assertEqual(self.storage.removeFolder(b"photos"), 2)
        self.assertEqual([e.name for e in self.storage.listFiles()], [b"a.txt", b"b.tar.gz"])
        e = self.assertRaises(errors.NotFound, self.storage.removeFolder, b"photos")
        self.assertEqual(str(e), "no such folder: photos")
        e = self.assertRaises(errors.Conflict, self.storage.removeFolder, b"a.txt")
        self.assertEqual(str(e), "not a folder: a.txt")

    def test_makeFolder(self):
        self.storage.makeFolder(b"new/deeper")
        self.storage.makeFolder(b"new/deeper")
        e = self.assertRaises(errors.AlreadyExists, self.storage.makeFolder, b"a.txt")
        self.assertEqual(str(e), "a file is in the way of the folder a.txt")
        self.assertEqual(_put(self.storage, b"new/deeper/f.txt", b"f", PUT_NEW), b"new/deeper/f.txt")
