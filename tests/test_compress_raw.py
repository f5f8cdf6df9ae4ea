"""
Compressed downloads on the fast paths: raw blocks sent by C{sendfile}
(L{ftx._io.directblocks}) and blocks followed by the client's body thread
(L{ftx._io.threadedblocks}). Real server, real client, real files; a
hostile server for the block lines a thread must refuse as the reactor
does.
"""

from __future__ import annotations

import os
from pathlib import Path

import xxhash
import zstandard
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from ftx import errors
from ftx._io import directblocks, threadedbody, threadedblocks, threadedreceive, workers
from ftx.client.api import connect
from ftx.protocol.compression import BLOCK_SIZE, BlockEncoder
from tests.rawclient import RawClient, sha1
from tests.hostile import HostileFactory, HostileProtocol, listenHostile
from tests.support import closeSocketsAfter, digestOf, listenInProcess, temporaryFolder, waitUntil
from tests.test_compression import logText

MiB = 1 << 20


def mixed(size: int) -> bytes:
    """
    Text, then random bytes, then text again: compressed blocks, a raw run
    (with its skipped blocks) and compressed blocks once more.
    """
    third = size // 3
    return logText(third) + os.urandom(third) + logText(size - 2 * third, seed=7)


class _Spies:
    """
    Counts which senders the server used and which bodies the client's
    thread followed, by wrapping the real classes' entry points.
    """

    def __init__(self, case: TestCase) -> None:
        self.direct = 0
        self.threaded = 0
        begin = directblocks.DirectBlockSender.begin
        receiveBlocks = threadedbody.ThreadedWriter.receiveBlocks

        def countBegin(sender, transport):
            self.direct += 1
            return begin(sender, transport)

        def countReceive(writer, *args):
            self.threaded += 1
            return receiveBlocks(writer, *args)

        self.outcomes = []
        readBlocks = threadedblocks.readBlocks

        def recordOutcome(*args):
            outcome = readBlocks(*args)
            self.outcomes.append(outcome)
            return outcome

        case.patch(threadedblocks, "readBlocks", recordOutcome)
        self.uploadThreads = 0
        receiveInit = threadedblocks.BlockReceive.__init__

        def countUploadThread(receiver, *args):
            self.uploadThreads += 1
            receiveInit(receiver, *args)

        case.patch(threadedblocks.BlockReceive, "__init__", countUploadThread)
        case.patch(directblocks.DirectBlockSender, "begin", countBegin)
        case.patch(threadedbody.ThreadedWriter, "receiveBlocks", countReceive)


