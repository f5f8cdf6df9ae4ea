"""
Interrupted downloads (kill -9, Ctrl-C) leave a partial file that ``cget``
and a re-run ``mget`` continue; progress bars appear only on a terminal.
"""

from __future__ import annotations

import os
import signal

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from tests.clitools import SharedServer, ftx, interruptMidway, spawn, temporaryFolder
from tests.support import sha1, writeRandom

HUGE = 200 << 20


def _writeHugeFile(server) -> None:
    server.digest = writeRandom(str(server.rootPath / "b-huge.bin"), HUGE, seed=3)


SERVER = SharedServer(files={"a-small.txt": b"a" * 1000, "c-small.txt": b"c" * 2000}, prepare=_writeHugeFile)


@SERVER.serves
class ResumeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)
        self.partial = self.local / ".b-huge.bin.ftx-partial"

    def test_killedSgetThenCget(self) -> None:
        process, _ = interruptMidway(self.server, ["sget", "b-huge.bin"], self.local, self.partial)
        self.assertEqual(process.returncode, -signal.SIGKILL)
        self.assertTrue(0 < self.partial.stat().st_size < HUGE, self.partial.stat().st_size)
        self.assertFalse((self.local / "b-huge.bin").exists())
        result = ftx(self.server, "cget", "b-huge.bin", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("continued b-huge.bin", result.err)
        self.assertEqual(sha1(str(self.local / "b-huge.bin")), self.server.digest)
        self.assertFalse(self.partial.exists())

    def test_interruptedMgetRerun(self) -> None:
        interruptMidway(self.server, ["mget", "*"], self.local, self.partial)
        self.assertTrue((self.local / "a-small.txt").exists())
        self.assertFalse((self.local / "c-small.txt").exists())
        result = ftx(self.server, "mget", "*", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("a-small.txt is unchanged (size and time match the server's); skipped", result.err)
        self.assertIn("continued b-huge.bin", result.err)
        self.assertIn("received c-small.txt", result.err)
        self.assertIn("mget: 2 fetched, 1 skipped, 0 failed", result.err)
        self.assertEqual(sha1(str(self.local / "b-huge.bin")), self.server.digest)
        self.assertEqual((self.local / "c-small.txt").read_bytes(), b"c" * 2000)
        self.assertFalse(self.partial.exists())

    def test_ctrlCExitsWithPartialKept(self) -> None:
        process, err = interruptMidway(self.server, ["sget", "b-huge.bin"], self.local, self.partial, sig=signal.SIGINT)
        self.assertEqual(process.returncode, cli.EXIT_INTERRUPTED)
        self.assertEqual(
            err, "ftx: interrupted; the partial download is kept as .b-huge.bin.ftx-partial "
            "('ftx sget b-huge.bin' continues it)\n"
        )
        self.assertGreater(self.partial.stat().st_size, 0)

    def test_ctrlCInMgetNamesThePartialFile(self) -> None:
        process, err = interruptMidway(self.server, ["mget", "*"], self.local, self.partial, sig=signal.SIGINT)
        self.assertEqual(process.returncode, cli.EXIT_INTERRUPTED)
        self.assertIn(
            "ftx: interrupted; the partial download is kept as .b-huge.bin.ftx-partial "
            "('ftx sget b-huge.bin' continues it)\n", err
        )
        result = ftx(self.server, "mget", "*", cwd=self.local)
        self.assertIn("continued b-huge.bin", result.err)

    def test_progressOnTerminal(self) -> None:
        import pexpect

        child = spawn(["--server", self.server.address, "sget", "b-huge.bin"], cwd=self.local)
        child.expect(pexpect.EOF)
        child.close()
        output = child.before.decode("utf-8", "replace")
        self.assertEqual(child.exitstatus, 0, output)
        for mark in ("%", "MiB", "\x1b[", "received b-huge.bin"):
            self.assertIn(mark, output)

    def test_batchProgressOnTerminal(self) -> None:
        import pexpect

        child = spawn(["--server", self.server.address, "mget", "*-small.txt"], cwd=self.local)
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertIn("mget (2 files)", child.before.decode("utf-8", "replace"))

    def test_noProgressWhenQuiet(self) -> None:
        import pexpect

        child = spawn(["--server", self.server.address, "--quiet", "sget", "a-small.txt"], cwd=self.local)
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertEqual(child.before, b"")
        self.assertTrue((self.local / "a-small.txt").exists())

    def test_noProgressInAPipe(self) -> None:
        result = ftx(self.server, "sget", "b-huge.bin", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        for mark in ("%", "\r", "\x1b"):
            self.assertNotIn(mark, result.err)
        self.assertTrue(result.err.startswith("received b-huge.bin"), result.err)
        self.assertEqual(os.path.getsize(self.local / "b-huge.bin"), HUGE)
