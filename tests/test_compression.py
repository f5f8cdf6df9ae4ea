"""
Compressed transfers (C{compress zstd}, docs/protocol.rst "Compression"):
real servers on loopback ports, the real client, real files; a raw socket
client for what the reference client would never send; a hostile server
for what the client must refuse.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import zstandard
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx._io import workers
from ftx.client.api import connect
from ftx.client import compresschoice
from ftx.client.compresschoice import fastLink, wantsCompression
from ftx.protocol import compression
from ftx.protocol.compression import BLOCK_SIZE, BlockEncoder, decodeBlock, parseBlock
from ftx.protocol.wire import SMALL_BODY
from ftx.server import protocol as serverprotocol
from tests.hostile import HostileFactory, HostileProtocol, listenHostile
from tests.rawclient import RawClient, sha1
from tests.support import closeSocketsAfter, digestOf, listenInProcess, temporaryFolder, waitUntil

MiB = 1 << 20


def logText(size: int, seed: int = 0) -> bytes:
    """
    Generated log lines, as compressible as real ones (about 13 to 1).
    """
    lines = []
    total, i = 0, seed
    while total < size:
        line = b"2026-11-30T03:%02d:%02d.%03d web-%d app[%d]: GET /api/v1/items/%d?page=%d 200 %d ms\n" % (
            i % 60, (i * 7) % 60, i % 1000, i % 4, 1000 + i % 97, i * 31 % 100003, i % 17, i % 300,
        )
        lines.append(line)
        total += len(line)
        i += 1
    return b"".join(lines)[:size]


class BlockTests(SynchronousTestCase):
    """
    The block format without I/O.
    """

    def test_incompressibleBlocksGoRaw(self):
        """
        A block that does not shrink is sent as it is; blocks after it are
        not even tried for a while, and text compresses again at once.
        """
        encoder = BlockEncoder()
        noise = os.urandom(BLOCK_SIZE)
        self.assertEqual(encoder.encode(noise), noise)
        self.assertEqual(encoder.encode(noise), noise)
        self.assertEqual(encoder.storedBytes, encoder.fileBytes)
        text = logText(BLOCK_SIZE)
        encoder = BlockEncoder()
        packed = encoder.encode(text)
        self.assertLess(len(packed), len(text) // 5)
        self.assertEqual(decodeBlock(packed, len(text)), text)

    def test_zipBombRefusedWithoutInflating(self):
        """
        A frame that inflates to 64 MiB but is announced as 1,000 bytes is
        refused from its header, before any of it is decoded; so is one
        whose frame does not say its size, and garbage.
        """
        bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (64 * MiB))
        self.assertLess(len(bomb), 4096)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with self.assertRaises(errors.IntegrityError) as caught:
            decodeBlock(bomb, 1000)
        self.assertIn("67108864", str(caught.exception))
        unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (64 * MiB))
        self.assertRaises(errors.IntegrityError, decodeBlock, unsized, 1000)
        self.assertRaises(errors.IntegrityError, decodeBlock, b"garbage " * 20, 160)
        # Under 16 MiB more at most (ru_maxrss is in KiB): nothing inflated.
        self.assertLess(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, 16 * 1024)

    def test_blockLinesChecked(self):
        self.assertEqual(parseBlock(["10", "4"], 10), (10, 4))
        for fields, remaining in (
            (["0", "0"], 10), ([str(BLOCK_SIZE + 1), "5"], 1 << 30), (["11", "4"], 10), (["4", "5"], 10), (["4"], 10),
            (["x", "4"], 10),
        ):
            self.assertRaises(errors.BadRequest, parseBlock, fields, remaining)

    def test_autoRule(self):
        """
        C{auto} compresses only on links slower than zstd: not to a
        loopback address or a Unix socket; never without the feature.
        """

        class Transport:
            def __init__(self, host):
                self.host = host

            def getPeer(self):
                return type("Address", (), {"host": self.host})() if self.host else object()

        self.assertTrue(fastLink(Transport("127.0.0.1")))
        self.assertTrue(fastLink(Transport("::1")))
        self.assertTrue(fastLink(Transport(None)))
        self.assertFalse(fastLink(Transport("192.0.2.7")))
        self.assertFalse(wantsCompression("auto", ["zstd"], Transport("127.0.0.1")))
        self.assertTrue(wantsCompression("auto", ["zstd"], Transport("192.0.2.7")))
        self.assertTrue(wantsCompression("zstd", ["zstd"], Transport("127.0.0.1")))
        self.assertFalse(wantsCompression("zstd", ["sget"], Transport("192.0.2.7")))
        self.assertFalse(wantsCompression("none", ["zstd"], Transport("192.0.2.7")))


def setUpFolders(case: TestCase) -> None:
    """
    A server root and a local folder under a fresh temporary one
    (C{case.top}, C{case.root}, C{case.local}); sockets and worker pools
    are cleaned up after the test.
    """
    closeSocketsAfter(case, reactor)
    case.addCleanup(workers.stopPools, reactor)
    case.top = Path(temporaryFolder(case))
    case.root = case.top / "root"
    case.local = case.top / "local"
    case.root.mkdir()
    case.local.mkdir()


class CompressedTransferTests(TestCase):
    """
    Real server, real client, real files, with C{compress zstd}.
    """

    def setUp(self):
        setUpFolders(self)

    async def listen(self, factory=None):
        port = await listenInProcess(reactor, str(self.root), factory=factory)
        self.addCleanup(port.stopListening)
        return port

    async def client(self, port, compress="zstd"):
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port), compress=compress)
        self.addCleanup(lambda: client.protocol.transport.abortConnection() if not client.protocol._lost else None)
        return client

    def files(self):
        contents = {
            "text.log": logText(3 * MiB + 12345),
            "random.bin": os.urandom(2 * MiB + 7),
            "empty": b"",
            "one": b"x",
            "block.log": logText(BLOCK_SIZE, seed=5),
            "small.log": logText(SMALL_BODY, seed=9),
        }
        for name, data in contents.items():
            (self.root / name).write_bytes(data)
        return contents

    async def test_roundTripsBothWays(self):
        """
        Text, random bytes, an empty file, one byte, exactly one block and
        exactly the small-body size come down and go back up unchanged, each
        digest over the file's bytes.
        """
        contents = self.files()
        port = await self.listen()
        client = await self.client(port)
        self.assertEqual(client.protocol.compression, "zstd")
        for name, data in contents.items():
            target = str(self.local / name)
            transfer = await client.sget(name, target)
            self.assertEqual(Path(target).read_bytes(), data, name)
            self.assertEqual(transfer.digest, digestOf(target, transfer.checksum))
            sent = await client.put(target, "back/" + name)
            self.assertEqual(sent.digest, transfer.digest)
            self.assertEqual((self.root / "back" / name).read_bytes(), data, name)
        got = await client.mget("*", str(self.local / "all"))
        self.assertEqual(len(got), len(contents))
        for name, data in contents.items():
            self.assertEqual((self.local / "all" / name).read_bytes(), data)
        await client.quit()

    async def test_resumeBothWays(self):
        """
        C{cget} continues a download from a file position, and a resumed
        C{put} continues an upload the server holds part of: the blocks
        restart at the offset and the trailer covers the whole file.
        """
        data = logText(5 * MiB + 333, seed=3)
        (self.root / "big.log").write_bytes(data)
        port = await self.listen()
        client = await self.client(port)
        target = self.local / "big.log"
        (self.local / ".big.log.ftx-partial").write_bytes(data[: 2 * MiB + 99])
        transfer = await client.cget("big.log", str(target))
        self.assertEqual(target.read_bytes(), data)
        self.assertEqual(transfer.transferred, len(data) - (2 * MiB + 99))
        # An upload cut after its first blocks, sent by hand, then resumed.
        raw = await self.raw(port)

        def cutUpload():
            self.assertEqual(raw.command(b"compress zstd"), b"200 compress zstd")
            self.assertEqual(raw.command(b"put up.log %d" % len(data)), b"350 0")
            encoder = BlockEncoder()
            for start in (0, BLOCK_SIZE):
                payload = encoder.encode(data[start : start + BLOCK_SIZE])
                raw.send(b"151 %d %d" % (BLOCK_SIZE, len(payload)), b"\r\n" + payload)

        await deferToThread(cutUpload)
        partial = self.root / ".up.log.ftx-partial"
        held = await waitUntil(reactor, lambda: partial.exists() and partial.stat().st_size == 2 * BLOCK_SIZE)
        self.assertTrue(held)
        raw.close()
        self.assertTrue(await waitUntil(reactor, lambda: not self._uploading(port)))
        self.assertEqual(await client.partial("up.log"), (2 * BLOCK_SIZE, sha1(data[: 2 * BLOCK_SIZE])))
        sent = await client.put(str(target), "up.log", resume=True)
        self.assertEqual((self.root / "up.log").read_bytes(), data)
        self.assertEqual(sent.transferred, len(data) - 2 * BLOCK_SIZE)
        await client.quit()

    async def raw(self, port) -> RawClient:
        """
        A plain-socket client; the test drives it in a thread (deferToThread)
        while the server runs on this reactor.
        """
        raw = await deferToThread(RawClient, port.getHost().port)
        self.addCleanup(raw.close)
        return raw

    async def test_stalledReaderHoldsBackTheSender(self):
        """
        A client that stops reading a compressed download stops the
        server reading the file: what it has read stays within the
        sockets' buffers and the few blocks it keeps ready.
        """
        (self.root / "big.bin").write_bytes(os.urandom(64 * MiB))
        port = await self.listen()
        servers = []
        build = port.factory.buildProtocol

        def buildProtocol(addr):
            protocol = build(addr)
            servers.append(protocol)
            return protocol

        port.factory.buildProtocol = buildProtocol
        raw = await self.raw(port)
        self.assertEqual(await deferToThread(raw.command, b"compress zstd"), b"200 compress zstd")
        await deferToThread(raw.send, b"sget big.bin")
        self.assertTrue(await waitUntil(reactor, lambda: servers and servers[0].downloads.sender is not None))
        sender = servers[0].downloads.sender
        read = []
        for _ in range(20):
            await waitUntil(reactor, lambda: False, timeout=0.05)
            read.append(sender.position)
        self.assertEqual(read[-1], read[-5], "the sender kept reading while nobody read the socket")
        self.assertLess(read[-1], 24 * MiB)
        raw.close()

    async def test_autoSamplesUploads(self):
        """
        With C{auto} on (as on a remote link), an upload whose first block
        does not shrink goes uncompressed and one that does goes in zstd
        blocks; both arrive whole.
        """
        port = await self.listen()
        client = await self.client(port, compress="auto")
        self.assertEqual(client.protocol.compression, "none", "auto compresses nothing on loopback")
        client.protocol.autoCompress = True
        noise, text = os.urandom(2 * MiB), logText(2 * MiB)
        for name, data, expected in (("n.bin", noise, "none"), ("t.log", text, "zstd"), ("n2.bin", noise, "none")):
            (self.local / name).write_bytes(data)
            await client.put(str(self.local / name), name)
            self.assertEqual(client.protocol.compression, expected, name)
            self.assertEqual((self.root / name).read_bytes(), data)
        await client.quit()

    async def test_rateLimitCountsWireBytes(self):
        """
        Under the server's C{--limit-rate}, compressed blocks wait for the
        limit like plain bodies: random bytes (sent raw) take their time,
        while text, about 1/7 of its size on the wire here, arrives much
        faster than its size at that rate would allow, and both arrive
        whole.
        """
        from ftx.server.filesystem import FilesystemStorage
        from ftx.server.protocol import FtxServerFactory, ServerPolicy

        rate = 2 << 20
        text, noise = logText(8 * MiB), os.urandom(2 * MiB)
        (self.root / "t.log").write_bytes(text)
        (self.root / "n.bin").write_bytes(noise)
        factory = FtxServerFactory(FilesystemStorage(str(self.root)), reactor, ServerPolicy(limitRate=rate))
        port = await self.listen(factory)
        client = await self.client(port)
        started = reactor.seconds()
        await client.sget("n.bin", str(self.local / "n.bin"))
        noiseTime = reactor.seconds() - started
        started = reactor.seconds()
        await client.sget("t.log", str(self.local / "t.log"))
        textTime = reactor.seconds() - started
        self.assertEqual((self.local / "n.bin").read_bytes(), noise)
        self.assertEqual((self.local / "t.log").read_bytes(), text)
        # 2 MiB at 2 MiB/s, less the first step and burst: the limit held.
        self.assertGreater(noiseTime, 0.6)
        # 8 MiB of text would take 4 s at the limit; compressed, well under.
        self.assertLess(textTime, 2.5)
        await client.quit()

    async def test_encryptedUploadOnACompressingConnection(self):
        """
        An end-to-end encrypted upload sends its ciphertext as a plain body
        (it would not compress): the connection turns compression off
        first, and the file comes back whole.
        """
        from ftx.client.e2e import generateIdentity

        self.patch(os, "environ", dict(os.environ, XDG_STATE_HOME=str(self.top / "state")))
        identity = generateIdentity()
        data = logText(2 * MiB + 3)
        source = self.local / "plain.log"
        source.write_bytes(data)
        port = await self.listen()
        client = await self.client(port)
        await client.put(str(source), "p.age", encryptTo=[str(identity.recipient())])
        self.assertEqual(client.protocol.compression, "none")
        self.assertNotIn(data[:64], (self.root / "p.age").read_bytes())
        await compresschoice.switch(client.protocol, "zstd")
        await client.sget("p.age", str(self.local / "back.log"), identities=[str(identity)])
        self.assertEqual((self.local / "back.log").read_bytes(), data)
        await client.quit()

    def _uploading(self, port) -> bool:
        from ftx.server.uploads import _receiving

        return _receiving.holder(port.factory.storage, b"up.log") is not None

    async def test_peerWithoutTheFeature(self):
        """
        A server without C{zstd} in its greeting gets plain bodies from a
        client that asked for compression; a client that asks for none
        never sends C{compress}, and the server refuses what it lacks.
        """
        data = logText(MiB + 5)
        (self.root / "a.log").write_bytes(data)
        self.patch(serverprotocol, "COMPRESS_FEATURES", ())
        port = await self.listen()
        client = await self.client(port)
        self.assertNotIn("zstd", client.protocol.features)
        self.assertEqual(client.protocol.compression, "none")
        await client.sget("a.log", str(self.local / "a.log"))
        self.assertEqual((self.local / "a.log").read_bytes(), data)
        await client.put(str(self.local / "a.log"), "b.log")
        self.assertEqual((self.root / "b.log").read_bytes(), data)
        await client.quit()
        raw = await self.raw(port)
        refused = await deferToThread(raw.command, b"compress zstd")
        self.assertTrue(refused.startswith(b"400 bad-request"), refused)
        self.assertEqual(await deferToThread(raw.command, b"compress none"), b"200 compress none")

    async def test_clientAskingNoneSendsPlainBodies(self):
        data = logText(MiB)
        (self.root / "a.log").write_bytes(data)
        port = await self.listen()
        commands = []
        factory = port.factory
        original = factory.buildProtocol

        def build(addr):
            protocol = original(addr)
            received = protocol.lineReceived

            def lineReceived(line):
                commands.append(line.split(b" ")[0])
                received(line)

            protocol.lineReceived = lineReceived
            return protocol

        factory.buildProtocol = build
        client = await self.client(port, compress="none")
        self.assertIn("zstd", client.protocol.features)
        await client.sget("a.log", str(self.local / "a.log"))
        self.assertEqual((self.local / "a.log").read_bytes(), data)
        await client.quit()
        self.assertNotIn(b"compress", commands)

    async def test_blocksOnTheWire(self):
        """
        What the server sends, read with a plain socket: text in zstd
        blocks much smaller than the file, random bytes in raw blocks, and
        the trailer over the file's bytes.
        """
        text, noise = logText(2 * MiB + 10), os.urandom(MiB + 10)
        (self.root / "t.log").write_bytes(text)
        (self.root / "r.bin").write_bytes(noise)
        port = await self.listen()
        raw = await self.raw(port)
        self.assertIn("zstd", raw.greeting.decode().split(" ")[2].split(","))
        await deferToThread(self._readBlocks, raw, text, noise)

    def _readBlocks(self, raw, text, noise):
        self.assertEqual(raw.command(b"compress zstd"), b"200 compress zstd")
        for name, data, compressed in ((b"t.log", text, True), (b"r.bin", noise, False)):
            raw.send(b"sget " + name)
            self.assertEqual(raw.readLine(), b"150 %s %d 0" % (name, len(data)))
            got, stored = b"", 0
            while len(got) < len(data):
                code, fileBytes, size = raw.readLine().split(b" ")
                self.assertEqual(code, b"151")
                payload = raw.readExactly(int(size))
                stored += int(size)
                got += payload if int(size) == int(fileBytes) else zstandard.ZstdDecompressor().decompress(payload)
            self.assertEqual(got, data)
            self.assertEqual(raw.readLine(), b"250 " + sha1(data).encode())
            if compressed:
                self.assertLess(stored, len(data) // 5)
            else:
                self.assertEqual(stored, len(data))

    async def test_badUploadsRefused(self):
        """
        A wrong digest after a compressed body is C{422} and stores
        nothing; a zip bomb block and a garbage block are C{422} too, and
        the connection goes on; a block line that breaks the framing is
        C{400} and the server hangs up.
        """
        port = await self.listen()
        raw = await self.raw(port)
        await deferToThread(self._badUploads, raw)

    def _badUploads(self, raw):
        data = logText(MiB)
        self.assertEqual(raw.command(b"compress zstd"), b"200 compress zstd")
        payload = BlockEncoder().encode(data)

        def upload(name, blocks, digest):
            self.assertEqual(raw.command(b"put %s %d" % (name, len(data))), b"350 0")
            for line, body in blocks:
                raw.send(line, b"\r\n" + body)
            return raw.command(b"sha1 " + digest.encode())

        wrong = upload(b"a.log", [(b"151 %d %d" % (len(data), len(payload)), payload)], sha1(b"other"))
        self.assertTrue(wrong.startswith(b"422 integrity"), wrong)
        bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (256 * MiB))
        reply = upload(b"b.log", [(b"151 %d %d" % (len(data), len(bomb)), bomb)], sha1(data))
        self.assertTrue(reply.startswith(b"422 integrity"), reply)
        self.assertIn(b"268435456", reply)
        garbage = b"\x28\xb5\x2f\xfd" + os.urandom(1000)
        reply = upload(b"c.log", [(b"151 %d %d" % (len(data), len(garbage)), garbage)], sha1(data))
        self.assertTrue(reply.startswith(b"422 integrity"), reply)
        self.assertEqual(raw.command(b"noop"), b"200 ok")
        self.assertEqual(sorted(os.listdir(self.root)), [])
        self.assertEqual(raw.command(b"put d.log 10"), b"350 0")
        self.assertTrue(raw.command(b"151 11 4").startswith(b"400 bad-request"))
        self.assertTrue(raw.closedByServer())


class _CompressingHostile(HostileProtocol):
    """
    A hostile server that offers zstd and sends C{factory.blocks} (line,
    payload) as the body of any C{sget}.
    """

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self._send("220 ftx/1 list,sget,mget,hash,cget,quit,zstd")

    def do_compress(self, fields) -> None:
        self._send("200 compress " + fields[0])

    def do_sget(self, fields) -> None:
        size, digest, blocks = self.factory.body
        self._send("150 {} {} 0".format(fields[0], size))
        for line, payload in blocks:
            self.transport.write(line + b"\r\n" + payload)
        self._send("250 " + digest)


class HostileCompressionTests(TestCase):
    """
    The client refuses what a malicious server sends in compressed bodies.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        self.addCleanup(workers.stopPools, reactor)
        self.local = Path(temporaryFolder(self))

    async def fetch(self, size, digest, blocks, name="x.log"):
        factory = HostileFactory()
        factory.protocol = _CompressingHostile
        factory.body = (size, digest, blocks)
        address = listenHostile(self, reactor, factory)
        client = await connect(reactor, address, compress="zstd", checksum="sha1")
        self.addCleanup(lambda: client.protocol.transport.abortConnection() if not client.protocol._lost else None)
        return client, client.sget(name, str(self.local / name))

    async def test_zipBombAndGarbageRefused(self):
        """
        A block that inflates past what it announced, in a large file and
        in a small one, and a garbage block: the download fails with an
        integrity error and nothing is kept under the name.
        """
        size = 2 * MiB
        bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (512 * MiB))
        smallBomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (64 * MiB))
        self.assertLess(len(smallBomb), 8192)
        for fileSize, blocks in (
            (size, [(b"151 %d %d" % (MiB, len(bomb)), bomb)] * 2),
            (8192, [(b"151 8192 %d" % len(smallBomb), smallBomb)]),
            (size, [(b"151 %d 900" % MiB, b"\x28\xb5\x2f\xfd" + os.urandom(896))] * 2),
        ):
            client, d = await self.fetch(fileSize, sha1(b"\0" * fileSize), blocks)
            with self.assertRaises(errors.IntegrityError):
                await d
            self.assertFalse((self.local / "x.log").exists())
            client.protocol.transport.abortConnection()

    async def test_wrongDigestAndBrokenFramingRefused(self):
        data = logText(MiB + 100)
        encoder = BlockEncoder()
        blocks = []
        for start in range(0, len(data), BLOCK_SIZE):
            chunk = data[start : start + BLOCK_SIZE]
            payload = encoder.encode(chunk)
            blocks.append((b"151 %d %d" % (len(chunk), len(payload)), payload))
        client, d = await self.fetch(len(data), sha1(b"not it"), blocks)
        with self.assertRaises(errors.IntegrityError):
            await d
        client.protocol.transport.abortConnection()
        client, d = await self.fetch(len(data), sha1(data), blocks[:1])
        with self.assertRaises(errors.ConnectionLost) as caught:
            await d
        self.assertIn("before the body's end", str(caught.exception))
        client, d = await self.fetch(len(data), sha1(data), [(b"151 %d 10" % (len(data) + 1), b"x" * 10)])
        with self.assertRaises(errors.ConnectionLost):
            await d