class FastPathTests(TestCase):
    """
    Large compressed downloads between the real server and client.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        self.addCleanup(workers.stopPools, reactor)
        top = Path(temporaryFolder(self))
        self.root = top / "root"
        self.local = top / "local"
        self.root.mkdir()
        self.local.mkdir()
        self.spies = _Spies(self)

    async def client(self):
        port = await listenInProcess(reactor, str(self.root))
        self.addCleanup(port.stopListening)
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port), compress="zstd")
        self.addCleanup(lambda: client.protocol.transport.abortConnection() if not client.protocol._lost else None)
        # As the ftx command does: a large body is read by a thread.
        client.protocol.bodyThreads = True
        return client

    async def test_randomTextAndMixed(self):
        """
        Random bytes (raw runs by sendfile), text (zstd blocks) and a file
        that goes from one to the other arrive whole, through both fast
        paths, with the digest over the file's bytes; twice, so the second
        time the server's digest comes from its cache.
        """
        contents = {
            "random.bin": os.urandom(12 * MiB + 5),
            "text.log": logText(10 * MiB + 77),
            "mixed.dat": mixed(9 * MiB + 3),
        }
        for name, data in contents.items():
            (self.root / name).write_bytes(data)
        client = await self.client()
        for rep in range(2):
            for name, data in contents.items():
                target = self.local / "{}-{}".format(rep, name)
                transfer = await client.sget(name, str(target))
                self.assertEqual(target.read_bytes(), data, name)
                self.assertEqual(transfer.digest, digestOf(str(target), transfer.checksum))
                self.assertEqual(transfer.checksum, "xxh128")
        self.assertEqual(self.spies.direct, 6)
        self.assertEqual(self.spies.threaded, 6)
        await client.quit()

    async def test_mgetAndPut(self):
        """
        Large files of an C{mget} each go through the body thread, and an
        upload's raw blocks go by C{sendfile} from the client.
        """
        contents = {"a.bin": os.urandom(9 * MiB + 1), "b.log": logText(9 * MiB), "c.dat": mixed(9 * MiB)}
        for name, data in contents.items():
            (self.root / name).write_bytes(data)
        client = await self.client()
        got = await client.mget("*", str(self.local / "all"))
        self.assertEqual(len(got), 3)
        for name, data in contents.items():
            self.assertEqual((self.local / "all" / name).read_bytes(), data, name)
        self.assertEqual((self.spies.direct, self.spies.threaded), (3, 3))
        sent = await client.put(str(self.local / "all" / "c.dat"), "up.dat")
        self.assertEqual((self.root / "up.dat").read_bytes(), contents["c.dat"])
        self.assertEqual(sent.digest, digestOf(str(self.root / "up.dat"), sent.checksum))
        self.assertEqual(self.spies.direct, 4)
        await client.quit()

    async def test_largeUploadsReadByThread(self):
        """
        A large compressed upload (random, text, mixed) is followed by the
        server's body thread and arrives whole, digest over the file bytes.
        """
        contents = {"r.bin": os.urandom(20 * MiB + 9), "t.log": logText(18 * MiB), "m.dat": mixed(18 * MiB)}
        client = await self.client()
        for name, data in contents.items():
            (self.local / name).write_bytes(data)
            sent = await client.put(str(self.local / name), name)
            self.assertEqual((self.root / name).read_bytes(), data, name)
            self.assertEqual(sent.digest, digestOf(str(self.root / name), sent.checksum))
        self.assertEqual(self.spies.uploadThreads, 3)
        await client.quit()

    async def test_badUploadLinesReadByThread(self):
        """
        Block lines the server's body thread refuses as the reactor does: a
        raw run over the bound is C{400} and the server hangs up; a zip
        bomb is C{422} and the connection goes on; nothing is stored.
        """
        port = await listenInProcess(reactor, str(self.root))
        self.addCleanup(port.stopListening)
        raw = await deferToThread(RawClient, port.getHost().port)
        self.addCleanup(raw.close)
        await deferToThread(self._badUploads, raw)
        self.assertEqual(self.spies.uploadThreads, 2)
        self.assertEqual([n for n in os.listdir(self.root) if not n.startswith(".")], [])

    def _badUploads(self, raw):
        size = 20 * MiB
        head = b"".join(rawBlocks(os.urandom(6 * MiB)))
        self.assertEqual(raw.command(b"compress zstd"), b"200 compress zstd")
        bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (256 * MiB))
        self.assertEqual(raw.command(b"put b.bin %d" % size), b"350 0")
        raw.send(head + b"".join(b"151 %d %d\r\n" % (MiB, len(bomb)) + bomb for _ in range(14)), b"")
        reply = raw.command(b"sha1 " + b"0" * 40)
        self.assertTrue(reply.startswith(b"422 integrity"), reply)
        self.assertEqual(raw.command(b"noop"), b"200 ok")
        self.assertEqual(raw.command(b"put a.bin %d" % size), b"350 0")
        raw.send(head + b"151 2097152 2097152\r\n" + b"x" * 100, b"")
        reply = raw.readLine()
        self.assertTrue(reply.startswith(b"400 bad-request"), reply)
        self.assertTrue(raw.closedByServer())

    async def test_uploadStallsHandBack(self):
        """
        A client that pauses longer than the server's thread waits, before
        a block line is whole, in a raw payload and in a zstd payload: the
        reactor carries on from the same byte and the file is stored whole.
        """
        self.patch(threadedreceive, "HAND_BACK_SECONDS", 0.2)
        self.patch(threadedreceive, "_POLL_SECONDS", 0.05)
        data = os.urandom(10 * MiB) + logText(4 * MiB) + os.urandom(6 * MiB)
        encoder = BlockEncoder()
        pieces = []
        for start in range(0, len(data), BLOCK_SIZE):
            chunk = data[start : start + BLOCK_SIZE]
            payload = encoder.encode(chunk)
            pieces.append(b"151 %d %d\r\n" % (len(chunk), len(payload)) + payload)
        body = b"".join(pieces)
        zstdStart = sum(len(p) for p in pieces[:11])
        port = await listenInProcess(reactor, str(self.root))
        self.addCleanup(port.stopListening)
        raw = await deferToThread(RawClient, port.getHost().port)
        self.addCleanup(raw.close)
        self.assertEqual(await deferToThread(raw.command, b"compress zstd"), b"200 compress zstd")
        for n, cut in enumerate((3 * MiB + 5, 4 * (MiB + 20) + 7, zstdStart + 30)):
            before = len(self.spies.outcomes)
            self.assertEqual(await deferToThread(raw.command, b"put f%d %d" % (n, len(data))), b"350 0")
            await deferToThread(raw.send, body[:cut], b"")
            await waitUntil(reactor, lambda: False, timeout=0.6)
            reply = await deferToThread(raw.command, body[cut:] + b"sha1 " + sha1(data).encode())
            self.assertTrue(reply.startswith(b"226 "), reply)
            self.assertEqual((self.root / ("f%d" % n)).read_bytes(), data)
            self.assertFalse(self.spies.outcomes[before].complete, "the first thread handed back")

    async def test_fileShrinksWhileSent(self):
        """
        A file cut short after the server measured it: the raw blocks
        sent by sendfile meet its end, the download fails with a typed
        error, and nothing takes the file's name.
        """
        from ftx.server.filesystem import FilesystemStorage

        path = self.root / "s.bin"
        path.write_bytes(os.urandom(12 * MiB))
        openForRead = FilesystemStorage.openForRead

        def openThenShrink(storage, name):
            f, size = openForRead(storage, name)
            os.truncate(path, 3 * MiB + 5)
            return f, size

        self.patch(FilesystemStorage, "openForRead", openThenShrink)
        client = await self.client()
        with self.assertRaises(errors.FtxError):
            await client.sget("s.bin", str(self.local / "s.bin"))
        self.assertFalse((self.local / "s.bin").exists())
        self.assertEqual(self.spies.direct, 1)

    async def test_resumeInsideARawRun(self):
        """
        C{cget} from the middle of a raw run (not on a block boundary)
        restarts the blocks at that file position.
        """
        data = os.urandom(11 * MiB + 999)
        (self.root / "r.bin").write_bytes(data)
        cut = 5 * MiB + 12345
        (self.local / ".r.bin.ftx-partial").write_bytes(data[:cut])
        client = await self.client()
        transfer = await client.cget("r.bin", str(self.local / "r.bin"))
        self.assertEqual((self.local / "r.bin").read_bytes(), data)
        self.assertEqual(transfer.transferred, len(data) - cut)
        self.assertEqual(self.spies.direct, 1)
        self.assertEqual(self.spies.threaded, 1)
        await client.quit()


class _XxhCompressingHostile(HostileProtocol):
    """
    A hostile server that offers zstd and XXH3, so that the client reads
    its large bodies by thread, and sends C{factory.body} for any C{sget}.
    """

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self._send("220 ftx/1 list,sget,mget,hash,cget,quit,zstd,xxh128")

    def do_checksum(self, fields) -> None:
        self._send("200 checksum " + fields[0])

    def do_compress(self, fields) -> None:
        self._send("200 compress " + fields[0])

    def do_sget(self, fields) -> None:
        size, digest, pieces = self.factory.body
        self._send("150 {} {} 0".format(fields[0], size))
        later = getattr(self.factory, "later", None)
        if later is None:
            self.transport.write(b"".join(pieces))
            self._send("250 " + digest)
            return
        # A pause at a chosen byte: the rest after the client's thread
        # has given the socket back.
        whole = b"".join(pieces)
        self.transport.write(whole[:later])

        def rest() -> None:
            self.transport.write(whole[later:])
            self._send("250 " + digest)

        self.factory.delayed = reactor.callLater(self.factory.pause, rest)


def rawBlocks(data: bytes) -> list:
    """
    C{data} as raw blocks of 1 MiB, each with its line.
    """
    blocks = []
    for start in range(0, len(data), MiB):
        chunk = data[start : start + MiB]
        blocks.append(b"151 %d %d\r\n" % (len(chunk), len(chunk)) + chunk)
    return blocks


class HostileThreadTests(TestCase):
    """
    Block lines the client's body thread must refuse, cleanly: a typed
    error, the connection closed, nothing written under the file's name.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        self.addCleanup(workers.stopPools, reactor)
        self.local = Path(temporaryFolder(self))
        self.spies = _Spies(self)

    async def fetch(self, size, digest, pieces, later=None):
        factory = HostileFactory()
        factory.protocol = _XxhCompressingHostile
        factory.body = (size, digest, pieces)
        factory.later = later
        factory.pause = 0.6
        self.addCleanup(lambda: factory.delayed.cancel() if getattr(factory, "delayed", None) and factory.delayed.active() else None)
        address = listenHostile(self, reactor, factory)
        client = await connect(reactor, address, compress="zstd")
        self.addCleanup(lambda: client.protocol.transport.abortConnection() if not client.protocol._lost else None)
        client.protocol.bodyThreads = True
        self.assertEqual(client.protocol.checksum, "xxh128")
        return client.sget("x.bin", str(self.local / "x.bin"))

    async def refused(self, pieces, error, text=None, size=12 * MiB):
        before = self.spies.threaded
        d = await self.fetch(size, "0" * 32, pieces)
        with self.assertRaises(error) as caught:
            await d
        if text is not None:
            self.assertIn(text, str(caught.exception))
        self.assertFalse((self.local / "x.bin").exists())
        self.assertEqual(os.listdir(self.local), [".x.bin.ftx-partial"] if os.listdir(self.local) else [])
        self.assertEqual(self.spies.threaded, before + 1, "the body thread read these blocks")

    async def test_honestBodyArrives(self):
        """
        The hostile server's framing is right: an honest body through it
        arrives (so the refusals below are for the lines, not the setup).
        """
        data = os.urandom(12 * MiB)
        d = await self.fetch(len(data), xxhash.xxh3_128(data).hexdigest(), rawBlocks(data))
        await d
        self.assertEqual((self.local / "x.bin").read_bytes(), data)

    async def test_rawRunOverTheBound(self):
        """
        A raw block line of 2 MiB (over the 1 MiB bound) after good blocks.
        """
        head = rawBlocks(os.urandom(4 * MiB))
        await self.refused(head + [b"151 2097152 2097152\r\n" + b"x" * 64], errors.ConnectionLost, "1048576")

    async def test_storedOverFile(self):
        head = rawBlocks(os.urandom(4 * MiB))
        await self.refused(head + [b"151 1000 1001\r\n" + b"x" * 1001], errors.ConnectionLost, "cannot be stored")

    async def test_beyondTheBodysEnd(self):
        head = rawBlocks(os.urandom(4 * MiB))
        await self.refused(head + [b"151 1048576 1048576\r\n"], errors.ConnectionLost, "beyond", size=4 * MiB + 10)

    async def test_endlessLine(self):
        """
        A line that never ends is refused at 64 bytes, not gathered.
        """
        head = rawBlocks(os.urandom(4 * MiB))
        await self.refused(head + [b"151 " + b"1" * 4096], errors.ConnectionLost, "longer")

    async def test_zipBombInThread(self):
        """
        A zstd block that claims 1 MiB and inflates to 512 MiB: refused
        from its frame header by the store thread, an integrity error.
        """
        bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (512 * MiB))
        head = rawBlocks(os.urandom(4 * MiB))
        tail = [b"151 %d %d\r\n" % (MiB, len(bomb)) + bomb] * 8
        await self.refused(head + tail, errors.IntegrityError)

    async def test_errorInPlaceOfABlock(self):
        """
        A reply line where a block line belongs goes to the reactor, which
        fails the download with the server's error.
        """
        head = rawBlocks(os.urandom(4 * MiB))
        await self.refused(head + [b"550 not-found gone\r\n"], errors.FtxError)

    async def test_compressedAndRawMixed(self):
        """
        zstd blocks between raw ones, through the thread, arrive whole.
        """
        data = mixed(12 * MiB)
        encoder = BlockEncoder()
        pieces = []
        for start in range(0, len(data), BLOCK_SIZE):
            chunk = data[start : start + BLOCK_SIZE]
            payload = encoder.encode(chunk)
            pieces.append(b"151 %d %d\r\n" % (len(chunk), len(payload)) + payload)
        d = await self.fetch(len(data), xxhash.xxh3_128(data).hexdigest(), pieces)
        await d
        self.assertEqual((self.local / "x.bin").read_bytes(), data)

    async def test_stallsHandBackMidway(self):
        """
        A server that pauses longer than the thread waits, in a block line,
        in a raw payload and in a zstd payload: the thread gives the socket
        back there, the reactor carries on from the same byte, and the file
        arrives whole.
        """
        self.patch(threadedbody, "_POLL_SECONDS", 0.05)
        self.patch(threadedbody, "_STALL_SECONDS", 0.2)
        data = logText(3 * MiB) + os.urandom(6 * MiB) + logText(3 * MiB, seed=4)
        encoder = BlockEncoder()
        pieces = []
        for start in range(0, len(data), BLOCK_SIZE):
            chunk = data[start : start + BLOCK_SIZE]
            payload = encoder.encode(chunk)
            pieces.append(b"151 %d %d\r\n" % (len(chunk), len(payload)) + payload)
        body = b"".join(pieces)
        rawStart = sum(len(p) for p in pieces[:5])
        zstdStart = sum(len(p) for p in pieces[:10])
        for cut in (rawStart + 6, rawStart + 20 + MiB // 2, zstdStart + 40, len(body) - 3):
            target = self.local / "x.bin"
            if target.exists():
                target.unlink()
            before = len(self.spies.outcomes)
            d = await self.fetch(len(data), xxhash.xxh3_128(data).hexdigest(), pieces, later=cut)
            await d
            self.assertEqual(target.read_bytes(), data, cut)
            stopped = self.spies.outcomes[before]
            self.assertFalse(stopped.complete, "the first thread gave the socket back")
