"""
The age v1 format as ftx writes and reads it (L{ftx.client.e2e}), without
a server: round trips across chunk boundaries, repeatable encryption for
resumed uploads, and every way a file can fail to open (wrong identity,
tampered, cut off, a hostile header), each leaving the partial file for
the caller to remove and never a plaintext of a bad chunk unflagged.
The reference tool's view is in tests/test_e2e_cli.py.
"""

from __future__ import annotations

import io
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from ftx.client.e2e import (
    BadKey,
    Identity,
    NoIdentity,
    NotDecryptable,
    Passphrase,
    Recipient,
    decryptFile,
    encryptFile,
    generateIdentity,
    newPlan,
    readIdentities,
    readRecipients,
    writeIdentity,
)
from ftx.client.e2e.header import MAX_HEADER, Header
from ftx.client.e2e.stream import CHUNK, encryptedSize
from ftx.errors import IntegrityError, PermissionDenied
from tests.support import temporaryFolder

#: scrypt at its cheapest that still exercises the stanza; age's default
#: (2**18) costs a second each way.
CHEAP = 10


class Files:
    def __init__(self, case) -> None:
        self.folder = temporaryFolder(case, "ftx-e2e-")

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def write(self, name: str, data: bytes) -> str:
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()


class RoundTripTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.files = Files(self)
        self.identity = generateIdentity()

    def roundTrip(self, data: bytes, recipients, identities) -> bytes:
        source = self.files.write("plain", data)
        size = encryptFile(source, self.files.path("c.age"), newPlan(recipients))
        self.assertEqual(size, os.path.getsize(self.files.path("c.age")))
        self.assertEqual(decryptFile(self.files.path("c.age"), self.files.path("out"), identities), len(data))
        return self.files.read("out")

    def test_sizesAroundChunks(self) -> None:
        """
        Empty, one byte, around one chunk and several chunks come back
        byte for byte; the ciphertext size is the header, the nonce and a
        16-byte tag per chunk more.
        """
        for size in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK):
            data = os.urandom(size)
            self.assertEqual(self.roundTrip(data, [self.identity.recipient()], [self.identity]), data, size)
            header = len(Header.read(open(self.files.path("c.age"), "rb")).encoded)
            self.assertEqual(os.path.getsize(self.files.path("c.age")), encryptedSize(size, header))

    def test_severalRecipients(self) -> None:
        """
        Each of several recipients opens the file with its own identity.
        """
        other = generateIdentity()
        data = os.urandom(1000)
        for identity in (self.identity, other):
            self.assertEqual(self.roundTrip(data, [self.identity.recipient(), other.recipient()], [identity]), data)

    def test_passphrase(self) -> None:
        data = os.urandom(CHUNK + 5)
        self.assertEqual(self.roundTrip(data, [Passphrase("correct horse", CHEAP)], [Passphrase("correct horse")]), data)

    def test_samePlanSameCiphertext(self) -> None:
        """
        What resumed uploads rely on: the same plan gives the same bytes,
        a new plan different ones.
        """
        source = self.files.write("plain", os.urandom(2 * CHUNK + 7))
        plan = newPlan([self.identity.recipient()])
        encryptFile(source, self.files.path("a"), plan)
        encryptFile(source, self.files.path("b"), plan)
        encryptFile(source, self.files.path("c"), newPlan([self.identity.recipient()]))
        self.assertEqual(self.files.read("a"), self.files.read("b"))
        self.assertNotEqual(self.files.read("a"), self.files.read("c"))
        self.assertEqual(stat.S_IMODE(os.stat(self.files.path("a")).st_mode), 0o600)


