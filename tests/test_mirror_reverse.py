"""
C{ftx mirror --reverse LOCAL_FOLDER [REMOTE_FOLDER]}: a local folder sent
to the server by the real command. Each test sends to a server folder of
its own name, so that the tests share one server in any order.
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SynchronousTestCase

from tests.clitools import SharedServer, ftx, temporaryFolder
from tests.mirrortools import PAST, TREE, LogMark, killMirrorMidway, mtimes, partialSize, treeOf, writeTree
from tests.support import sha1, writeRandom

SERVER = SharedServer()


@SERVER.serves
class MirrorUploadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.name = self._testMethodName
        self.remote = self.server.rootPath / self.name
        self.addCleanup(shutil.rmtree, str(self.remote), True)
        self.top = temporaryFolder(self)
        self.local = self.top / "source"
        writeTree(self.local, TREE)

    def mirror(self, *args: str, code: int = 0):
        result = ftx(self.server, "mirror", "--reverse", "source", self.name, *args, cwd=self.top)
        self.assertEqual(result.returncode, code, result.out + result.err)
        return result

    def test_firstRunThenNothingToDo(self) -> None:
        """
        The server keeps each file's local modification time, so a second
        run sends nothing and reads no digest.
        """
        first = self.mirror()
        self.assertEqual(treeOf(self.remote), TREE)
        self.assertEqual(set(mtimes(self.remote).values()), {PAST})
        self.assertIn("sent docs/deep/notes.txt", first.out)
        self.assertIn("mirror: 5 transferred", first.out)
        mark = LogMark(self.server)
        again = self.mirror()
        self.assertEqual(mark.commands("put", "hash", "partial"), [])
        self.assertIn("mirror: 0 transferred (0 B), 0 deleted, 5 unchanged", again.out)

    def test_moreFilesThanQueuedAtOnce(self) -> None:
        """
        The puts are queued on the connection a few open files at a time
        (L{ftx.cli.mirrorsend.QUEUED}); more files than that all arrive,
        each with its local time, and a second run has nothing to send.
        """
        from ftx.cli.mirrorsend import QUEUED

        many = {"many/f{:02d}.txt".format(i): b"x" * i for i in range(QUEUED * 2 + 3)}
        writeTree(self.local, many)
        first = self.mirror("--json")
        self.assertIn('"transferred": {}'.format(len(many) + len(TREE)), first.out)
        self.assertEqual(treeOf(self.remote), dict(TREE, **many))
        self.assertIn('"transferred": 0', self.mirror("--json").out)

    def test_changedSizeOrTimeOnly(self) -> None:
        """
        A file of another size and one with only another modification time
        are sent again, and nothing else.
        """
        self.mirror()
        (self.local / "docs/readme.md").write_bytes(b"# a longer readme\n")
        os.utime(self.local / "a.txt", (PAST + 60, PAST + 60))
        mark = LogMark(self.server)
        result = self.mirror()
        self.assertEqual(len(mark.commands("put")), 2)
        self.assertIn("sent docs/readme.md (18 B)", result.out)
        self.assertIn("sent a.txt (100 B)", result.out)
        self.assertEqual((self.remote / "docs/readme.md").read_bytes(), b"# a longer readme\n")
        self.assertEqual(int(os.stat(self.remote / "a.txt").st_mtime), PAST + 60)

    def test_verifyComparesDigests(self) -> None:
        """
        A local change that keeps size and time is found by --verify only.
        """
        self.mirror()
        (self.local / "a.txt").write_bytes(b"Z" * 100)
        os.utime(self.local / "a.txt", (PAST, PAST))
        self.assertIn("0 transferred", self.mirror().out)
        result = ftx(self.server, "mirror", "-R", "source", self.name, "--verify", cwd=self.top,
                     env={"XDG_CACHE_HOME": str(self.top / "cache")})
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("1 transferred (100 B), 0 deleted, 4 unchanged", result.out)
        self.assertEqual((self.remote / "a.txt").read_bytes(), b"Z" * 100)

    def test_deleteOnlyWithTheFlag(self) -> None:
        """
        Without --delete the server keeps what the local folder no longer
        has; with it, a file goes by 'delete' and a folder none of whose
        files is kept by one 'rmtree'.
        """
        self.mirror()
        os.unlink(self.local / "a.txt")
        shutil.rmtree(str(self.local / "docs/deep"))
        self.assertIn("0 deleted", self.mirror().out)
        self.assertEqual(treeOf(self.remote), TREE)
        mark = LogMark(self.server)
        result = self.mirror("--delete")
        self.assertIn("deleted a.txt", result.out)
        self.assertIn("removed folder docs/deep", result.out)
        self.assertEqual(len(mark.commands("rmtree")), 1)
        self.assertEqual(set(treeOf(self.remote)), {"b.bin", "docs/readme.md", "empty.dat"})
        self.assertFalse((self.remote / "docs/deep").exists())

    def test_dryRunChangesNothing(self) -> None:
        self.mirror()
        os.unlink(self.local / "a.txt")
        (self.local / "b.bin").write_bytes(b"changed")
        mark = LogMark(self.server)
        result = self.mirror("--delete", "-n")
        self.assertEqual(treeOf(self.remote), TREE)
        self.assertEqual(mark.commands("put", "delete", "rmtree"), [])
        self.assertIn("would put b.bin (7 B)", result.out)
        self.assertIn("would delete a.txt", result.out)

    def test_excludeAndLinks(self) -> None:
        """
        Excluded files are not sent; a link is never followed, its target
        never sent.
        """
        outside = self.top / "outside"
        writeTree(outside, {"secret.txt": b"not for the server"})
        os.symlink(str(outside), str(self.local / "linked"))
        os.symlink(str(outside / "secret.txt"), str(self.local / "secret-link"))
        result = self.mirror("--exclude", "*.bin", "--exclude", "deep/")
        self.assertEqual(set(treeOf(self.remote)), {"a.txt", "docs/readme.md", "empty.dat"})
        self.assertIn("2 excluded, 2 links skipped", result.out)

    def test_interruptedMirrorContinues(self) -> None:
        """
        Killed in the middle of a big upload, the mirror run again resumes
        it from what the server kept.
        """
        digest = writeRandom(str(self.local / "m-big.bin"), 96 << 20, seed=7)
        partial = self.remote / ".m-big.bin.ftx-partial"
        killMirrorMidway(self.server, ["mirror", "-R", "source", self.name], self.top,
                         lambda: partialSize(partial), lambda: shutil.rmtree(str(self.remote), True))
        result = self.mirror()
        self.assertIn("continued m-big.bin", result.out)
        self.assertEqual(sha1(str(self.remote / "m-big.bin")), digest)
        self.assertEqual(treeOf(self.remote)["docs/readme.md"], TREE["docs/readme.md"])
