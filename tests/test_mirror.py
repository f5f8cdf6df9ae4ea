"""
C{ftx mirror REMOTE_FOLDER [LOCAL_FOLDER]}: the real command against a
real server. Each test mirrors a server folder of its own name, so that
the tests share one server in any order.
"""

from __future__ import annotations

import json
import os
import shutil

import pexpect
from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status
from tests.clitools import SharedServer, ftx, spawn, temporaryFolder
from tests.mirrortools import PAST, TREE, LogMark, killMirrorMidway, mtimes, partialSize, treeOf, writeTree
from tests.support import writeRandom

SERVER = SharedServer()

#: The commands that move file bodies or read digests on the server.
TRANSFERS = ("sget", "cget", "mget", "hash")


@SERVER.serves
class MirrorDownloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.name = self._testMethodName
        self.remote = self.server.rootPath / self.name
        self.addCleanup(shutil.rmtree, str(self.remote), True)
        writeTree(self.remote, TREE)
        self.top = temporaryFolder(self)
        self.local = self.top / "copy"

    def mirror(self, *args: str, code: int = 0):
        # --verify's digest cache goes to this test's folder.
        cache = {"XDG_CACHE_HOME": str(self.top / "cache")}
        result = ftx(self.server, "mirror", self.name, "copy", *args, cwd=self.top, env=cache)
        self.assertEqual(result.returncode, code, result.out + result.err)
        return result

    def test_firstRunThenNothingToDo(self) -> None:
        """
        The first run brings every file with the server's modification
        time; a second run reads the listing only: no transfer, no digest.
        """
        first = self.mirror()
        self.assertEqual(treeOf(self.local), TREE)
        self.assertEqual(set(mtimes(self.local).values()), {PAST})
        self.assertIn("mirror: 5 transferred", first.out)
        self.assertIn("received docs/deep/notes.txt", first.out)
        mark = LogMark(self.server)
        again = self.mirror()
        self.assertEqual(mark.commands(*TRANSFERS), [])
        self.assertIn("mirror: 0 transferred (0 B), 0 deleted, 5 unchanged", again.out)

    def test_changedSizeOrTimeOnly(self) -> None:
        """
        A file of another size and a file with only another modification
        time are fetched again; nothing else is.
        """
        self.mirror()
        (self.remote / "a.txt").write_bytes(b"longer now" * 20)
        os.utime(self.remote / "docs/readme.md", (PAST + 60, PAST + 60))
        untouched = ("b.bin", "docs/deep/notes.txt", "empty.dat")
        inodes = {name: os.stat(self.local / name).st_ino for name in untouched}
        mark = LogMark(self.server)
        result = self.mirror("--json")
        report = json.loads(result.out)
        self.assertEqual(sorted(a["name"] for a in report["actions"]), ["a.txt", "docs/readme.md"])
        self.assertEqual((report["transferred"], report["unchanged"], report["deleted"]), (2, 3, 0))
        # Received files replace the old ones (a new inode); the rest stay.
        self.assertEqual({name: os.stat(self.local / name).st_ino for name in untouched}, inodes)
        self.assertEqual(mark.commands("hash"), [])
        self.assertEqual((self.local / "a.txt").read_bytes(), b"longer now" * 20)
        self.assertEqual(int(os.stat(self.local / "docs/readme.md").st_mtime), PAST + 60)

    def test_verifyComparesDigests(self) -> None:
        """
        A local change that keeps size and time fools the quick check, as
        it fools rsync's; --verify finds it.
        """
        self.mirror()
        (self.local / "a.txt").write_bytes(b"A" * 100)
        os.utime(self.local / "a.txt", (PAST, PAST))
        self.assertIn("0 transferred", self.mirror().out)
        result = self.mirror("--verify")
        self.assertIn("received a.txt", result.out)
        self.assertIn("1 transferred (100 B), 0 deleted, 4 unchanged", result.out)
        self.assertEqual((self.local / "a.txt").read_bytes(), TREE["a.txt"])
        self.assertTrue((self.top / "cache" / "ftx" / "digests.json").exists())

    def test_deleteOnlyWithTheFlag(self) -> None:
        self.mirror()
        writeTree(self.local, {"extra.txt": b"mine", "old/gone.txt": b"mine too", "docs/more.txt": b"x"})
        kept = self.mirror()
        self.assertIn("0 deleted", kept.out)
        self.assertEqual(len(treeOf(self.local)), 8)
        result = self.mirror("--delete")
        self.assertEqual(treeOf(self.local), TREE)
        self.assertFalse((self.local / "old").exists())
        for line in ("deleted extra.txt", "deleted old/gone.txt", "deleted docs/more.txt", "removed folder old"):
            self.assertIn(line, result.out)

    def test_fileWhereTheServerHasAFolder(self) -> None:
        """
        With --delete, a local file in the way of a folder the server has
        goes first, and one run brings the folder.
        """
        self.mirror()
        shutil.rmtree(str(self.local / "docs"))
        (self.local / "docs").write_bytes(b"a file in the way")
        result = self.mirror("--delete")
        self.assertIn("deleted docs", result.out)
        self.assertEqual(treeOf(self.local), TREE)

    def test_deleteNeverLeavesTheTarget(self) -> None:
        """
        Links in the target are removed themselves: nothing they point to
        is touched, and a linked folder is not entered.
        """
        self.mirror()
        outside = self.top / "outside"
        writeTree(outside, {"precious.txt": b"keep me", "sub/also.txt": b"and me"})
        os.symlink(str(outside), str(self.local / "linked-folder"))
        os.symlink(str(outside / "precious.txt"), str(self.local / "linked-file"))
        result = self.mirror("--delete")
        self.assertIn("deleted linked-folder", result.out)
        self.assertIn("deleted linked-file", result.out)
        self.assertFalse(os.path.lexists(self.local / "linked-folder"))
        self.assertEqual(treeOf(outside), {"precious.txt": b"keep me", "sub/also.txt": b"and me"})
        self.assertEqual(treeOf(self.local), TREE)

    def test_dryRunChangesNothing(self) -> None:
        self.mirror()
        (self.remote / "a.txt").write_bytes(b"changed")
        writeTree(self.local, {"extra.txt": b"mine"})
        before = (treeOf(self.local), mtimes(self.local))
        mark = LogMark(self.server)
        result = self.mirror("--delete", "--dry-run")
        self.assertEqual((treeOf(self.local), mtimes(self.local)), before)
        self.assertEqual(mark.commands(*TRANSFERS), [])
        self.assertIn("would get a.txt (7 B)", result.out)
        self.assertIn("would delete extra.txt", result.out)
        self.assertIn("(dry run: nothing was changed)", result.out)

    def test_excludeInclude(self) -> None:
        """
        The first mask that matches decides: docs/deep/notes.txt is
        included before '*.txt' excludes it; excluded local files are not
        deleted.
        """
        writeTree(self.local, {"local.txt": b"excluded, so kept"})
        result = self.mirror("--include", "docs/deep/*", "--exclude", "*.txt", "--exclude", "*.bin", "--delete")
        self.assertEqual(set(treeOf(self.local)),
                         {"docs/readme.md", "docs/deep/notes.txt", "empty.dat", "local.txt"})
        self.assertIn("2 excluded", result.out)
        # Without '*.txt' excluded, local.txt goes; docs/ is left as it is.
        (self.local / "docs/readme.md").write_bytes(b"edited here")
        result = self.mirror("--exclude", "docs/", "--delete")
        self.assertIn("deleted local.txt", result.out)
        self.assertIn("2 transferred (10.1 KiB), 1 deleted, 1 unchanged, 2 excluded", result.out)
        self.assertEqual((self.local / "docs/readme.md").read_bytes(), b"edited here")

    def test_interruptedMirrorContinues(self) -> None:
        """
        Killed in the middle of a big file, the mirror run again continues
        that file from its partial copy and fetches only what is missing.
        """
        digest = writeRandom(str(self.remote / "m-big.bin"), 96 << 20, seed=5)
        partial = self.local / ".m-big.bin.ftx-partial"
        killMirrorMidway(self.server, ["mirror", self.name, "copy"], self.top, lambda: partialSize(partial),
                         lambda: shutil.rmtree(str(self.local), True))
        self.assertFalse((self.local / "m-big.bin").exists())
        result = self.mirror()
        self.assertIn("continued m-big.bin", result.out)
        self.assertFalse(partial.exists())
        from tests.support import sha1

        self.assertEqual(sha1(str(self.local / "m-big.bin")), digest)
        self.assertEqual(treeOf(self.local)["docs/readme.md"], TREE["docs/readme.md"])

    def test_missingFolderChangesNothing(self) -> None:
        """
        A folder that is not on the server (or is empty: the listing cannot
        tell) is an error, not a reason to empty the local copy.
        """
        self.mirror()
        result = ftx(self.server, "mirror", self.name + "-nothing", "copy", "--delete", cwd=self.top)
        self.assertEqual(result.returncode, status.EXIT_NOT_FOUND, result.err)
        self.assertEqual(treeOf(self.local), TREE)

    def test_folderNameWithWildcards(self) -> None:
        """
        A folder named 'x[1]*' is that folder, not a mask.
        """
        odd = self.server.rootPath / (self.name + "[1]*")
        self.addCleanup(shutil.rmtree, str(odd), True)
        writeTree(odd, TREE)
        result = ftx(self.server, "mirror", self.name + "[1]*", "odd", cwd=self.top)
        self.assertEqual(result.returncode, 0, result.out + result.err)
        self.assertEqual(treeOf(self.top / "odd"), TREE)

    def test_onATerminal(self) -> None:
        """
        With bars drawn, the action lines and the summary still show.
        """
        child = spawn(["--server", self.server.address, "mirror", self.name, "copy"], self.top)
        child.expect("received docs/deep/notes.txt")
        child.expect("mirror: 5 transferred")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertEqual(treeOf(self.local), TREE)

    def test_appearsInHelpAndCompletion(self) -> None:
        result = ftx(self.server, "--help")
        self.assertIn("mirror", result.out)
        result = ftx(self.server, "--print-completion", "bash")
        self.assertIn("mirror", result.out)
