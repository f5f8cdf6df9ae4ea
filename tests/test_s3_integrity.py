"""
What guards an upload's bytes on their way into the engine
(L{ftx.server.s3.integrity}): payloads go unsigned, with a CRC32C the
engine checks; a body damaged on the way is refused and never stored.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from ftx import errors
from ftx.protocol import checksums
from ftx.server.s3 import partials
from ftx.server.s3.integrity import crc32cOf
from tests.storages import OnS3
from tests.test_storage import _sha1


def _bytesOf(body) -> bytes:
    # botocore hands bodies to the connection as bytes or a file object.
    if hasattr(body, "read"):
        position = body.tell()
        data = body.read()
        body.seek(position)
        return data
    return bytes(body or b"")


class _Damage:
    """
    Flips the first byte of the body of every request to the engine whose
    key contains C{where}, after the client computed its checksum and
    signed it: what a faulty network card or proxy would do.
    """

    def __init__(self, client, where: str) -> None:
        self.where = where
        self.damaged = 0
        client.meta.events.register("before-send.s3.*", self._damage)

    def _damage(self, request, **kwargs) -> None:
        body = _bytesOf(request.body)
        if self.where in request.url and body:
            request.body = bytes([body[0] ^ 1]) + body[1:]
            self.damaged += 1


class IntegrityTests(OnS3, SynchronousTestCase):
    def setUp(self) -> None:
        self.makeStorage({})

    def test_writesCarryChecksumNotSignature(self):
        """
        A chunk PUT, the last part of a compose and a single PUT go
        unsigned (no SHA-256 pass over the body in the front end) with the
        body's CRC32C, and nothing else hashes the body (no CRC32 besides);
        the body goes to the connection as one bytes object.
        """
        sent = []

        def record(request, **kwargs):
            sent.append((request.method, request.url, {k.lower(): v for k, v in request.headers.items()}, request.body))

        for operation in ("PutObject", "UploadPart"):
            self.s3.client.meta.events.register_last("before-send.s3." + operation, record)
        data = os.urandom((8 << 20) + 1000)
        upload = self.storage.beginUpload(b"big.bin", len(data))
        upload.store(data)
        upload.hasher.update(data)
        upload.finish(_sha1(data))
        small = self.storage.beginUpload(b"small.bin", 3)
        small.store(b"abc")
        small.hasher.update(b"abc")
        small.finish(_sha1(b"abc"))
        bodies = [(url, headers, body) for method, url, headers, body in sent if method == "PUT" and "/state" not in url and "/lease" not in url and body]
        carried = {url.split("?")[0].rsplit("/", 1)[-1].split("-")[0] for url, _, _ in bodies}
        self.assertEqual(carried, {"chunk", "big.bin", "small.bin"})
        for url, headers, body in bodies:
            # Whole, for one sendall: not a file read 16 KiB at a time.
            self.assertIsInstance(body, bytes, url)
            self.assertEqual(headers["x-amz-content-sha256"], b"UNSIGNED-PAYLOAD", url)
            self.assertEqual(headers["x-amz-checksum-crc32c"].decode(), crc32cOf(body), url)
            self.assertNotIn("x-amz-checksum-crc32", headers)
        self.assertEqual(self.storedContent(b"big.bin"), data)

    def test_engineRefusesDamagedBody(self):
        """
        The engine checks the CRC32C: a body that differs from it is
        refused (BadDigest) and no object is made.
        """
        damage = _Damage(self.s3.client, "/damaged.bin")
        error = self.assertRaises(
            Exception, self.s3.client.put_object, Bucket=self.s3.name, Key=self.s3Prefix + "damaged.bin", Body=b"x" * 1000
        )
        self.assertEqual(damage.damaged, 1)
        self.assertEqual(error.response["Error"]["Code"], "BadDigest")
        self.assertIsNone(self.storedContent(b"damaged.bin"))

    def test_damagedChunkFailsUpload(self):
        """
        A chunk damaged on its way fails the upload: the front end reports
        the engine's failure, nothing appears under the final name, and
        the partial upload lists only the chunks the engine took whole.
        """
        data = os.urandom(20 << 20)
        damage = _Damage(self.s3.client, "/chunk-")
        upload = self.storage.beginUpload(b"big.bin", len(data), checksum=checksums.SHA1)
        with self.assertRaises(errors.Unavailable):
            for start in range(0, len(data), 1 << 20):
                upload.store(data[start : start + (1 << 20)])
            upload.hasher.update(data)
            upload.finish(_sha1(data))
        self.assertGreater(damage.damaged, 0)
        upload.abort(keep=True)
        self.assertIsNone(self.storedContent(b"big.bin"))
        state = partials.readState(self.s3, self._area(b"big.bin"))
        self.assertEqual(state.chunks if state is not None else [], [])
