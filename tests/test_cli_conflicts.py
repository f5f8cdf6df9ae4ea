"""
A download never overwrites a local file silently: --overwrite, --rename,
--skip, a question on a terminal, or a refusal that changes nothing.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from ftx.cli.conflicts import renamed
from tests.clitools import SharedServer, ftx, spawn, temporaryFolder

SERVER_COPY = b"the server's copy\n"
LOCAL = b"my local copy\n"

SERVER = SharedServer(files={"a.txt": SERVER_COPY, "b.txt": b"b\n", "c.txt": b"c\n"})


@SERVER.serves
class ConflictTests(SynchronousTestCase):
    """
    Each test starts from a local folder holding its own C{a.txt}, which
    differs from the server's.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)
        (self.local / "a.txt").write_bytes(LOCAL)

    def localNames(self):
        return sorted(p.name for p in self.local.iterdir())

    def test_refusedWithoutTerminal(self) -> None:
        result = ftx(self.server, "sget", "a.txt", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_CONFLICT)
        self.assertEqual(
            result.err,
            "ftx: error: a.txt already exists here; nothing was changed (use --overwrite, --rename or --skip)\n",
        )
        self.assertEqual((self.local / "a.txt").read_bytes(), LOCAL)
        self.assertEqual(self.localNames(), ["a.txt"])

    def test_mgetRefusesTheConflictAndGoesOn(self) -> None:
        """
        Without a terminal, the file in the way is refused, the rest is
        fetched, and the exit status at the end says there was a conflict
        (issue 13 item 7).
        """
        result = ftx(self.server, "mget", "*.txt", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_CONFLICT)
        self.assertEqual((self.local / "a.txt").read_bytes(), LOCAL)
        self.assertIn("b.txt", self.localNames())
        self.assertIn("1 refused", result.err)

    def test_overwrite(self) -> None:
        result = ftx(self.server, "sget", "a.txt", "--overwrite", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.local / "a.txt").read_bytes(), SERVER_COPY)

    def test_skip(self) -> None:
        result = ftx(self.server, "mget", "*.txt", "--skip", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.local / "a.txt").read_bytes(), LOCAL)
        self.assertEqual((self.local / "b.txt").read_bytes(), b"b\n")
        self.assertIn("kept the existing a.txt", result.err)

    def test_renameCounts(self) -> None:
        for expected in ("a (1).txt", "a (2).txt"):
            result = ftx(self.server, "sget", "a.txt", "--rename", cwd=self.local)
            self.assertEqual(result.returncode, 0, result.err)
            self.assertEqual((self.local / expected).read_bytes(), SERVER_COPY)
        self.assertEqual((self.local / "a.txt").read_bytes(), LOCAL)

    def test_identicalIsSkippedWithoutAsking(self) -> None:
        (self.local / "a.txt").write_bytes(SERVER_COPY)
        result = ftx(self.server, "sget", "a.txt", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("already here and identical", result.err)

    def askOnTerminal(self, answer: str, content: bytes, extra=None) -> None:
        """
        Run ``ftx sget a.txt`` on a terminal, answer its question with
        C{answer}, and check what C{a.txt} (and C{extra}, if given, a
        renamed download) holds afterwards.
        """
        import pexpect

        child = spawn(["--server", self.server.address, "sget", "a.txt"], cwd=self.local)
        child.expect(r"a\.txt already exists\. Overwrite it\? \[y\]es, \[n\]o \(skip\), \[r\]ename, \[a\]ll")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertEqual((self.local / "a.txt").read_bytes(), content)
        if extra:
            self.assertEqual((self.local / extra).read_bytes(), SERVER_COPY)

    def test_askedOnTerminalNo(self) -> None:
        self.askOnTerminal("n", LOCAL)

    def test_askedOnTerminalYes(self) -> None:
        self.askOnTerminal("y", SERVER_COPY)

    def test_askedOnTerminalRename(self) -> None:
        self.askOnTerminal("r", LOCAL, "a (1).txt")

    def test_allOverwritesTheRest(self) -> None:
        import pexpect

        (self.local / "b.txt").write_bytes(b"old b\n")
        (self.local / "c.txt").write_bytes(b"old c\n")
        child = spawn(["--server", self.server.address, "mget", "*.txt"], cwd=self.local)
        child.expect("Overwrite it")
        child.sendline("a")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertEqual((self.local / "a.txt").read_bytes(), SERVER_COPY)
        self.assertEqual((self.local / "c.txt").read_bytes(), b"c\n")


class RenamedNameTests(SynchronousTestCase):
    def test_renamedNames(self) -> None:
        folder = temporaryFolder(self)
        (folder / "x.tar.gz").write_bytes(b"")
        (folder / ".noext").write_bytes(b"")
        self.assertEqual(renamed(str(folder / "x.tar.gz")), str(folder / "x (1).tar.gz"))
        self.assertEqual(renamed(str(folder / ".noext")), str(folder / ".noext (1)"))
        (folder / ".x (1).tar.gz.ftx-partial").write_bytes(b"")
        self.assertEqual(renamed(str(folder / "x.tar.gz")), str(folder / "x (2).tar.gz"))