class FailureTests(SynchronousTestCase):
    """
    A file that does not open raises an error the command line maps to
    exit 5 (no identity) or 6 (does not authenticate).
    """

    def setUp(self) -> None:
        self.files = Files(self)
        self.identity = generateIdentity()
        self.data = os.urandom(3 * CHUNK + 100)
        encryptFile(self.files.write("plain", self.data), self.files.path("c.age"), newPlan([self.identity.recipient()]))
        self.cipher = self.files.read("c.age")

    def decrypt(self, cipher: bytes, identities=None):
        self.files.write("bad.age", cipher)
        return decryptFile(self.files.path("bad.age"), self.files.path("out"), identities or [self.identity])

    def test_wrongIdentity(self) -> None:
        """
        Another identity: L{NoIdentity} (a L{PermissionDenied}) and
        nothing written at all.
        """
        error = self.assertRaises(NoIdentity, self.decrypt, self.cipher, [generateIdentity()])
        self.assertIsInstance(error, PermissionDenied)
        self.assertIn("none of the identities", str(error))
        self.assertFalse(os.path.exists(self.files.path("out")))

    def test_wrongPassphrase(self) -> None:
        encryptFile(self.files.path("plain"), self.files.path("p.age"), newPlan([Passphrase("right", CHEAP)]))
        cipher = self.files.read("p.age")
        self.assertRaises(NoIdentity, self.decrypt, cipher, [Passphrase("wrong")])
        error = self.assertRaises(NoIdentity, self.decrypt, cipher, [self.identity])
        self.assertIn("passphrase", str(error))

    def test_tamperedChunk(self) -> None:
        """
        One flipped bit in the second chunk (chunk 1): L{NotDecryptable},
        an L{IntegrityError}, naming the chunk.
        """
        position = len(self.cipher) - (100 + 16) - 2 * (CHUNK + 16) + 5
        tampered = bytearray(self.cipher)
        tampered[position] ^= 1
        error = self.assertRaises(NotDecryptable, self.decrypt, bytes(tampered))
        self.assertIsInstance(error, IntegrityError)
        self.assertIn("chunk 1", str(error))

    def test_truncatedAtChunkBoundary(self) -> None:
        """
        Cut after a whole chunk: the chunk now last was not sealed as the
        last one, so it does not authenticate.
        """
        self.assertRaises(NotDecryptable, self.decrypt, self.cipher[: -(100 + 16)])

    def test_truncatedMidChunk(self) -> None:
        self.assertRaises(NotDecryptable, self.decrypt, self.cipher[:-50])

    def test_truncatedHeader(self) -> None:
        self.assertRaises(NotDecryptable, self.decrypt, self.cipher[:60])

    def test_appendedChunk(self) -> None:
        self.assertRaises(NotDecryptable, self.decrypt, self.cipher + self.cipher[-(100 + 16):])

    def test_headerAltered(self) -> None:
        """
        A stanza added to the header breaks its MAC.
        """
        head = Header.read(io.BytesIO(self.cipher)).encoded
        extra = self.identity.recipient().wrap(os.urandom(16))[0].encode()
        altered = head.replace(b"\n---", b"\n" + extra.rstrip(b"\n") + b"\n---", 1)
        self.assertRaises(NotDecryptable, self.decrypt, altered + self.cipher[len(head):])

    def test_notAge(self) -> None:
        self.assertRaises(NotDecryptable, self.decrypt, b"just some text\n")
        self.assertRaises(NotDecryptable, self.decrypt, b"")

    def test_hostileHeaderBounded(self) -> None:
        """
        A header line without end is refused after L{MAX_HEADER} bytes,
        not read into memory whole.
        """
        hostile = b"age-encryption.org/v1\n-> X25519 " + b"A" * (MAX_HEADER + 10)
        self.assertRaises(NotDecryptable, self.decrypt, hostile)

    def test_lowOrderShare(self) -> None:
        """
        An X25519 stanza whose share is a low-order point (the shared
        secret would be all zeros) opens nothing; it is not a crash.
        """
        fileKey = os.urandom(16)
        from ftx.client.e2e.header import Stanza, b64encode

        stanza = Stanza(["X25519", b64encode(bytes(32))], os.urandom(32))
        text = Header.make([stanza], fileKey).encoded
        self.assertRaises(NoIdentity, self.decrypt, text + os.urandom(16 + 32))

    def test_hostileWorkFactor(self) -> None:
        """
        A passphrase file asking for scrypt 2**40 is refused before any
        work.
        """
        plan = newPlan([Passphrase("pw", CHEAP)])
        text = plan.header.replace(b" 10\n", b" 40\n", 1)
        error = self.assertRaises(NotDecryptable, self.decrypt, text + plan.nonce, [Passphrase("pw")])
        self.assertIn("work factor", str(error))


class KeyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.files = Files(self)

    def test_stringsRoundTrip(self) -> None:
        identity = generateIdentity()
        self.assertTrue(str(identity).startswith("AGE-SECRET-KEY-1"))
        self.assertTrue(str(identity.recipient()).startswith("age1"))
        self.assertEqual(Identity.parse(str(identity)).secretKey, identity.secretKey)
        self.assertEqual(Recipient.parse(str(identity.recipient())), identity.recipient())

    def test_badKeys(self) -> None:
        recipient = str(generateIdentity().recipient())
        for text in ("age1", recipient[:-1] + ("q" if recipient[-1] != "q" else "p"), "ssh-ed25519 AAAA", "hello"):
            self.assertRaises(BadKey, Recipient.parse, text)
        self.assertRaises(BadKey, Identity.parse, recipient)
        self.assertRaises(BadKey, newPlan, [])
        self.assertRaises(BadKey, newPlan, [Passphrase("a", CHEAP), generateIdentity().recipient()])
        self.assertRaises(BadKey, Passphrase, "")

    def test_identityFile(self) -> None:
        """
        Written readable only by the owner, in age-keygen's layout, never
        over an existing file, and read back.
        """
        identity = generateIdentity()
        path = self.files.path("sub/key.txt")
        writeIdentity(path, identity)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            self.assertIn("# public key: {}".format(identity.recipient()), f.read())
        self.assertEqual([i.secretKey for i in readIdentities(path)], [identity.secretKey])
        self.assertRaises(FileExistsError, writeIdentity, path, generateIdentity())

    def test_recipientsFile(self) -> None:
        one, two = generateIdentity().recipient(), generateIdentity().recipient()
        path = self.files.write("r.txt", "# team\n{}\n\n{}\n".format(one, two).encode())
        self.assertEqual(readRecipients(path), [one, two])
        self.assertRaises(BadKey, readRecipients, self.files.write("empty.txt", b"# nobody\n"))
        self.assertRaises(BadKey, readIdentities, self.files.write("notkey.txt", b"age1xyz\n"))


class ExportTests(SynchronousTestCase):
    def test_publicNames(self) -> None:
        """
        Everything C{ftx.client.e2e} lists in C{__all__} is there.
        """
        import ftx.client.e2e as e2e

        for name in e2e.__all__:
            self.assertTrue(hasattr(e2e, name), name)


class PlainNameTests(SynchronousTestCase):
    def test_ageSuffixDropped(self) -> None:
        """
        C{--decrypt} saves C{a.txt.age} as C{a.txt}, but never turns a
        server's C{..age} into C{.}, nor C{.age} into nothing.
        """
        from ftx.cli.encrypted import _plainSegment

        self.assertEqual(_plainSegment(b"a.txt.age"), b"a.txt")
        self.assertEqual(_plainSegment(b"..age"), b"..age")
        self.assertEqual(_plainSegment(b".age"), b".age")
        self.assertEqual(_plainSegment(b"notes"), b"notes")
