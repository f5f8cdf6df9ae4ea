"""
Files of many 1 MiB batches (L{ftx.client.e2e.stream} reads and seals
sixteen chunks at a time, each into a reused buffer): sizes
around batch boundaries come back byte for byte, and a chunk tampered with
in the middle of a large file stops decryption there, with nothing of it
or after it written, whichever way the cipher works (in place, or through
new bytes where cryptography lacks C{decrypt_into} and C{encrypt_into});
encryption is batched the same way.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from ftx.client.e2e import NotDecryptable, decryptFile, encryptFile, generateIdentity, newPlan
from ftx.client.e2e import stream
from ftx.client.e2e.stream import CHUNK
from tests.test_e2e_format import Files

BATCH = 16 * CHUNK


class BatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.files = Files(self)
        self.identity = generateIdentity()

    def encrypted(self, data: bytes) -> bytes:
        source = self.files.write("plain", data)
        encryptFile(source, self.files.path("c.age"), newPlan([self.identity.recipient()]))
        return self.files.read("c.age")

    def decrypt(self, cipher: bytes) -> int:
        self.files.write("in.age", cipher)
        return decryptFile(self.files.path("in.age"), self.files.path("out"), [self.identity])

    def roundTrips(self) -> None:
        for size in (BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + CHUNK + 7):
            data = os.urandom(size)
            self.assertEqual(self.decrypt(self.encrypted(data)), size)
            self.assertEqual(self.files.read("out"), data, size)

    def tamperedInTheMiddle(self) -> None:
        """
        Chunk 20 of 40 (in the second batch) altered: L{NotDecryptable}
        naming it, and what was written is only the chunks before it,
        authenticated plaintext, never bytes of chunk 20 or later.
        """
        data = os.urandom(40 * CHUNK)
        cipher = bytearray(self.encrypted(data))
        payload = len(cipher) - 40 * (CHUNK + 16)
        cipher[payload + 20 * (CHUNK + 16) + 7] ^= 0x80
        error = self.assertRaises(NotDecryptable, self.decrypt, bytes(cipher))
        self.assertIn("chunk 20", str(error))
        written = self.files.read("out")
        self.assertEqual(written, data[: 20 * CHUNK])

    def test_roundTrips(self) -> None:
        self.roundTrips()

    def test_tamperedInTheMiddle(self) -> None:
        self.tamperedInTheMiddle()

    def test_roundTripsWithoutDecryptInto(self) -> None:
        self.patch(stream, "_IN_PLACE", False)
        self.roundTrips()

    def test_tamperedWithoutDecryptInto(self) -> None:
        self.patch(stream, "_IN_PLACE", False)
        self.tamperedInTheMiddle()
