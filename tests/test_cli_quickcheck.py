"""
Re-runs that cost nothing (issue 14 item 4), with the real C{ftx} command
and a real server: files already here (or already on the server) with the
same size and modification time are skipped without a C{hash} reaching
the server and without reading them here; a changed time means a digest
comparison; C{--verify} always compares digests, the local ones through
the digest cache; uploads keep the local modification time.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.cli import status as cli
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, FtxServerProtocol
from tests.clitools import SharedServer, ftx, serverFor, temporaryFolder
from tests.support import listenInProcess, runFtx

SERVER = SharedServer()
SERVER_TIME = 1_500_000_000


def _hashes(log: str, folder: str) -> int:
    """
    The C{hash} commands the server answered for files of C{folder}: a
    line each, or one line for those answered together from its digest
    cache.
    """
    single = re.compile(r" hash {}/".format(re.escape(folder)))
    together = re.compile(r" hash (\d+) files from the digest cache, {}/".format(re.escape(folder)))
    count = 0
    for line in log.splitlines():
        batch = together.search(line)
        count += int(batch.group(1)) if batch else bool(single.search(line))
    return count


@SERVER.serves
class QuickCheckTests(SynchronousTestCase):
    """
    Each test works in a folder of its own under the shared root, holding
    three files, and with a digest cache of its own.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)
        self.cache = temporaryFolder(self)
        self.base = self._testMethodName
        self.folder = self.server.rootPath / self.base
        self.folder.mkdir()
        self.addCleanup(shutil.rmtree, str(self.folder), True)
        self.content = {}
        for i in range(3):
            path = self.folder / "f{}.bin".format(i)
            self.content[path.name] = os.urandom(20_000 + i)
            path.write_bytes(self.content[path.name])
            os.utime(str(path), (SERVER_TIME + i, SERVER_TIME + i))

    def run_ftx(self, *args):
        result = ftx(self.server, *args, cwd=self.local, env={"XDG_CACHE_HOME": str(self.cache)})
        self.assertNotIn("Traceback", result.err)
        return result

    def mget(self, *extra):
        return self.run_ftx("mget", self.base + "/*", *extra)

    def hashesSoFar(self) -> int:
        return _hashes(self.server.output(), self.base)

    def localFile(self, name: str):
        return self.local / self.base / name

    def cacheFile(self):
        return self.cache / "ftx" / "digests.json"

    def test_rerunHashesNothing(self) -> None:
        first = self.mget()
        self.assertEqual(first.returncode, 0, first.err)
        self.assertIn("mget: 3 fetched, 0 skipped, 0 failed", first.err)
        for i in range(3):
            self.assertEqual(os.stat(str(self.localFile("f{}.bin".format(i)))).st_mtime, SERVER_TIME + i)
        second = self.mget()
        self.assertEqual(second.returncode, 0, second.err)
        self.assertIn("mget: 0 fetched, 3 skipped, 0 failed", second.err)
        self.assertEqual(second.err.count("is unchanged (size and time match the server's); skipped"), 3)
        self.assertEqual(self.hashesSoFar(), 0)
        # Nothing was read here either: no digest was computed to keep.
        self.assertFalse(self.cacheFile().exists())

    def test_sgetRerun(self) -> None:
        name = self.base + "/f1.bin"
        self.assertEqual(self.run_ftx("sget", name).returncode, 0)
        again = self.run_ftx("sget", name)
        self.assertEqual(again.returncode, 0, again.err)
        self.assertEqual(again.err, "f1.bin is unchanged (size and time match the server's); skipped\n")
        self.assertEqual(self.hashesSoFar(), 0)

    def test_touchedFileIsCompared(self) -> None:
        """
        Same content, another time: compared by digest, skipped as
        identical, and given the server's time, so the next run is free.
        """
        self.assertEqual(self.mget().returncode, 0)
        path = str(self.localFile("f0.bin"))
        os.utime(path, (SERVER_TIME - 100, SERVER_TIME - 100))
        second = self.mget()
        self.assertEqual(second.returncode, 0, second.err)
        self.assertIn("{}/f0.bin is already here and identical; skipped".format(self.base), second.err)
        self.assertEqual(self.hashesSoFar(), 1)
        self.assertEqual(os.stat(path).st_mtime, SERVER_TIME)
        third = self.mget()
        self.assertEqual(third.err.count("is unchanged"), 3, third.err)
        self.assertEqual(self.hashesSoFar(), 1)

    def test_changedFileGoesToThePolicy(self) -> None:
        self.assertEqual(self.mget().returncode, 0)
        path = self.localFile("f0.bin")
        path.write_bytes(b"x" * len(self.content["f0.bin"]))
        refused = self.mget()
        self.assertEqual(refused.returncode, cli.EXIT_CONFLICT, refused.err)
        self.assertIn("already exists here", refused.err)
        replaced = self.mget("--overwrite")
        self.assertEqual(replaced.returncode, 0, replaced.err)
        self.assertEqual(path.read_bytes(), self.content["f0.bin"])

    def test_verifySeesWhatSizeAndTimeHide(self) -> None:
        """
        Other bytes of the same size put back to the same time fool the
        quick check, as they fool rsync's; C{--verify} finds them.
        """
        self.assertEqual(self.mget().returncode, 0)
        path = self.localFile("f1.bin")
        path.write_bytes(b"y" * len(self.content["f1.bin"]))
        os.utime(str(path), (SERVER_TIME + 1, SERVER_TIME + 1))
        fooled = self.mget()
        self.assertEqual(fooled.returncode, 0, fooled.err)
        self.assertIn("f1.bin is unchanged", fooled.err)
        verified = self.mget("--verify")
        self.assertEqual(verified.returncode, cli.EXIT_CONFLICT, verified.err)
        self.assertIn("{}/f1.bin already exists here".format(self.base), verified.err)
        self.assertEqual(verified.err.count("is already here and identical"), 2)
        self.assertEqual(self.hashesSoFar(), 3)
        fixed = self.mget("--verify", "--overwrite")
        self.assertEqual(fixed.returncode, 0, fixed.err)
        self.assertEqual(path.read_bytes(), self.content["f1.bin"])

    def test_verifyTheSecondTimeFromTheCache(self) -> None:
        self.assertEqual(self.mget().returncode, 0)
        first = self.mget("--verify")
        self.assertEqual(first.err.count("is already here and identical"), 3, first.err)
        with open(str(self.cacheFile())) as f:
            self.assertEqual(len(json.load(f)["entries"]), 3)
        before = os.stat(str(self.cacheFile())).st_mtime_ns
        second = self.mget("--verify")
        self.assertEqual(second.err.count("is already here and identical"), 3, second.err)
        # Every local digest came from the cache: nothing new to save.
        self.assertEqual(os.stat(str(self.cacheFile())).st_mtime_ns, before)
        # A change of the file's status (its ctime) makes it hashed again.
        os.chmod(str(self.localFile("f2.bin")), 0o600)
        third = self.mget("--verify")
        self.assertEqual(third.err.count("is already here and identical"), 3, third.err)
        self.assertNotEqual(os.stat(str(self.cacheFile())).st_mtime_ns, before)

    def test_verifyWithWarmCachesSeesRewrites(self) -> None:
        """
        Both digest caches warm (ours and the server's, which now answers
        from its cache without reading): other bytes of the same size put
        back to the same time, here in one file and on the server in
        another, fool the quick check but not C{--verify}, which fetches
        both again.
        """
        self.assertEqual(self.mget().returncode, 0)
        warm = self.mget("--verify")
        self.assertEqual(warm.err.count("is already here and identical"), 3, warm.err)
        mine, theirs = self.localFile("f1.bin"), self.folder / "f2.bin"
        for path, when in ((mine, SERVER_TIME + 1), (theirs, SERVER_TIME + 2)):
            size = path.stat().st_size
            with open(str(path), "r+b") as f:
                f.write(os.urandom(size))
            os.utime(str(path), (when, when))
        fooled = self.mget()
        self.assertEqual(fooled.err.count("is unchanged"), 3, fooled.err)
        before = self.hashesSoFar()
        verified = self.mget("--verify", "--overwrite")
        self.assertEqual(verified.returncode, 0, verified.err)
        self.assertIn("mget: 2 fetched, 1 skipped, 0 failed", verified.err)
        self.assertEqual(self.hashesSoFar() - before, 3)
        for name in ("f1.bin", "f2.bin"):
            self.assertEqual(self.localFile(name).read_bytes(), (self.folder / name).read_bytes())
        self.assertNotEqual(self.localFile("f2.bin").read_bytes(), self.content["f2.bin"])

    def test_symbolicLinkIsComparedByDigest(self) -> None:
        """
        A symbolic link here is never "unchanged", even to a file of the
        server's size and time: the file it leads to is compared by digest
        (and left where it is when identical).
        """
        self.assertEqual(self.mget().returncode, 0)
        real = self.local / "elsewhere.bin"
        os.replace(str(self.localFile("f0.bin")), str(real))
        os.symlink(str(real), str(self.localFile("f0.bin")))
        again = self.mget()
        self.assertEqual(again.returncode, 0, again.err)
        self.assertIn("{}/f0.bin is already here and identical; skipped".format(self.base), again.err)
        self.assertEqual(again.err.count("is unchanged"), 2, again.err)
        self.assertTrue(os.path.islink(str(self.localFile("f0.bin"))))

    def test_corruptCacheIsNoError(self) -> None:
        self.assertEqual(self.mget().returncode, 0)
        self.cacheFile().parent.mkdir(parents=True)
        self.cacheFile().write_bytes(b"\x00garbage{")
        result = self.mget("--verify")
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(result.err.count("is already here and identical"), 3, result.err)
        with open(str(self.cacheFile())) as f:
            self.assertEqual(len(json.load(f)["entries"]), 3)

    def test_putKeepsTheLocalTimeAndRerunsFree(self) -> None:
        upload = self.local / "up"
        (upload / "sub").mkdir(parents=True)
        (upload / "a.txt").write_bytes(b"a" * 100)
        (upload / "sub" / "b.txt").write_bytes(b"b" * 200)
        os.utime(str(upload / "a.txt"), (SERVER_TIME, SERVER_TIME))
        remote = self.base + "/up"
        first = self.run_ftx("put", "up", "--as", remote)
        self.assertEqual(first.returncode, 0, first.err)
        self.assertEqual(os.stat(str(self.folder / "up" / "a.txt")).st_mtime, SERVER_TIME)
        self.assertEqual(int(os.stat(str(self.folder / "up" / "sub" / "b.txt")).st_mtime),
                         int(os.stat(str(upload / "sub" / "b.txt")).st_mtime))
        second = self.run_ftx("put", "up", "--as", remote)
        self.assertEqual(second.returncode, 0, second.err)
        self.assertEqual(second.err.count("is unchanged on the server (size and time match); skipped"), 2, second.err)
        self.assertIn("put: 0 sent, 0 failed, 2 skipped", second.err)
        single = self.run_ftx("put", "up/a.txt", "--as", remote + "/a.txt")
        self.assertEqual(single.err, "{}/a.txt is unchanged on the server (size and time match); skipped\n".format(remote))
        self.assertEqual(self.hashesSoFar(), 0)
        log = self.server.output()
        self.assertEqual(log.count(" put {}/a.txt ".format(remote)), 1, log)
        verified = self.run_ftx("put", "up", "--as", remote, "--verify")
        self.assertEqual(verified.err.count("is already on the server and identical"), 2, verified.err)
        self.assertEqual(self.hashesSoFar(), 2)

    def test_putOfAChangedFileGoesToThePolicy(self) -> None:
        upload = self.local / "f0.bin"
        upload.write_bytes(b"z" * len(self.content["f0.bin"]))
        os.utime(str(upload), (SERVER_TIME, SERVER_TIME))
        remote = self.base + "/f0.bin"
        fooled = self.run_ftx("put", "f0.bin", "--as", remote)
        self.assertEqual(fooled.returncode, 0, fooled.err)
        self.assertIn("unchanged on the server", fooled.err)
        result = self.run_ftx("put", "f0.bin", "--as", remote, "--verify")
        self.assertEqual(result.returncode, cli.EXIT_CONFLICT, result.err)
        self.assertIn("already exists on the server with other content", result.err)
        self.assertEqual(self.hashesSoFar(), 1)
        replaced = self.run_ftx("put", "f0.bin", "--as", remote, "--verify", "--overwrite")
        self.assertEqual(replaced.returncode, 0, replaced.err)
        self.assertEqual((self.folder / "f0.bin").read_bytes(), upload.read_bytes())


