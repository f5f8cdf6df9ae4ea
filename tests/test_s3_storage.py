"""
The storage contract (tests/test_storage.py) over L{ftx.server.s3.S3Storage}
on the real engine, and what only an object store has: digests in object
metadata, chunked partial uploads, leases across front ends.
"""

import hashlib
import os
import time

import xxhash
from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx.protocol import checksums
from ftx.server.s3 import S3Storage, openBucket
from ftx.server.s3 import partials, reads
from tests.storages import OnS3
from tests.test_storage import _StorageContract, _sha1


class S3StorageTests(OnS3, _StorageContract, SynchronousTestCase):
    def test_digestCache(self):
        """
        As over the other backends, a whole file's digest is kept for the
        file as it is; an upload stores its digests in the object's
        metadata, so the new file's digest is known at once (and never the
        old one's).
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
            self.assertEqual(self.storage.cachedDigest(f, checksums.SHA1), _sha1(b"other bytes"))
            self.assertEqual(self.storage.cachedDigest(f, checksums.XXH128), xxhash.xxh3_128(b"other bytes").hexdigest())
        self.assertEqual(self.storage.digest(b"b.bin"), (_sha1(b"other bytes"), 11))

    def test_reservedNames(self):
        e = self.assertRaises(errors.PermissionDenied, self.storage.beginUpload, b".ftx-uploads/x", 1)
        self.assertEqual(e.message, ".ftx-uploads is reserved for the server's own use")
        self.assertRaises(errors.PermissionDenied, self.storage.openForRead, b".ftx-uploads/x")
        self.assertRaises(errors.PermissionDenied, self.storage.openForRead, b"\xff.bin")

    def test_missingBucket(self):
        from tests import seaweed

        e = self.assertRaises(ValueError, openBucket, seaweed.engine().endpoint, "no-such-bucket-here")
        self.assertIn("the bucket no-such-bucket-here does not exist", str(e))


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class S3OnlyTests(OnS3, SynchronousTestCase):
    """
    What only the object store has: chunks, leases between front ends
    (two storages over one prefix stand for two processes).
    """

    def setUp(self):
        self.makeStorage({})
        self.clock = _Clock(time.time())
        self.first = S3Storage(self.s3, self.s3Prefix, leaseSeconds=30, now=self.clock)
        self.second = S3Storage(self.s3, self.s3Prefix, leaseSeconds=30, now=self.clock)

    def test_chunkSizes(self):
        self.assertEqual(partials.chunkSizeFor(0), 8 << 20)
        self.assertEqual(partials.chunkSizeFor((256 << 20) - 1), 8 << 20)
        self.assertEqual(partials.chunkSizeFor(256 << 20), 16 << 20)
        self.assertEqual(partials.chunkSizeFor(150_000 << 20), 16 << 20)
        self.assertEqual(partials.chunkSizeFor(170_001 << 20), 18 << 20)
        big = partials.chunkSizeFor(1 << 40)
        self.assertEqual(big % (1 << 20), 0)
        self.assertLessEqual(-(-(1 << 40) // big), partials.MAX_PARTS)

    def test_chunkedUploadResumedElsewhereMidChunk(self):
        """
        20 MiB kept as two full chunks and a short one; a resume through
        another storage at an offset inside the second chunk keeps the
        first chunk as it is, and the finish composes the object.
        """
        data = os.urandom(20 << 20)
        upload = self.first.beginUpload(b"big.bin", len(data))
        for start in range(0, len(data), 1 << 20):
            upload.store(data[start : start + (1 << 20)])
        upload.abort(keep=True)
        state = partials.readState(self.s3, self._area(b"big.bin"))
        self.assertEqual([c.size for c in state.chunks], [8 << 20, 8 << 20, 4 << 20])
        self.assertEqual(self.second.partialUpload(b"big.bin"), (len(data), _sha1(data)))
        offset = 10 << 20
        upload = self.second.beginUpload(b"big.bin", len(data), offset, _sha1(data[:offset]), checksums.XXH128)
        self.assertEqual(self.first.partialUpload(b"big.bin"), (offset, _sha1(data[:offset])))
        upload.store(data[offset:])
        upload.hasher.update(data[offset:])
        upload.finish(xxhash.xxh3_128(data).hexdigest())
        self.assertEqual(hashlib.sha1(self.storedContent(b"big.bin")).hexdigest(), _sha1(data))
        self.assertEqual(self.first.digest(b"big.bin"), (_sha1(data), len(data)))
        # XXH3-128 was the body's checksum: the metadata holds it, from the
        # resumed prefix and the rest alike.
        metadata = self.s3.head(self.s3Prefix + "big.bin")["Metadata"]
        self.assertEqual(metadata["ftx-xxh128"], xxhash.xxh3_128(data).hexdigest())
        keys = [o["Key"] for o in self.s3.client.list_objects_v2(Bucket=self.s3.name, Prefix=self.s3Prefix).get("Contents", ())]
        self.assertEqual(keys, [self.s3Prefix + "big.bin"])

    def test_failedChunkWriteLeavesNothingUnlisted(self):
        """
        Chunks go to the engine while the next one fills; one that fails
        fails the upload, and neither it nor a chunk written after it is
        left in the bucket unlisted, nor are the bytes buffered after the
        gap kept: what the state lists is what is kept, whole.
        """
        from ftx.server.s3 import upload as uploadModule

        data = os.urandom(33 << 20)
        upload = self.first.beginUpload(b"big.bin", len(data))
        client = self.s3.client
        written = []

        class FailSecondChunk:
            def put_object(self, **kwargs):
                if "/chunk-" in kwargs["Key"]:
                    written.append(kwargs["Key"])
                    if len(written) == 2:
                        raise OSError("the engine fell over")
                return client.put_object(**kwargs)

            def __getattr__(self, name):
                return getattr(client, name)

        self.patch(self.s3, "client", FailSecondChunk())
        self.patch(uploadModule, "CHUNKS_IN_FLIGHT", 2)
        with self.assertRaises(errors.Unavailable):
            for start in range(0, len(data), 5 << 20):
                upload.store(data[start : start + (5 << 20)])
        upload.abort(keep=True)
        state = partials.readState(self.s3, self._area(b"big.bin"))
        self.assertEqual(self.first.partialUpload(b"big.bin"), (8 << 20, _sha1(data[: 8 << 20])))
        chunks = [o["Key"] for o in client.list_objects_v2(Bucket=self.s3.name, Prefix=self._area(b"big.bin")).get("Contents", ()) if "/chunk-" in o["Key"]]
        self.assertEqual(chunks, [c.key for c in state.chunks])

    def test_leaseBetweenFrontEnds(self):
        upload = self.first.beginUpload(b"x.bin", 4)
        upload.store(b"ab")
        e = self.assertRaises(errors.Conflict, self.second.beginUpload, b"x.bin", 4)
        self.assertEqual(e.message, "an upload to x.bin is already in progress")
        self.clock.now += 31
        taken = self.second.beginUpload(b"x.bin", 4)
        e = self.assertRaises(errors.Conflict, upload.store, b"cd")
        self.assertEqual(e.message, "the upload of x.bin was taken over by another server after a stall")
        upload.abort(keep=True)
        taken.store(b"wxyz")
        taken.hasher.update(b"wxyz")
        taken.finish(_sha1(b"wxyz"))
        self.assertEqual(self.storedContent(b"x.bin"), b"wxyz")

    def test_lostLeaseFinishesNothing(self):
        upload = self.first.beginUpload(b"y.bin", 2)
        upload.store(b"ab")
        upload.hasher.update(b"ab")
        self.clock.now += 31
        taken = self.second.beginUpload(b"y.bin", 2)
        e = self.assertRaises(errors.Conflict, upload.finish, _sha1(b"ab"))
        self.assertEqual(e.message, "the upload of y.bin was taken over by another server after a stall")
        self.assertIsNone(self.storedContent(b"y.bin"))
        taken.abort(keep=False)

    def test_sweepFromTwoFrontEnds(self):
        self.storePartial(b"old.bin", b"o" * 10, time.time() - 7200)
        results = [self.first.sweep(3600, time.time()), self.second.sweep(3600, time.time())]
        self.assertEqual(sorted(r.expired for r in results), [0, 1])
        self.assertIsNone(self.partialContent(b"old.bin"))


class ReadAheadTests(OnS3, SynchronousTestCase):
    """
    Downloads read ahead in the bucket's bounded pool; the server reads all
    of them from one thread, round robin.
    """

    def test_moreDownloadsThanPoolThreads(self):
        """
        With more downloads at once than the pool has threads, each still
        gets its bytes: a read-ahead job never holds a thread waiting for
        its reader (which would leave the one reading thread waiting for a
        job that cannot start).
        """
        from ftx.server.s3 import bucket as bucketModule

        self.patch(bucketModule.Bucket, "POOL_SIZE", 2)
        self.patch(reads, "AHEAD", 2)
        self.patch(reads, "READ_TIMEOUT", 10.0)
        if hasattr(reads, "WINDOW"):
            self.patch(reads, "WINDOW", 256 << 10)
        contents = {"f{}.bin".format(i).encode(): os.urandom(2 << 20) for i in range(5)}
        self.makeStorage(contents)
        opened = [self.storage.openForRead(name)[0] for name in sorted(contents)]
        got = {f.name: bytearray() for f in opened}
        try:
            while any(len(got[f.name]) < f.size for f in opened):
                for f in opened:
                    got[f.name] += f.read(64 << 10)
        finally:
            for f in opened:
                f.close()
        self.assertEqual({name: bytes(data) for name, data in got.items()}, contents)

    def test_readAheadWithinTheProcessBudget(self):
        """
        Many downloads at once read ahead no more than the process's
        budget, beyond one window each (which each always gets, so none
        starves); closing them gives everything back.
        """
        self.patch(reads, "WINDOW", 128 << 10)
        self.patch(reads, "AHEAD", 3)
        self.patch(reads, "PROCESS_AHEAD", 256 << 10)
        contents = {"f{}.bin".format(i).encode(): os.urandom(2 << 20) for i in range(4)}
        self.makeStorage(contents)
        budget = self.s3.readAhead
        opened = [self.storage.openForRead(name)[0] for name in sorted(contents)]
        got = {f.name: bytearray() for f in opened}
        worst = 0
        try:
            while any(len(got[f.name]) < f.size for f in opened):
                for f in opened:
                    got[f.name] += f.read(64 << 10)
                    worst = max(worst, budget.held)
        finally:
            for f in opened:
                f.close()
        self.assertEqual({name: bytes(data) for name, data in got.items()}, contents)
        self.assertLessEqual(worst, (256 << 10) + len(opened) * (128 << 10))
        self.assertGreater(worst, len(opened) * (128 << 10))
        self.assertEqual(budget.held, 0)
        f = self.storage.openForRead(b"f0.bin")[0]
        f.read(1)
        f.close()
        self.assertEqual(budget.held, 0)

    def test_replacedWhileRead(self):
        """
        A large object replaced while it is read fails the read, as an
        L{OSError} (which ends a download) and with a message for people:
        never bytes of two versions.
        """
        self.patch(reads, "WINDOW", 256 << 10)
        self.patch(reads, "AHEAD", 1)
        self.makeStorage({b"big.bin": b"a" * (3 << 20)})
        f, size = self.storage.openForRead(b"big.bin")
        with f:
            self.assertEqual(f.read(4), b"aaaa")
            f.seek(2 << 20)
            self.s3.client.put_object(Bucket=self.s3.name, Key=self.s3Prefix + "big.bin", Body=b"b" * (3 << 20))
            e = self.assertRaises(OSError, f.read, 1 << 10)
        self.assertIsInstance(e, errors.Conflict)
        self.assertEqual(e.message, "big.bin changed while it was read; read it again")


class NoClobberTests(OnS3, SynchronousTestCase):
    def test_newModeIsAtomicBetweenFrontEnds(self):
        """
        C{put} without replacing: a file another front end wrote after the
        HEAD check is not overwritten; the write itself is conditional.
        """
        from ftx.server.storage import PUT_NEW

        self.makeStorage({})
        upload = self.storage.beginUpload(b"n.bin", 3, 0, None, checksums.SHA1, PUT_NEW)
        upload.store(b"abc")
        upload.hasher.update(b"abc")
        self.s3.client.put_object(Bucket=self.s3.name, Key=self.s3Prefix + "n.bin", Body=b"theirs")
        # The race window: the other front end's write lands between the
        # finish's HEAD and its write.
        self.patch(self.s3, "head", lambda key: None)
        e = self.assertRaises(errors.AlreadyExists, upload.finish, _sha1(b"abc"))
        self.assertEqual(e.message, "n.bin already exists on the server; nothing was changed")
        self.assertEqual(self.storedContent(b"n.bin"), b"theirs")
