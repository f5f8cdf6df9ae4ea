"""
The storage contract (tests/test_storage.py) over L{ftx.server.s3.S3Storage}
on the real engine, and what only an object store has: digests in object
metadata, chunked partial uploads, leases across front ends.
"""

import hashlib
import time

import xxhash
from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx.protocol import checksums
from ftx.server.s3 import S3Storage, openBucket
from ftx.server.s3 import partials
from tests.storages import OnS3
from tests.test_storage import FILES, _StorageContract, _sha1


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