class TopLevelPutTests(SynchronousTestCase):
    def test_filesAtTheTopListedByFolder(self) -> None:
        """
        Names with no folder in common are looked up with one C{list} of
        each folder's own files (C{*}), not a listing of the whole tree.
        """
        server = serverFor(self, files={"deep/x/other.bin": b"o"})
        local = temporaryFolder(self)
        for name in ("a.txt", "b.txt"):
            (local / name).write_bytes(name.encode() * 10)
        env = {"XDG_CACHE_HOME": str(temporaryFolder(self))}
        first = ftx(server, "put", "a.txt", "b.txt", cwd=local, env=env)
        self.assertEqual(first.returncode, 0, first.err)
        second = ftx(server, "put", "a.txt", "b.txt", cwd=local, env=env)
        self.assertEqual(second.returncode, 0, second.err)
        self.assertEqual(second.err.count("is unchanged on the server"), 2, second.err)
        log = server.output()
        self.assertEqual(log.count(" list *: 2 entries"), 1, log)
        self.assertNotIn(" hash ", log)


class OldServerTests(TestCase):
    """
    A server without the C{mtime} feature: uploads keep the time of upload
    there, so a re-run of C{put} compares digests, as before.
    """

    async def test_putRerunComparesDigests(self) -> None:
        features = FtxServerProtocol.features
        self.patch(FtxServerProtocol, "features", lambda protocol: tuple(f for f in features(protocol) if f != "mtime"))
        root = str(temporaryFolder(self))
        local = temporaryFolder(self)
        (local / "up").mkdir()
        for name in ("a.txt", "b.txt"):
            (local / "up" / name).write_bytes(name.encode() * 50)
            os.utime(str(local / "up" / name), (SERVER_TIME, SERVER_TIME))
        factory = FtxServerFactory(FilesystemStorage(root), reactor)
        port = await listenInProcess(reactor, root, factory=factory)
        self.addCleanup(port.stopListening)
        address = "127.0.0.1:{}".format(port.getHost().port)
        env = {"XDG_CACHE_HOME": str(temporaryFolder(self))}

        def put():
            return runFtx(["--server", address, "put", "up"], cwd=str(local), env=env, timeout=60)

        first = await deferToThread(put)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertNotEqual(os.stat(os.path.join(root, "up", "a.txt")).st_mtime, SERVER_TIME)
        second = await deferToThread(put)
        err = second.stderr.decode()
        self.assertEqual(second.returncode, 0, err)
        self.assertEqual(err.count("is already on the server and identical; skipped"), 2, err)
