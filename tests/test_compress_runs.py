"""
Raw runs (C{compress zstd raw-runs}, docs/protocol.rst "Compression"): on
a connection that agreed to them a raw block may hold up to
L{compression.MAX_RUN} file bytes, so incompressible data travels with a
block line per run instead of one per MiB. Real server, real client,
real files, and a plain socket for what goes on the wire.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx._io.compressedbody import BlockReader
from ftx.client.api import connect
from ftx.protocol import compression
from ftx.protocol.compression import BLOCK_SIZE, MAX_RUN, RUNS, parseBlock
from ftx.server import protocol as serverprotocol
from tests.rawclient import RawClient, sha1
from tests.support import listenInProcess
from tests.test_compression import logText, setUpFolders

MiB = 1 << 20


class RunLineTests(SynchronousTestCase):
    def test_runsOnlyForRawBlocksAndOnlyWhenAgreed(self):
        """
        A raw block over a MiB is refused unless the connection's limit is
        L{MAX_RUN}; a zstd block stays within a MiB whatever was agreed;
        nothing goes past L{MAX_RUN} or the body's end.
        """
        two = str(2 * MiB)
        with self.assertRaises(errors.BadRequest):
            parseBlock([two, two], 10 * MiB)
        self.assertEqual(parseBlock([two, two], 10 * MiB, MAX_RUN), (2 * MiB, 2 * MiB))
        with self.assertRaises(errors.BadRequest):
            parseBlock([two, "1000"], 10 * MiB, MAX_RUN)
        over = str(MAX_RUN + 1)
        with self.assertRaises(errors.BadRequest):
            parseBlock([over, over], 2 * MAX_RUN, MAX_RUN)
        with self.assertRaises(errors.BadRequest):
            parseBlock([two, two], MiB, MAX_RUN)

    def test_readerKeepsItsLimit(self):
        """
        The receiving side's L{BlockReader} checks each line against the
        limit it was made with, and streams a long raw run as it comes.
        """
        got = []
        reader = BlockReader(3 * MiB, lambda data, release=None: got.append(bytes(data)), got.append)
        with self.assertRaises(errors.BadRequest):
            reader.blockLine([str(3 * MiB), str(3 * MiB)])
        reader = BlockReader(3 * MiB, lambda data, release=None: got.append(bytes(data)), got.append, MAX_RUN)
        self.assertEqual(reader.blockLine([str(3 * MiB), str(3 * MiB)]), 3 * MiB)
        self.assertTrue(reader.raw)
        reader.payload(b"x" * 100)
        self.assertEqual(got, [b"x" * 100])

    def test_compressFields(self):
        """
        C{compress zstd raw-runs} turns runs on; C{raw-runs} after C{none},
        alone, unoffered or followed by more is refused.
        """
        offered = (compression.ZSTD, RUNS)
        self.assertEqual(compression.chooseFields(["zstd", RUNS], offered), ("zstd", MAX_RUN))
        self.assertEqual(compression.chooseFields(["zstd"], offered), ("zstd", BLOCK_SIZE))
        self.assertEqual(compression.chooseFields(["none"], offered), ("none", BLOCK_SIZE))
        for fields, offer in (
            (["none", RUNS], offered), ([RUNS], offered), (["zstd", "runs"], offered),
            (["zstd", RUNS, RUNS], offered), (["zstd", RUNS], (compression.ZSTD,)), ([], offered),
        ):
            with self.assertRaises(errors.BadRequest, msg=repr(fields)):
                compression.chooseFields(fields, offer)


class RunTransferTests(TestCase):
    def setUp(self):
        setUpFolders(self)

    async def listen(self):
        port = await listenInProcess(reactor, str(self.root))
        self.addCleanup(port.stopListening)
        return port

    async def raw(self, port) -> RawClient:
        raw = await deferToThread(RawClient, port.getHost().port)
        self.addCleanup(raw.close)
        return raw

    def recordBlocks(self):
        """
        The (file bytes, stored bytes) of every block line either side
        parsed, in order (client and server share this process).
        """
        seen = []
        parse = compression.parseBlock

        def record(fields, remaining, rawMax=BLOCK_SIZE):
            result = parse(fields, remaining, rawMax)
            seen.append(result)
            return result

        self.patch(compression, "parseBlock", record)
        return seen

    async def test_commandAndGreeting(self):
        """
        The greeting offers C{raw-runs}; C{compress zstd raw-runs} is
        answered with both fields; a misplaced C{raw-runs} is C{400} and
        the connection goes on.
        """
        port = await self.listen()
        raw = await self.raw(port)
        self.assertIn(RUNS, raw.greeting.decode().split(" ")[2].split(","))
        for wrong in (b"compress none raw-runs", b"compress raw-runs", b"compress zstd raw-runs more"):
            reply = await deferToThread(raw.command, wrong)
            self.assertTrue(reply.startswith(b"400 "), (wrong, reply))
        self.assertEqual(await deferToThread(raw.command, b"compress zstd raw-runs"), b"200 compress zstd raw-runs")
        self.assertEqual(await deferToThread(raw.command, b"noop"), b"200 ok")

    async def test_downloadOnTheWire(self):
        """
        Random bytes come in raw blocks: over a MiB each after
        C{raw-runs}, never over a MiB without it; the bytes and the
        trailer are the file's either way.
        """
        noise = os.urandom(20 * MiB + 7)
        (self.root / "r.bin").write_bytes(noise)
        port = await self.listen()
        for command, longest in ((b"compress zstd raw-runs", MAX_RUN), (b"compress zstd", BLOCK_SIZE)):
            raw = await self.raw(port)
            sizes = await deferToThread(self._download, raw, command, noise)
            self.assertTrue(all(size <= longest for size in sizes), sizes)
            if longest == MAX_RUN:
                self.assertGreater(max(sizes), 8 * MiB)
                self.assertLess(len(sizes), 8)
            else:
                self.assertEqual(len(sizes), 21)

    def _download(self, raw, command, data):
        self.assertEqual(raw.command(command), b"200 " + command)
        raw.send(b"sget r.bin")
        self.assertEqual(raw.readLine(), b"150 r.bin %d 0" % len(data))
        got, sizes = [], []
        while sum(map(len, got)) < len(data):
            code, fileBytes, stored = raw.readLine().split(b" ")
            self.assertEqual((code, fileBytes), (b"151", stored))
            sizes.append(int(fileBytes))
            got.append(raw.readExactly(int(stored)))
        self.assertEqual(b"".join(got), data)
        self.assertEqual(raw.readLine(), b"250 " + sha1(data).encode())
        return sizes

    async def test_uploadRunNeedsAgreement(self):
        """
        A client that sends a 3 MiB raw block without C{raw-runs} breaks
        the framing (C{400}, the server hangs up, nothing stored); after
        it, the same upload is stored whole.
        """
        data = os.urandom(3 * MiB + 5)
        port = await self.listen()
        raw = await self.raw(port)
        reply = await deferToThread(self._upload, raw, b"compress zstd", b"a.bin", data, False)
        self.assertTrue(reply.startswith(b"400 bad-request"), reply)
        self.assertTrue(await deferToThread(raw.closedByServer))
        self.assertFalse((self.root / "a.bin").exists())
        raw = await self.raw(port)
        reply = await deferToThread(self._upload, raw, b"compress zstd raw-runs", b"b.bin", data)
        self.assertTrue(reply.startswith(b"226 "), reply)
        self.assertEqual((self.root / "b.bin").read_bytes(), data)

    def _upload(self, raw, command, name, data, agreed=True):
        self.assertEqual(raw.command(command), b"200 " + command)
        self.assertEqual(raw.command(b"put %s %d" % (name, len(data))), b"350 0")
        if not agreed:
            # The line alone: the server answers it and hangs up.
            return raw.command(b"151 %d %d" % (len(data), len(data)))
        raw.send(b"151 %d %d" % (len(data), len(data)), b"\r\n" + data)
        return raw.command(b"sha1 " + sha1(data).encode())

    async def test_clientUsesRunsBothWays(self):
        """
        The reference client asks for runs when the server offers them:
        a mixed file (text, then random bytes, then text) goes up and
        comes back identical, the random part in runs over a MiB, the text
        in zstd blocks.
        """
        data = logText(3 * MiB) + os.urandom(24 * MiB) + logText(2 * MiB, seed=4)
        source = self.local / "mixed.bin"
        source.write_bytes(data)
        port = await self.listen()
        seen = self.recordBlocks()
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port), compress="zstd")
        self.assertEqual((client.protocol.compression, client.protocol.rawRun), ("zstd", MAX_RUN))
        await client.put(str(source), "up.bin")
        self.assertEqual((self.root / "up.bin").read_bytes(), data)
        up, seen[:] = list(seen), []
        target = self.local / "down.bin"
        await client.sget("up.bin", str(target))
        self.assertEqual(target.read_bytes(), data)
        await client.quit()
        for blocks in (up, seen):
            self.assertEqual(sum(fileBytes for fileBytes, _ in blocks), len(data))
            self.assertGreater(max(fileBytes for fileBytes, stored in blocks if fileBytes == stored), 2 * MiB)
            self.assertTrue(any(stored < fileBytes for fileBytes, stored in blocks))

    async def test_serverWithoutRuns(self):
        """
        Against a server whose greeting lacks C{raw-runs} the client asks
        for plain C{compress zstd} and every block stays within a MiB.
        """
        self.patch(serverprotocol, "COMPRESS_FEATURES", (compression.ZSTD,))
        data = os.urandom(5 * MiB + 3)
        (self.root / "r.bin").write_bytes(data)
        port = await self.listen()
        seen = self.recordBlocks()
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port), compress="zstd")
        self.assertEqual((client.protocol.compression, client.protocol.rawRun), ("zstd", BLOCK_SIZE))
        target = self.local / "r.bin"
        await client.sget("r.bin", str(target))
        await client.quit()
        self.assertEqual(target.read_bytes(), data)
        self.assertEqual(len(seen), 6)
        self.assertTrue(all(fileBytes <= BLOCK_SIZE for fileBytes, _ in seen))
