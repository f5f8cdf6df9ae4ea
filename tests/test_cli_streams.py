"""
Issue 13 items 2, 6, 7 and 13 from the command line: running C{sget} again
continues a partial download (and C{-c} a shorter local copy), C{-o -}
writes to stdout, a shell reading a script exits with its last failure,
downloads keep the server's modification time, and C{df} says what its
"used" is.
"""

from __future__ import annotations

import json
import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from tests.clitools import FTX, SharedServer, ftx, temporaryFolder
from tests.support import runFtx

BIG = bytes(range(256)) * 8192  # 2 MiB
MTIME = 1262304000  # 2010-01-01


def _prepare(server) -> None:
    for name in ("big.bin", "photos/p.jpg"):
        os.utime(str(server.rootPath / name), (MTIME, MTIME))


SERVER = SharedServer(files={"big.bin": BIG, "small.txt": b"small\n", "photos/p.jpg": b"p" * 100}, prepare=_prepare)


@SERVER.serves
class ContinueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)
        self.partial = self.local / ".big.bin.ftx-partial"

    def test_sgetAgainContinuesThePartialFile(self) -> None:
        """
        What a killed C{sget} leaves (the first part, under the partial
        name) is continued by running the same command, not thrown away.
        """
        self.partial.write_bytes(BIG[: 1 << 20])
        result = ftx(self.server, "sget", "big.bin", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("continued big.bin -> big.bin", result.err)
        self.assertEqual((self.local / "big.bin").read_bytes(), BIG)
        self.assertFalse(self.partial.exists())
        self.assertIn("cget big.bin 1048576", self.server.output())

    def test_aPartialFileDoesNotReplaceAFileInTheWay(self) -> None:
        (self.local / "big.bin").write_bytes(b"my own file")
        self.partial.write_bytes(BIG[:1000])
        result = ftx(self.server, "sget", "big.bin", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_CONFLICT, result.err)
        self.assertEqual((self.local / "big.bin").read_bytes(), b"my own file")
        result = ftx(self.server, "sget", "big.bin", "--overwrite", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("continued big.bin", result.err)
        self.assertEqual((self.local / "big.bin").read_bytes(), BIG)

    def test_partialThatNoLongerMatchesStartsOver(self) -> None:
        self.partial.write_bytes(b"something else entirely")
        result = ftx(self.server, "sget", "big.bin", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("no longer matches the server's file; starting over", result.err)
        self.assertEqual((self.local / "big.bin").read_bytes(), BIG)

    def test_continueFlagContinuesAShorterLocalCopy(self) -> None:
        (self.local / "big.bin").write_bytes(BIG[:1000])
        result = ftx(self.server, "sget", "-c", "big.bin", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("continued big.bin", result.err)
        self.assertEqual((self.local / "big.bin").read_bytes(), BIG)
        result = ftx(self.server, "sget", "--continue", "big.bin", cwd=self.local)
        self.assertIn("was already complete", result.err)

    def test_downloadsKeepTheServersMtime(self) -> None:
        for args in (["sget", "big.bin"], ["mget", "photos/*"]):
            result = ftx(self.server, *args, cwd=self.local)
            self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(int(os.stat(str(self.local / "big.bin")).st_mtime), MTIME)
        self.assertEqual(int(os.stat(str(self.local / "photos" / "p.jpg")).st_mtime), MTIME)
        (self.local / "big.bin").unlink()
        self.partial.write_bytes(BIG[:1000])
        result = ftx(self.server, "cget", "big.bin", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(int(os.stat(str(self.local / "big.bin")).st_mtime), MTIME)
        listed = json.loads(ftx(self.server, "list", "--json", "big.bin", cwd=self.local).out)
        self.assertEqual(listed[0]["mtime"], MTIME)

    def test_stdout(self) -> None:
        result = ftx(self.server, "sget", "big.bin", "-o", "-", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(result.stdout, BIG)
        self.assertIn("received big.bin -> stdout", result.err)
        self.assertEqual(list(self.local.iterdir()), [])

    def test_stdoutClosedEarlyEndsQuietly(self) -> None:
        """
        C{ftx sget big.bin -o - | head -c 10}: the reader goes away, and so
        does ftx, at once and without a word, with the status C{ls | head}
        gives.
        """
        process = subprocess.Popen(
            [FTX, "--server", self.server.address, "sget", "big.bin", "-o", "-"], cwd=str(self.local),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.assertEqual(process.stdout.read(10), BIG[:10])
        process.stdout.close()
        err = process.stderr.read()
        process.stderr.close()
        self.assertEqual(process.wait(30), 141)
        self.assertEqual(err, b"")

    def test_shellScriptExitsWithItsLastFailure(self) -> None:
        run = lambda script: runFtx(["--server", self.server.address, "shell"], cwd=str(self.local), input=script)
        self.assertEqual(run(b"sget nosuch\n").returncode, cli.EXIT_NOT_FOUND)
        self.assertEqual(run(b"sget nosuch\nlist\n").returncode, cli.EXIT_NOT_FOUND)
        self.assertEqual(run(b"list\n").returncode, 0)
        self.assertEqual(run(b"sget --bogus\n").returncode, cli.EXIT_USAGE)

    def test_dfSaysWhatUsedIs(self) -> None:
        result = ftx(self.server, "df", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("(total - free blocks, as df(1) counts it)", result.out)
        figures = json.loads(ftx(self.server, "df", "--json", cwd=self.local).out)
        st = os.statvfs(str(self.server.rootPath))
        # Other processes write to the same disk meanwhile.
        expected = (st.f_blocks - st.f_bfree) * st.f_frsize
        self.assertLess(abs(figures["used"] - expected), 256 << 20, (figures, expected))
