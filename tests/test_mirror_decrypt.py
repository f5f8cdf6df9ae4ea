"""
C{ftx mirror REMOTE LOCAL --decrypt -i IDENTITY} as a user runs it: the
real C{ftx} command against a real server whose folder holds age files
(made with the recipient of an identity) and a plain file.
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli.mirrordecrypt import HEADER_MAX, HEADER_MIN, consistentSizes
from ftx.client.e2e import encryptFile, generateIdentity, newPlan, writeIdentity
from tests.clitools import SharedServer, ftx, temporaryFolder
from tests.mirrortools import PAST, LogMark, treeOf

SERVER = SharedServer()

#: The plaintexts, by the local name they are mirrored to.
PLAIN = {
    "one.txt": b"one " * 10,
    "docs/two.bin": os.urandom(70_000),
    "empty.dat": b"",
}
#: A file that is not encrypted: mirrored as it is.
AS_IS = {"readme.md": b"# not encrypted\n"}


class ConsistentSizesTests(SynchronousTestCase):
    def test_bounds(self) -> None:
        """
        The ciphertext's size fits the plaintext's when what is left for the
        header is between the bounds; one chunk's tag is counted even for
        an empty file, and one per 64 KiB chunk otherwise.
        """
        for plain, chunks in ((0, 1), (10, 1), (65536, 1), (65537, 2)):
            overhead = 16 + 16 * chunks
            self.assertTrue(consistentSizes(plain + overhead + HEADER_MIN, plain))
            self.assertTrue(consistentSizes(plain + overhead + HEADER_MAX, plain))
            self.assertFalse(consistentSizes(plain + overhead + HEADER_MIN - 1, plain))
            self.assertFalse(consistentSizes(plain + overhead + HEADER_MAX + 1, plain))


@SERVER.serves
class MirrorDecryptTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.name = self._testMethodName
        self.remote = self.server.rootPath / self.name
        self.addCleanup(shutil.rmtree, str(self.remote), True)
        self.top = temporaryFolder(self)
        self.local = self.top / "copy"
        self.env = {"XDG_CONFIG_HOME": str(self.top / "config"), "XDG_CACHE_HOME": str(self.top / "cache")}
        identity = generateIdentity()
        writeIdentity(str(self.top / "key.txt"), identity)
        self.recipient = identity.recipient()
        writeIdentity(str(self.top / "other.txt"), generateIdentity())
        for name, data in PLAIN.items():
            self.putEncrypted(name, data)
        for name, data in AS_IS.items():
            path = self.remote / name
            path.write_bytes(data)
            os.utime(path, (PAST, PAST))

    def putEncrypted(self, name: str, data: bytes, mtime: int = PAST) -> None:
        """
        Store C{name}.age on the server, encrypted to the test's identity.
        """
        source = self.top / "plain.tmp"
        source.write_bytes(data)
        target = self.remote / (name + ".age")
        target.parent.mkdir(parents=True, exist_ok=True)
        encryptFile(str(source), str(target), newPlan([self.recipient]))
        os.utime(target, (mtime, mtime))

    def mirror(self, *args: str, code: int = 0, key: str = "key.txt"):
        result = ftx(self.server, "mirror", self.name, "copy", "--decrypt", "-i", key, *args,
                     cwd=self.top, env=self.env)
        self.assertEqual(result.returncode, code, result.out + result.err)
        return result

    def test_decryptsThenNothingToDo(self) -> None:
        """
        The first run writes the plaintexts under the names without C{.age}
        and the plain file as it is; a second run transfers nothing.
        """
        first = self.mirror()
        self.assertEqual(treeOf(self.local), dict(PLAIN, **AS_IS))
        self.assertEqual({int(os.stat(self.local / n).st_mtime) for n in PLAIN}, {PAST})
        self.assertIn("mirror: 4 transferred", first.out)
        mark = LogMark(self.server)
        again = self.mirror()
        self.assertEqual(mark.commands("sget", "cget", "mget", "hash"), [])
        self.assertIn("0 transferred (0 B), 0 deleted, 4 unchanged", again.out)

    def test_changedAgeFileFetchedAgain(self) -> None:
        """
        An C{.age} file stored again (new time) is fetched and decrypted
        again; the others are not.
        """
        self.mirror()
        self.putEncrypted("one.txt", b"changed", mtime=PAST + 100)
        again = self.mirror()
        self.assertIn("mirror: 1 transferred", again.out)
        self.assertEqual((self.local / "one.txt").read_bytes(), b"changed")
        self.assertEqual(int(os.stat(self.local / "one.txt").st_mtime), PAST + 100)

    def test_wrongIdentity(self) -> None:
        """
        Exit 5; nothing under the final names of the encrypted files.
        """
        result = self.mirror(key="other.txt", code=5)
        self.assertEqual(result.returncode, 5)
        tree = treeOf(self.local) if self.local.exists() else {}
        for name in PLAIN:
            self.assertNotIn(name, tree)

    def test_deleteKeepsDecryptedCounterparts(self) -> None:
        """
        With C{--delete}, C{NAME} here is the counterpart of C{NAME.age}
        there: kept; a file the server does not have is deleted.
        """
        self.mirror()
        (self.local / "stray.txt").write_bytes(b"x")
        result = self.mirror("--delete")
        self.assertEqual(treeOf(self.local), dict(PLAIN, **AS_IS))
        self.assertIn("1 deleted", result.out)

    def test_reverseIsAUsageError(self) -> None:
        self.local.mkdir()
        result = ftx(self.server, "mirror", "--reverse", "copy", self.name, "--decrypt", "-i", "key.txt",
                     cwd=self.top, env=self.env)
        self.assertEqual(result.returncode, 2, result.out + result.err)
        self.assertIn("--reverse", result.err)

    def test_tamperedChunk(self) -> None:
        """
        Exit 6 for a tampered C{.age} file; nothing under its final name,
        the other files are mirrored.
        """
        stored = self.remote / "docs" / "two.bin.age"
        data = bytearray(stored.read_bytes())
        data[-100] ^= 1
        stored.write_bytes(bytes(data))
        os.utime(stored, (PAST, PAST))
        self.mirror(code=6)
        tree = treeOf(self.local)
        self.assertNotIn("docs/two.bin", tree)
        self.assertEqual(tree["one.txt"], PLAIN["one.txt"])

    def test_verifyFetchesDecryptedFilesAgain(self) -> None:
        """
        C{--verify} cannot hash a plaintext against a ciphertext's digest:
        the C{.age} files are fetched again, the plain file is compared by
        digest and left alone.
        """
        self.mirror()
        again = self.mirror("--verify")
        self.assertIn("mirror: 3 transferred", again.out)
        self.assertIn("1 unchanged", again.out)
        self.assertEqual(treeOf(self.local), dict(PLAIN, **AS_IS))
