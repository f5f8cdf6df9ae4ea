"""
Folders from the command line (issue 13 item 5): C{sget -r}, C{mget -r},
"is a folder; use -r", a trailing C{/} or C{.} meaning the folder itself,
C{delete} of several names and masks going on past a missing one,
C{delete -r} and C{mkdir}.
"""

from __future__ import annotations

import shutil

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli import status as cli
from tests.clitools import SharedServer, ftx, temporaryFolder

FILES = {
    "top.txt": b"top\n",
    "photos/x.jpg": b"x" * 5000,
    "photos/2024/y.jpg": b"y" * 300,
    "photos/2024/z.jpg": b"z" * 70,
    "docs/readme.txt": b"read me\n",
}

SERVER = SharedServer(files=FILES)


def _localFiles(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@SERVER.serves
class FolderDownloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)

    def test_folderWithoutRecursive(self) -> None:
        for name in ("photos", "photos/", "photos/.", "./photos/"):
            result = ftx(self.server, "sget", name, cwd=self.local)
            self.assertEqual(result.returncode, cli.EXIT_USAGE, (name, result.err))
            self.assertEqual(result.err, "ftx: error: photos is a folder; use -r ('ftx sget -r photos')\n")
        result = ftx(self.server, "mget", ".", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_USAGE, result.err)
        self.assertIn("is a folder; use -r ('ftx mget -r .')", result.err)
        self.assertEqual(_localFiles(self.local), {})

    def test_sgetRecursive(self) -> None:
        result = ftx(self.server, "sget", "-r", "photos/", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(_localFiles(self.local), {k: v for k, v in FILES.items() if k.startswith("photos/")})
        self.assertIn("sget: 3 fetched, 0 skipped, 0 failed", result.err)
        # Again: everything is here and identical.
        result = ftx(self.server, "sget", "-r", "photos", cwd=self.local)
        self.assertIn("sget: 0 fetched, 3 skipped, 0 failed", result.err)

    def test_sgetRecursiveOfASubfolderKeepsItsOwnName(self) -> None:
        result = ftx(self.server, "sget", "-r", "photos/2024", "-o", str(self.local / "out"), cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(_localFiles(self.local), {"out/y.jpg": FILES["photos/2024/y.jpg"], "out/z.jpg": FILES["photos/2024/z.jpg"]})

    def test_sgetRecursiveOfAFile(self) -> None:
        result = ftx(self.server, "sget", "-r", "top.txt", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(_localFiles(self.local), {"top.txt": FILES["top.txt"]})

    def test_mgetRecursiveMask(self) -> None:
        result = ftx(self.server, "mget", "-r", "photos/*", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(_localFiles(self.local), {k: v for k, v in FILES.items() if k.startswith("photos/")})

    def test_mgetRecursiveDotIsEverything(self) -> None:
        result = ftx(self.server, "--quiet", "mget", "-r", ".", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(_localFiles(self.local), FILES)
        # A folder's files come in one server mget, not a request each.
        self.assertRegex(self.server.output(), r" mget photos: 3 files, 5370 bytes in ")

    def test_mgetWithoutRecursiveStaysFlat(self) -> None:
        result = ftx(self.server, "mget", "photos/*", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(_localFiles(self.local), {"photos/x.jpg": FILES["photos/x.jpg"]})


@SERVER.serves
class DeleteAndMkdirTests(SynchronousTestCase):
    """
    Each test works in a folder of its own under the shared root, and
    removes it.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)
        self.base = self._testMethodName
        self.folder = self.server.rootPath / self.base
        for name in ("a.log", "b.log", "keep.txt", "sub/c.txt", "sub/deep/d.txt"):
            path = self.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(name.encode())
        self.addCleanup(shutil.rmtree, str(self.folder), True)

    def test_deleteSeveralGoesOnPastAMissingOne(self) -> None:
        b = self.base
        result = ftx(self.server, "delete", b + "/nosuch.txt", b + "/*.log", b + "/sub", b + "/keep.txt", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_NOT_FOUND, result.err)
        self.assertIn("no such file: {}/nosuch.txt".format(b), result.err)
        self.assertIn("{}/sub is a folder; use -r".format(b), result.err)
        self.assertIn("deleted {}/a.log".format(b), result.err)
        self.assertIn("deleted {}/keep.txt".format(b), result.err)
        self.assertTrue(result.err.rstrip().endswith("(the first: no such file: {}/nosuch.txt)".format(b)), result.err)
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["sub"])

    def test_deleteRecursive(self) -> None:
        result = ftx(self.server, "delete", "-r", self.base + "/sub/", cwd=self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("deleted folder {}/sub (2 files)".format(self.base), result.err)
        self.assertFalse((self.folder / "sub").exists())
        self.assertTrue((self.folder / "keep.txt").exists())

    def test_deleteAFileWrittenAsAFolder(self) -> None:
        result = ftx(self.server, "delete", "-r", self.base + "/keep.txt/", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_NOT_FOUND, result.err)
        self.assertIn("no such folder: {}/keep.txt (it is a file)".format(self.base), result.err)
        self.assertTrue((self.folder / "keep.txt").exists())

    def test_deleteMissingAloneExits4(self) -> None:
        result = ftx(self.server, "delete", self.base + "/nosuch", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_NOT_FOUND)
        self.assertEqual(result.err, "ftx: error: no such file: {}/nosuch\n".format(self.base))

    def test_mkdir(self) -> None:
        result = ftx(self.server, "mkdir", self.base + "/new/deeper", self.base + "/keep.txt", cwd=self.local)
        self.assertEqual(result.returncode, cli.EXIT_CONFLICT, result.err)
        self.assertIn("created folder {}/new/deeper".format(self.base), result.err)
        self.assertIn("a file is in the way of the folder {}/keep.txt".format(self.base), result.err)
        self.assertTrue((self.folder / "new" / "deeper").is_dir())
