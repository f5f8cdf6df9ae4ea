"""
C{mget} over a real loopback connection: small files sent and stored
whole, interleaved with streamed ones, in one server request; and the
command line's C{mget} doing the same, then skipping what is identical.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx.client import localfiles
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.loopback import MIX, KiB, MiB, makeMix, roots, session
from tests.support import ServerProcess, digestOf, runFtx, sha1, writeRandom


class _OneBadDigest(FilesystemStorage):
    """
    Sends one named small file with a wrong SHA-1, as a disk or memory
    fault on the server would.
    """

    def __init__(self, root, badPath):
        super().__init__(root)
        self.badInode = os.stat(badPath).st_ino
        self.corrupted = 0

    def readSmall(self, f, size, checksum="sha1"):
        data, digest = super().readSmall(f, size, checksum)
        if os.fstat(f.fileno()).st_ino == self.badInode:
            self.corrupted += 1
            digest = "0" * len(digest)
        return data, digest


class MgetTests(TestCase):
    async def test_mgetOfSmallAndLargeFilesInterleaved(self):
        root, local = roots(self, "root", "local")
        digests = makeMix(root)
        received = []
        port, client = await session(self, reactor, root)
        transfers = await client.mget("mix/*", local, received=received.append)
        names = [name for name, _ in MIX]
        self.assertEqual([t.name for t in transfers], names)
        self.assertEqual([t.name for t in received], names)
        self.assertEqual(received, transfers)
        for transfer, (name, size) in zip(transfers, MIX):
            path = os.path.join(local, name)
            self.assertEqual(transfer.path, path)
            self.assertEqual(transfer.size, size)
            self.assertEqual(transfer.checksum, "xxh128")
            self.assertEqual(transfer.digest, digestOf(path, "xxh128"))
            self.assertEqual(sha1(path), digests[name])
        self.assertEqual(sorted(os.listdir(os.path.join(local, "mix"))), sorted(os.path.basename(n) for n in names))

    async def test_mgetAcceptDeclinesAndRedirects(self):
        """
        C{accept} returning L{False} drops a file (small or large) without
        writing it; returning a path stores the file there; the stream stays in
        step either way.
        """
        root, local, elsewhere = roots(self, "root", "local", "elsewhere")
        digests = makeMix(root)
        redirected = {"mix/d-200k.bin": os.path.join(elsewhere, "d.bin"), "mix/e-big.bin": os.path.join(elsewhere, "e.bin")}
        declined = {"mix/a-1k.txt", "mix/b-big.bin"}
        asked = []

        def accept(name, size):
            asked.append((name, size))
            if name in declined:
                return False
            return redirected.get(name, True)

        port, client = await session(self, reactor, root)
        transfers = await client.mget("mix/*", local, accept=accept)
        entries = await client.list("mix")
        self.assertEqual(asked, MIX)
        kept = [name for name, _ in MIX if name not in declined]
        self.assertEqual([t.name for t in transfers], kept)
        for transfer in transfers:
            expected = redirected.get(transfer.name, os.path.join(local, transfer.name))
            self.assertEqual(transfer.path, expected)
            self.assertEqual(sha1(expected), digests[transfer.name])
        for name in declined | set(redirected):
            self.assertFalse(os.path.exists(os.path.join(local, name)))
            self.assertFalse(os.path.exists(localfiles.partialPath(os.path.join(local, name))))
        self.assertEqual(len(entries), len(MIX))

    async def test_corruptedSmallFileInMgetFailsAtTheEnd(self):
        root, local = roots(self, "root", "local")
        files = [("set/a.txt", 3 * KiB), ("set/b-bad.txt", 5 * KiB), ("set/c.bin", 2 * MiB), ("set/d.txt", 10 * KiB)]
        digests = {
            name: writeRandom(os.path.join(root, name), size, seed=200 + i) for i, (name, size) in enumerate(files)
        }
        storage = _OneBadDigest(root, os.path.join(root, "set/b-bad.txt"))
        port, client = await session(self, reactor, root, factory=FtxServerFactory(storage, reactor))
        received = []
        with self.assertRaises(errors.IntegrityError) as caught:
            await client.mget("set/*", local, received=received.append)
        self.assertIn("b-bad.txt", str(caught.exception))
        self.assertEqual(storage.corrupted, 1)
        self.assertEqual([t.name for t in received], ["set/a.txt", "set/c.bin", "set/d.txt"])
        for name, _ in files:
            if name != "set/b-bad.txt":
                self.assertEqual(sha1(os.path.join(local, name)), digests[name])
        self.assertFalse(os.path.exists(os.path.join(local, "set", "b-bad.txt")))
        self.assertFalse(os.path.exists(os.path.join(local, "set", ".b-bad.txt.ftx-partial")))
        # The replies after the bad file were all consumed by the mget: the
        # next requests get their own answers.
        entries = await client.list("set")
        self.assertEqual([e.name for e in entries], [name for name, _ in files])
        again = await client.sget("set/c.bin", os.path.join(local, "c-again.bin"))
        self.assertEqual(sha1(os.path.join(local, "c-again.bin")), digests["set/c.bin"])
        self.assertEqual(again.digest, digestOf(os.path.join(local, "c-again.bin"), again.checksum))


class CommandLineMgetTests(SynchronousTestCase):
    def test_cliMgetFetchesTogetherThenSkipsIdentical(self):
        root, local = roots(self, "root", "local")
        names = ["folder/f{:02d}.{}".format(i, "bin" if i in (10, 30) else "txt") for i in range(42)]
        digests = {}
        for i, name in enumerate(names):
            size = 2 * MiB if name.endswith(".bin") else (i * 97) % 4000
            digests[name] = writeRandom(os.path.join(root, name), size, seed=300 + i)
        with ServerProcess(root) as server:
            first = runFtx(["--server", server.address, "--dir", local, "mget", "folder/*"])
            err = first.stderr.decode("utf-8", "replace")
            self.assertEqual(first.returncode, 0, err)
            self.assertNotIn("Traceback", err)
            self.assertTrue(err.rstrip().endswith("mget: 42 fetched, 0 skipped, 0 failed"), err)
            for name in names:
                self.assertEqual(sha1(os.path.join(local, name)), digests[name], name)

            for name in ("folder/f01.txt", "folder/f20.txt", "folder/f41.txt"):
                os.unlink(os.path.join(local, name))
            big = os.path.join(local, "folder", "f30.bin")
            partial = os.path.join(local, "folder", ".f30.bin.ftx-partial")
            with open(big, "rb") as f, open(partial, "wb") as out:
                out.write(f.read(1 * MiB))
            os.unlink(big)

            second = runFtx(["--server", server.address, "--dir", local, "mget", "folder/*"])
            err = second.stderr.decode("utf-8", "replace")
            self.assertEqual(second.returncode, 0, err)
            self.assertNotIn("Traceback", err)
            self.assertTrue(err.rstrip().endswith("mget: 4 fetched, 38 skipped, 0 failed"), err)
            self.assertIn("continued folder/f30.bin", err)
            for name in ("folder/f01.txt", "folder/f20.txt", "folder/f41.txt"):
                self.assertIn("received {}".format(name), err)
            self.assertEqual(err.count("is unchanged (size and time match the server's); skipped"), 38)
            log = server.output()
        for name in names:
            self.assertEqual(sha1(os.path.join(local, name)), digests[name], name)
        self.assertEqual(sorted(os.listdir(os.path.join(local, "folder"))), sorted(os.path.basename(n) for n in names))
        # The first run asked for all 42 in one server mget.
        self.assertIn("mget folder/*: 42 files", log, log)