class CommandLineTests(SynchronousTestCase):
    """
    The real C{ftx} command with C{--compress}, against a real C{twistd ftx}.
    """

    def test_compressBothWays(self):
        """
        C{--compress zstd} downloads and uploads byte-identical files and
        says, with C{-v}, that the connection compresses; C{auto} (the
        default) leaves compression off on loopback; a bad mode is a
        usage error.
        """
        from tests.clitools import ftx, serverFor, temporaryFolder as cliFolder

        data = logText(3 * MiB + 1)
        server = serverFor(self, files={"app.log": data})
        here = cliFolder(self)
        result = ftx(server, "-v", "--compress", "zstd", "sget", "app.log", cwd=here)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("compression zstd", result.err)
        self.assertEqual((here / "app.log").read_bytes(), data)
        result = ftx(server, "--compress", "zstd", "put", "app.log", "--as", "back.log", cwd=here)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual((server.rootPath / "back.log").read_bytes(), data)
        result = ftx(server, "-v", "ls", cwd=here)
        self.assertIn("compression none", result.err)
        result = ftx(server, "--compress", "lz4", "ls", cwd=here)
        self.assertEqual(result.returncode, 2)
        self.assertIn("lz4", result.err)


class ConnectArgumentTests(SynchronousTestCase):
    def test_unknownModeRefused(self):
        self.assertRaises(ValueError, connect, reactor, "127.0.0.1:1", compress="lz4")
