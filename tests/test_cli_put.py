"""
Uploads never overwrite silently (issue 13 item 3): identical content is
skipped without sending it, other content is refused without a terminal
(exit 7), asked about on one, or settled by --overwrite / --rename (the
server picks C{name (1).ext}) / --skip; and C{put -} sends standard input
(item 6).
"""

from __future__ import annotations

import os
import shutil

import pexpect
from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from tests.clitools import SharedServer, ftx, spawn, temporaryFolder
from tests.support import runFtx

SERVER = SharedServer()
ON_SERVER = b"the server's copy\n"
MINE = b"my other copy\n"


@SERVER.serves
class PutPolicyTests(SynchronousTestCase):
    """
    Each test uploads into a folder of its own under the shared root,
    which holds C{a.txt} with other content than the local one.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)
        self.base = self._testMethodName
        self.folder = self.server.rootPath / self.base
        self.folder.mkdir()
        self.addCleanup(shutil.rmtree, str(self.folder), True)
        (self.folder / "a.txt").write_bytes(ON_SERVER)
        (self.local / "a.txt").write_bytes(MINE)
        self.remote = self.base + "/a.txt"

    def put(self, *args):
        return ftx(self.server, "put", "a.txt", "--as", self.remote, *args, cwd=self.local)

    def serverNames(self):
        return sorted(p.name for p in self.folder.iterdir())

    def test_refusedWithoutTerminal(self) -> None:
        result = self.put()
        self.assertEqual(result.returncode, cli.EXIT_CONFLICT)
        self.assertEqual(
            result.err,
            "ftx: error: {} already exists on the server with other content; nothing was sent "
            "(use --overwrite, --rename or --skip)\n".format(self.remote),
        )
        self.assertEqual((self.folder / "a.txt").read_bytes(), ON_SERVER)
        self.assertEqual(self.serverNames(), ["a.txt"])

    def test_identicalIsSkippedWithoutSending(self) -> None:
        (self.local / "a.txt").write_bytes(ON_SERVER)
        # Another time than the server's copy: compared by digest.
        os.utime(str(self.local / "a.txt"), (1_000_000_000, 1_000_000_000))
        result = self.put()
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(result.err, "{} is already on the server and identical; skipped\n".format(self.remote))
        # The server refused the put before any body (409 exists) and
        # stored nothing: no upload of it is logged.
        log = self.server.output()
        self.assertIn("put refused: 409 {} already exists".format(self.remote), log)
        self.assertNotIn(" put {} ".format(self.remote), log)

    def test_rename(self) -> None:
        result = self.put("--rename")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("-> {}/a (1).txt".format(self.base), result.err)
        self.assertIn("(renamed: {} was taken)".format(self.remote), result.err)
        self.put("--rename")
        self.assertEqual(self.serverNames(), ["a (1).txt", "a (2).txt", "a.txt"])
        self.assertEqual((self.folder / "a (2).txt").read_bytes(), MINE)
        self.assertEqual((self.folder / "a.txt").read_bytes(), ON_SERVER)

    def test_skipAndOverwrite(self) -> None:
        result = self.put("--skip")
        self.assertEqual((result.returncode, result.err), (0, "kept the server's {}; skipped\n".format(self.remote)))
        self.assertEqual((self.folder / "a.txt").read_bytes(), ON_SERVER)
        result = self.put("--overwrite")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((self.folder / "a.txt").read_bytes(), MINE)

    def test_batchGoesOnAndExits7(self) -> None:
        (self.local / "b.txt").write_bytes(b"b")
        (self.local / "c.txt").write_bytes(b"c")
        tree = self.local / self.base
        tree.mkdir()
        for name in ("a.txt", "b.txt", "c.txt"):
            shutil.copy(str(self.local / name), str(tree / name))
        result = ftx(self.server, "put", self.base, cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_CONFLICT, result.err)
        self.assertIn("put: 2 sent, 0 failed, 1 refused", result.err)
        self.assertEqual(self.serverNames(), ["a.txt", "b.txt", "c.txt"])
        self.assertEqual((self.folder / "a.txt").read_bytes(), ON_SERVER)

    def test_askedOnTerminal(self) -> None:
        child = spawn(["--server", self.server.address, "put", "a.txt", "--as", self.remote], cwd=self.local)
        child.expect(r"a\.txt \(on the server\) already exists\. Overwrite it\?")
        child.sendline("r")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertEqual(self.serverNames(), ["a (1).txt", "a.txt"])

    def test_stdin(self) -> None:
        data = bytes(range(256)) * 1000
        result = runFtx(["--server", self.server.address, "put", "-", "--as", self.base + "/in.bin"],
                        cwd=str(self.local), input=data)
        err = result.stderr.decode()
        self.assertEqual(result.returncode, 0, err)
        self.assertIn("reading standard input into a temporary file", err)
        self.assertIn("sent standard input -> {}/in.bin".format(self.base), err)
        self.assertEqual((self.folder / "in.bin").read_bytes(), data)
        result = runFtx(["--server", self.server.address, "put", "-"], cwd=str(self.local), input=b"x")
        self.assertEqual(result.returncode, cli.EXIT_USAGE)
        self.assertIn("needs a name: ftx put - --as NAME", result.stderr.decode())
