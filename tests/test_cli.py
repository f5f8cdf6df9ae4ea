"""
The ``ftx`` command against a real ``twistd ftx`` server: every command,
its output, and one clear line plus a documented exit status per error.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from ftx.cli.parser import buildParser
from tests.clitools import FTX, SharedServer, connections, ftx, serverFor, temporaryFolder, waitFor
from tests.support import runFtx, sha1

FILES = {
    "a.txt": b"hello\n",
    "b.bin": bytes(range(256)) * 4096,  # 1 MiB
    "photos/x.jpg": b"jpeg" * 100,
    "photos/y.jpg": b"JPEG" * 50,
}

SERVER = SharedServer(files=FILES)


def _removeFromRoot(server, *names: str) -> None:
    for name in names:
        path = server.rootPath / name
        if path.is_dir():
            shutil.rmtree(str(path))
        elif path.exists():
            path.unlink()


def _freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@SERVER.serves
class CommandTests(SynchronousTestCase):
    """
    Every command against one server holding L{FILES}, each test from an
    empty local folder of its own.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)

    def test_listAligned(self) -> None:
        result = ftx(self.server, "list", cwd=self.local)
        self.assertEqual(result.returncode, 0)
        lines = result.out.splitlines()
        self.assertEqual([line.split()[-1] for line in lines], sorted(FILES))
        self.assertIn("1.0 MiB", lines[1])
        self.assertIn(" 1048576 ", lines[1])
        # Names start in the same column.
        self.assertEqual(len({line.index(line.split()[-1]) for line in lines}), 1)
        self.assertIn("4 files", result.err)

    def test_listMaskAndJson(self) -> None:
        result = ftx(self.server, "list", "photos/*.jpg", "--json", cwd=self.local)
        entries = json.loads(result.out)
        self.assertEqual([(e["name"], e["size"]) for e in entries], [("photos/x.jpg", 400), ("photos/y.jpg", 200)])
        self.assertTrue(all(isinstance(e["mtime"], int) for e in entries), entries)
        folder = json.loads(ftx(self.server, "list", "photos/", "--json", cwd=self.local).out)
        self.assertEqual([e["name"] for e in folder], ["photos/x.jpg", "photos/y.jpg"])

    def test_sgetAndOutput(self) -> None:
        local = self.local
        result = ftx(self.server, "sget", "photos/x.jpg", cwd=local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((local / "x.jpg").read_bytes(), FILES["photos/x.jpg"])
        self.assertIn("received photos/x.jpg", result.err)
        (local / "out").mkdir()
        self.assertEqual(ftx(self.server, "sget", "b.bin", "-o", "out/renamed.bin", cwd=local).returncode, 0)
        self.assertEqual((local / "out" / "renamed.bin").read_bytes(), FILES["b.bin"])
        self.assertEqual(ftx(self.server, "--dir", str(local / "out"), "sget", "a.txt").returncode, 0)
        self.assertEqual((local / "out" / "a.txt").read_bytes(), FILES["a.txt"])
        self.assertEqual([p for p in local.rglob("*") if p.name.endswith(".ftx-partial")], [])

    def test_checksumOption(self) -> None:
        """
        By default a transfer is checked by XXH3-128 (the server has it);
        --checksum sha1 keeps SHA-1, and the note says which one checked it.
        """
        import xxhash

        server, local = self.server, self.local
        self.addCleanup(_removeFromRoot, server, "up.bin")
        result = ftx(server, "sget", "b.bin", "-o", "fast.bin", cwd=local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("XXH3-128 " + xxhash.xxh3_128(FILES["b.bin"]).hexdigest()[:12], result.err)
        result = ftx(server, "--checksum", "sha1", "sget", "b.bin", "-o", "sha.bin", cwd=local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("SHA-1 " + hashlib.sha1(FILES["b.bin"]).hexdigest()[:12], result.err)
        (local / "up.bin").write_bytes(FILES["b.bin"][::-1])
        result = ftx(server, "put", "up.bin", "--checksum", "sha1", cwd=local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("SHA-1 " + hashlib.sha1(FILES["b.bin"][::-1]).hexdigest()[:12], result.err)
        self.assertEqual((server.rootPath / "up.bin").read_bytes(), FILES["b.bin"][::-1])
        self.assertEqual(ftx(server, "delete", "up.bin", cwd=local).returncode, 0)
        self.assertEqual(ftx(server, "--checksum", "md5", "list", cwd=local).returncode, 2)

    def test_mgetKeepsFolders(self) -> None:
        result = ftx(self.server, "--quiet", "mget", "photos/*", "a.txt", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(result.err, "")
        for name in ("photos/x.jpg", "photos/y.jpg", "a.txt"):
            self.assertEqual((self.local / name).read_bytes(), FILES[name])

    def test_hashLikeSha1sum(self) -> None:
        digest = hashlib.sha1(FILES["b.bin"]).hexdigest()
        self.assertEqual(ftx(self.server, "hash", "b.bin", cwd=self.local).out, "{}  b.bin\n".format(digest))
        prefix = hashlib.sha1(FILES["b.bin"][:1000]).hexdigest()
        self.assertEqual(ftx(self.server, "hash", "b.bin", "1000", cwd=self.local).out.split()[0], prefix)
        self.assertEqual(ftx(self.server, "hash", "b.bin:1000", cwd=self.local).out.split()[0], prefix)

    def test_putFilesFoldersAndGlobs(self) -> None:
        server, local = self.server, self.local
        self.addCleanup(_removeFromRoot, server, "one.txt", "tree", "log1.log", "log2.log", "renamed")
        (local / "one.txt").write_bytes(b"one")
        tree = local / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "top.txt").write_bytes(b"top")
        (tree / "sub" / "deep.txt").write_bytes(b"deep")
        (local / "log1.log").write_bytes(b"1")
        (local / "log2.log").write_bytes(b"22")
        before = connections(server)
        result = ftx(server, "put", "one.txt", "tree", "*.log", cwd=local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("put: 5 sent, 0 failed", result.err)
        self.assertTrue(waitFor(lambda: connections(server) == before + 1, 5, 0.05), server.output())
        root = server.rootPath
        self.assertEqual((root / "one.txt").read_bytes(), b"one")
        self.assertEqual((root / "tree" / "sub" / "deep.txt").read_bytes(), b"deep")
        self.assertEqual((root / "tree" / "top.txt").read_bytes(), b"top")
        self.assertEqual((root / "log2.log").read_bytes(), b"22")
        self.assertEqual(ftx(server, "put", "one.txt", "--as", "renamed/one.txt", cwd=local).returncode, 0)
        self.assertEqual((root / "renamed" / "one.txt").read_bytes(), b"one")
        self.assertEqual(sha1(str(root / "one.txt")), hashlib.sha1(b"one").hexdigest())

    def test_putMissingUploadsNothing(self) -> None:
        self.addCleanup(_removeFromRoot, self.server, "real.txt")
        (self.local / "real.txt").write_bytes(b"x")
        result = ftx(self.server, "put", "real.txt", "missing.txt", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_NOT_FOUND)
        self.assertEqual(result.err, "ftx: error: no such local file: missing.txt\n")
        self.assertFalse((self.server.rootPath / "real.txt").exists())

    def test_delete(self) -> None:
        root = self.server.rootPath
        self.addCleanup(_removeFromRoot, self.server, "gone.txt")
        (root / "gone.txt").write_bytes(b"bye")
        result = ftx(self.server, "delete", "gone.txt", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("deleted gone.txt", result.err)
        self.assertFalse((root / "gone.txt").exists())
        result = ftx(self.server, "delete", "gone.txt", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_NOT_FOUND)

    def test_df(self) -> None:
        text = ftx(self.server, "df", cwd=self.local).out.splitlines()
        self.assertEqual([line.split()[0] for line in text], ["total", "used", "free"])
        figures = json.loads(ftx(self.server, "df", "--json", cwd=self.local).out)
        self.assertGreaterEqual(figures["total"], figures["free"])
        self.assertGreater(figures["free"], 0)
        # As df(1): reserved blocks are neither used nor available.
        self.assertLessEqual(figures["used"], figures["total"] - figures["free"])

    def test_integrityMismatchLeavesLocalFile(self) -> None:
        (self.local / "b.bin").write_bytes(b"not the same start")
        result = ftx(self.server, "cget", "b.bin", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_INTEGRITY)
        self.assertIn("does not match", result.err)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertEqual((self.local / "b.bin").read_bytes(), b"not the same start")

    def test_cgetOfCompleteFile(self) -> None:
        (self.local / "a.txt").write_bytes(FILES["a.txt"])
        result = ftx(self.server, "cget", "a.txt", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("already complete", result.err)


@SERVER.serves
class OneLineErrorTests(SynchronousTestCase):
    """
    Each error is one line starting "ftx: error: ", with its own exit
    status and the words that say what went wrong.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)
        for name in ("a", "b"):
            (self.local / name).write_bytes(b"x")

    def assertOneLineError(self, args, status: int, words: str) -> None:
        result = ftx(self.server, *args, cwd=self.local)
        self.assertEqual(result.returncode, status, result.err)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertTrue(result.err.startswith("ftx: error: "), result.err)
        self.assertIn(words, result.err)

    def test_unknownHost(self) -> None:
        self.assertOneLineError(["--server", "no-such-host.invalid:1234", "list"], cli.EXIT_CONNECT, "unknown host")

    def test_connectionRefused(self) -> None:
        address = "127.0.0.1:{}".format(_freePort())
        self.assertOneLineError(["--server", address, "list"], cli.EXIT_CONNECT, "connection refused")

    def test_noSuchFile(self) -> None:
        self.assertOneLineError(["sget", "nothing.txt"], cli.EXIT_NOT_FOUND, "no such file")

    def test_outsideTheRoot(self) -> None:
        self.assertOneLineError(["sget", "../etc/passwd"], cli.EXIT_PERMISSION, "root")

    def test_hashLongerThanTheFile(self) -> None:
        self.assertOneLineError(["hash", "a.txt", "99"], cli.EXIT_USAGE, "fewer than")

    def test_unknownCommand(self) -> None:
        self.assertOneLineError(["frobnicate"], cli.EXIT_USAGE, "unknown command")

    def test_missingArgument(self) -> None:
        self.assertOneLineError(["sget"], cli.EXIT_USAGE, "required")

    def test_asWithManyFiles(self) -> None:
        self.assertOneLineError(["put", "a", "b", "--as", "c"], cli.EXIT_USAGE, "--as")

    def test_badAddress(self) -> None:
        self.assertOneLineError(["--server", "not an address", "list"], cli.EXIT_USAGE, "address")

    def test_userWithoutPassword(self) -> None:
        self.assertOneLineError(["--user", "bob", "list"], cli.EXIT_USAGE, "password")


class ReadOnlyServerTests(SynchronousTestCase):
    def test_readOnlyServerRefusesPermission(self) -> None:
        server = serverFor(self, "--read-only", files={"keep.txt": b"k"})
        root, local = server.rootPath, temporaryFolder(self)
        (local / "new.txt").write_bytes(b"n")
        (local / "other.txt").write_bytes(b"o")
        put = ftx(server, "put", "new.txt", cwd=local)
        putMany = ftx(server, "--quiet", "put", "new.txt", "other.txt", cwd=local)
        delete = ftx(server, "delete", "keep.txt", cwd=local)
        for result in (put, putMany, delete):
            self.assertEqual(result.returncode, cli.EXIT_PERMISSION, result.err)
        for result in (put, delete):
            self.assertEqual(result.err.count("\n"), 1, result.err)
            self.assertTrue(result.err.startswith("ftx: error: "), result.err)
        lines = putMany.err.splitlines()
        self.assertEqual(len(lines), 3, putMany.err)
        self.assertTrue(lines[0].startswith("ftx: error: new.txt: "), lines)
        self.assertTrue(lines[1].startswith("ftx: error: other.txt: "), lines)
        self.assertTrue(lines[2].startswith("ftx: error: 2 of 2 files failed (the first: "), lines)
        self.assertTrue((root / "keep.txt").exists())
        self.assertFalse((root / "new.txt").exists())


class NoServerTests(SynchronousTestCase):
    """
    What the command says before it needs a server.
    """

    def test_helpEverywhere(self) -> None:
        top = subprocess.run([FTX, "--help"], capture_output=True, timeout=30)
        text = top.stdout.decode()
        self.assertEqual(top.returncode, 0)
        self.assertIn("exit status:", text)
        for code, _ in cli.EXIT_CODES:
            self.assertIn("\n  {:>3}  ".format(code), text)
        parser = buildParser()
        for name, sub in parser.commands.items():
            self.assertIn("examples:", sub.format_help(), name)
        sget = subprocess.run([FTX, "sget", "--help"], capture_output=True, timeout=30)
        self.assertEqual(sget.returncode, 0)
        self.assertIn(b"--rename", sget.stdout)

    def test_noCommandWithoutTerminal(self) -> None:
        result = runFtx([], cwd=str(temporaryFolder(self)))
        self.assertEqual(result.returncode, cli.EXIT_USAGE)
        self.assertTrue(result.stderr.startswith(b"ftx: error: no command"), result.stderr)
