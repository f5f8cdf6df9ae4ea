"""
The quick check (size and whole-second modification time) and the local
digest cache behind C{--verify}.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli.quickcheck import DigestCache, defaultCachePath, localDigest, sameAsRemote
from ftx.errors import BadRequest
from ftx.protocol import checksums

from .support import digestOf, temporaryFolder


def _write(path: str, data: bytes, mtime: int = 1_600_000_000) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


class SameAsRemoteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = temporaryFolder(self)
        self.path = os.path.join(self.folder, "a")
        _write(self.path, b"x" * 100)

    def test_sameSizeAndTime(self) -> None:
        self.assertTrue(sameAsRemote(self.path, 100, 1_600_000_000))

    def test_fractionOfASecondIgnored(self) -> None:
        os.utime(self.path, ns=(1_600_000_000_700_000_000, 1_600_000_000_700_000_000))
        self.assertTrue(sameAsRemote(self.path, 100, 1_600_000_000))

    def test_otherSize(self) -> None:
        self.assertFalse(sameAsRemote(self.path, 101, 1_600_000_000))

    def test_otherTime(self) -> None:
        self.assertFalse(sameAsRemote(self.path, 100, 1_600_000_001))

    def test_missing(self) -> None:
        self.assertFalse(sameAsRemote(os.path.join(self.folder, "nope"), 100, 1_600_000_000))

    def test_symlinkIsNotTheFile(self) -> None:
        link = os.path.join(self.folder, "link")
        os.symlink(self.path, link)
        self.assertFalse(sameAsRemote(link, 100, 1_600_000_000))

    def test_folder(self) -> None:
        self.assertFalse(sameAsRemote(self.folder, os.stat(self.folder).st_size, int(os.stat(self.folder).st_mtime)))


class DigestCacheTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = temporaryFolder(self)
        self.cachePath = os.path.join(self.folder, "cache", "digests.json")
        self.path = os.path.join(self.folder, "data")
        _write(self.path, os.urandom(300_000))

    def cache(self) -> DigestCache:
        # Files here were written just now: keep their digests all the same.
        return DigestCache(self.cachePath, settledNs=0)

    def test_digestIsRight(self) -> None:
        for checksum in checksums.available():
            self.assertEqual(self.cache().digest(self.path, checksum), digestOf(self.path, checksum))
            self.assertEqual(localDigest(self.path, checksum), digestOf(self.path, checksum))

    def test_missThenHit(self) -> None:
        cache = self.cache()
        first = cache.digest(self.path, checksums.SHA1)
        second = cache.digest(self.path, checksums.SHA1)
        self.assertEqual((first, cache.misses, cache.hits), (second, 1, 1))

    def test_keptAcrossProcesses(self) -> None:
        with self.cache() as cache:
            expected = cache.digest(self.path, checksums.SHA1)
        later = self.cache()
        self.assertEqual(localDigest(self.path, checksums.SHA1, later), expected)
        self.assertEqual((later.hits, later.misses), (1, 0))

    def test_fileIsPrivate(self) -> None:
        with self.cache() as cache:
            cache.digest(self.path, checksums.SHA1)
        self.assertEqual(stat.S_IMODE(os.stat(self.cachePath).st_mode), 0o600)

    def test_checksumsKeptApart(self) -> None:
        with self.cache() as cache:
            cache.digest(self.path, checksums.SHA1)
        later = self.cache()
        self.assertEqual(later.digest(self.path, checksums.XXH128), digestOf(self.path, checksums.XXH128))
        self.assertEqual(later.misses, 1)

    def test_rewriteWithSameSizeAndTimeIsSeen(self) -> None:
        """
        Content changed and size and modification time put back: the change
        time differs, so the digest is computed again.
        """
        with self.cache() as cache:
            old = cache.digest(self.path, checksums.SHA1)
        _write(self.path, os.urandom(300_000))
        later = self.cache()
        new = later.digest(self.path, checksums.SHA1)
        self.assertNotEqual(new, old)
        self.assertEqual((new, later.misses), (digestOf(self.path, checksums.SHA1), 1))

    def test_chmodInvalidates(self) -> None:
        with self.cache() as cache:
            cache.digest(self.path, checksums.SHA1)
        os.chmod(self.path, 0o640)
        later = self.cache()
        later.digest(self.path, checksums.SHA1)
        self.assertEqual(later.misses, 1)

    def test_freshlyChangedFileNotKept(self) -> None:
        """
        A file changed within the settling margin may still be written in
        the same clock tick: hashed, not kept.
        """
        cache = DigestCache(self.cachePath, settledNs=3600 * 10**9)
        cache.digest(self.path, checksums.SHA1)
        cache.digest(self.path, checksums.SHA1)
        self.assertEqual(cache.misses, 2)

    def test_corruptFileIsEmptyCache(self) -> None:
        os.makedirs(os.path.dirname(self.cachePath))
        for junk in (b"\x00\xffnot json", b"[1, 2]", b'{"format": 1, "entries": {"k": [1]}}', b"{" * 100000):
            with open(self.cachePath, "wb") as f:
                f.write(junk)
            with self.cache() as cache:
                self.assertEqual(cache.digest(self.path, checksums.SHA1), digestOf(self.path, checksums.SHA1))
                self.assertEqual(cache.misses, 1)
            # ... and the next save leaves a good one.
            self.assertEqual(self.cache().digest(self.path, checksums.SHA1), digestOf(self.path, checksums.SHA1))
            with open(self.cachePath) as f:
                self.assertEqual(len(json.load(f)["entries"]), 1)

    def test_unwritableCacheIsNoError(self) -> None:
        blocker = os.path.join(self.folder, "file")
        _write(blocker, b"")
        with DigestCache(os.path.join(blocker, "digests.json"), settledNs=0) as cache:
            self.assertEqual(cache.digest(self.path, checksums.SHA1), digestOf(self.path, checksums.SHA1))

    def test_bounded(self) -> None:
        cache = DigestCache(self.cachePath, capacity=3, settledNs=0)
        for i in range(6):
            path = os.path.join(self.folder, str(i))
            _write(path, bytes([i]))
            cache.digest(path, checksums.SHA1)
            cache.flush()
        with open(self.cachePath) as f:
            self.assertEqual(len(json.load(f)["entries"]), 3)

    def test_unknownChecksum(self) -> None:
        self.assertRaises(BadRequest, self.cache().digest, self.path, "md5")

    def test_missingFile(self) -> None:
        self.assertRaises(OSError, self.cache().digest, os.path.join(self.folder, "nope"), checksums.SHA1)

    def test_defaultPathFollowsXdg(self) -> None:
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = self.folder
        try:
            self.assertEqual(defaultCachePath(), os.path.join(self.folder, "ftx", "digests.json"))
        finally:
            if old is None:
                del os.environ["XDG_CACHE_HOME"]
            else:
                os.environ["XDG_CACHE_HOME"] = old

    def test_concurrentProcessesKeepAValidFile(self) -> None:
        """
        Two processes saving over and over: the file is always whole JSON,
        and each one's digests are there at the end or merged in.
        """
        script = (
            "import os, sys\n"
            "from ftx.cli.quickcheck import DigestCache\n"
            "folder, cachePath, tag = sys.argv[1:]\n"
            "cache = DigestCache(cachePath, settledNs=0)\n"
            "for i in range(40):\n"
            "    p = os.path.join(folder, tag + str(i))\n"
            "    open(p, 'wb').write(os.urandom(64))\n"
            "    cache.digest(p, 'sha1')\n"
            "    cache.flush()\n"
        )
        processes = [subprocess.Popen([sys.executable, "-c", script, self.folder, self.cachePath, tag])
                     for tag in ("a", "b")]
        for process in processes:
            self.assertEqual(process.wait(timeout=60), 0)
        with open(self.cachePath) as f:
            entries = json.load(f)["entries"]
        self.assertGreaterEqual(len(entries), 40)
        leftovers = [n for n in os.listdir(os.path.dirname(self.cachePath)) if n != "digests.json"]
        self.assertEqual(leftovers, [])
