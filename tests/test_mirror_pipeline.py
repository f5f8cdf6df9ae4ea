"""
What makes a mirror's re-run cheap: C{sget} commands pipelined (the
server's C{pipeline} feature, L{ftx.client.pipelined}), the listing
formatted and parsed straight from bytes (L{ftx.server.listing},
L{ftx.client.listrequest.ListRequest}), with the same answers,
confinement and refusals as before.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.cli.status import EXIT_PERMISSION
from ftx.client.api import connect
from ftx.client.listrequest import ListRequest
from ftx.client.pipelined import PIPELINE, GetsRequest
from ftx.errors import NotFound, PermissionDenied, UnsafeName
from ftx.protocol import wire
from ftx.protocol.wire import encodeName
from ftx.server import protocol as serverprotocol
from ftx.server.listing import listingReply
from ftx.server.storage import StoredFile
from tests.clitools import SharedServer, ftx
from tests.hostile import HostileFactory, HostileProtocol, listenHostile, runCli
from tests.rawclient import RawClient, sha1
from tests.support import listenInProcess
from tests.test_hostile_server import Sandbox, assertNoRawControls

FILES = {"a.txt": b"alpha", "sub/b.txt": b"bravo" * 100, "sub/deep/c.txt": b"", "big.bin": os.urandom(300_000)}
SERVER = SharedServer(files=FILES)

#: Names that need percent-encoding, and others that do not.
ODD_NAMES = [b"a b", b"%41", "\u00e9t\u00e9".encode(), b"\xff\xfe", b"a+b", b"x#y", b'q"r', b"~/-._", b"A-Z_09", b"*?["]


@SERVER.serves
class PipelinedServerTests(SynchronousTestCase):
    def test_greetingOffersPipeline(self) -> None:
        client = RawClient(SERVER(self).port)
        try:
            self.assertIn(PIPELINE, client.greeting.decode().split(" ")[2].split(","))
        finally:
            client.close()

    def test_answersInOrder(self) -> None:
        """
        Commands sent in one write, before any answer, are answered one
        whole answer each, in order: bodies, a missing file, a name outside
        the root, a name the rules refuse, and more bodies after them.
        """
        client = RawClient(SERVER(self).port)
        try:
            asked = [b"a.txt", b"missing.txt", b"../outside", b"sub/../../etc/passwd", b"big.bin", b"sub/deep/c.txt"]
            client.socket.sendall(b"".join(b"sget " + encodeName(n).encode() + b"\r\n" for n in asked) + b"noop\r\n")
            for name in asked:
                line = client.readLine()
                if name.decode() not in FILES:
                    self.assertRegex(line, rb"^40[34] ", (name, line))
                    continue
                data = FILES[name.decode()]
                self.assertEqual(line, b"150 " + name + b" %d 0" % len(data))
                self.assertEqual(client.readExactly(len(data)), data)
                self.assertEqual(client.readLine(), b"250 " + sha1(data).encode())
            self.assertEqual(client.readLine(), b"200 ok")
        finally:
            client.close()


class ListingFormatTests(SynchronousTestCase):
    def test_sameBytesAsLineByLine(self) -> None:
        """
        L{listingReply} writes what formatting each line with
        L{wire.formatLine} and L{wire.encodeName} wrote, for names that
        need encoding and names that do not.
        """
        entries = [StoredFile(name, size, 1700000000 + size) for size, name in enumerate(ODD_NAMES)]
        entries.append(StoredFile(b"d/e/" + b"n" * 200, 2**63 - 1, 0))
        lines = [wire.formatLine(wire.LIST_ENTRY, encodeName(e.name), e.size, e.mtime) for e in entries]
        lines.append(wire.formatLine(wire.LIST_END, len(entries)))
        self.assertEqual(listingReply(entries), wire.LINE_END.join(lines) + wire.LINE_END)
        self.assertEqual(listingReply([]), b"211 0\r\n")


class WalkedListingTests(SynchronousTestCase):
    """
    The listing made while walking (L{FilesystemStorage.listingReply})
    is byte for byte what formatting L{FilesystemStorage.listFiles} gives:
    the same names, order, refusals and links.
    """

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside)
        with open(os.path.join(outside, "secret"), "wb") as f:
            f.write(b"s")
        root = os.fsencode(self.root)
        files = [b"a.txt", b"a/b", b"a-", b"a/c d", b"a/%41", "a/\u00e9t\u00e9".encode(), b"a/\xff\xfe", b"a/x#y",
                 b"a/deep/er/z", b"a.b/q", b"bad\x1bname", b"good/.x.ftx-partial", b"dir.ftx-partial/inside",
                 b"ctl\x07dir/f", b"~/-._", b"Z", b"ok", b"n" * 200 + b"/m"]
        for name in files:
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(name)
        os.makedirs(os.path.join(root, b"emptyfolder"))
        os.symlink(b"a.txt", os.path.join(root, b"link-in"))
        os.symlink(os.path.join(os.fsencode(outside), b"secret"), os.path.join(root, b"a", b"link-out"))
        os.symlink(b"a", os.path.join(root, b"link-dir"))
        os.symlink(os.fsencode(outside), os.path.join(root, b"link-outdir"))
        os.mkfifo(os.path.join(root, b"a", b"fifo"))

    def assertSameReply(self, storage, mask) -> None:
        walked = storage.listingReply(mask)
        self.assertIsNotNone(walked)
        entries = storage.listFiles(mask)
        self.assertEqual(walked, (listingReply(entries), len(entries)))

    def test_sameAsListFiles(self) -> None:
        from ftx.server.filesystem import FilesystemStorage

        storage = FilesystemStorage(self.root)
        self.assertSameReply(storage, None)
        self.assertSameReply(storage, b"a")
        self.assertSameReply(storage, b"a/deep")
        reply, count = storage.listingReply(None)
        self.assertIn(b"210 a/c%20d ", reply)
        self.assertIn(b"210 link-in 5 ", reply)
        self.assertNotIn(b"secret", reply)
        self.assertNotIn(b"fifo", reply)
        self.assertNotIn(b"partial", reply)
        self.assertNotIn(b"link-dir", reply)
        self.assertGreater(count, 10)

    def test_streamedInChunks(self) -> None:
        """
        With C{emit}, the lines go out in chunks of L{listing.CHUNK} or
        more, in order, as folders are done; the chunks and the rest
        returned are the whole reply, whose count is of every file.
        """
        from ftx.server import listing
        from ftx.server.filesystem import FilesystemStorage

        self.patch(listing, "CHUNK", 3)
        storage = FilesystemStorage(self.root)
        for mask in (None, b"a"):
            chunks = []
            rest, count = storage.listingReply(mask, chunks.append)
            self.assertGreater(len(chunks), 1)
            for chunk in chunks:
                self.assertGreaterEqual(chunk.count(b"\r\n"), 3)
                self.assertTrue(chunk.startswith(b"210 ") and chunk.endswith(b"\r\n"))
            self.assertNotIn(b"211 ", b"".join(chunks))
            self.assertEqual((b"".join(chunks) + rest, count), storage.listingReply(mask))

    def test_listCommandWritesWhileWalking(self) -> None:
        """
        C{list} writes the lines the walk has made (through the reactor
        thread, C{callFromThread}) before the walk ends, then the rest:
        the client parses the first folders while the server walks on.
        """
        from twisted.internet.defer import succeed
        from twisted.internet.testing import StringTransport
        from twisted.logger import Logger

        from ftx.server import listing
        from ftx.server.filesystem import FilesystemStorage

        self.patch(listing, "CHUNK", 2)
        storage = FilesystemStorage(self.root)
        writtenDuringWalk = []

        class Connection:
            transport = StringTransport()
            disconnected = False
            log = Logger()
            peer = "peer"

            def __init__(self) -> None:
                self.storage = storage
                self.reactor = self

            def permit(self, action, name) -> None:
                pass

            def callFromThread(self, f, *args) -> None:
                f(*args)

            def threaded(self, f, *args):
                result = f(*args)
                writtenDuringWalk.append(self.transport.value())
                return succeed(result)

        connection = Connection()
        listing.listCommand(connection, [])
        whole, count = storage.listingReply(None)
        self.assertEqual(connection.transport.value(), whole)
        self.assertTrue(writtenDuringWalk[0].startswith(b"210 "))
        self.assertTrue(whole.startswith(writtenDuringWalk[0]))
        self.assertLess(len(writtenDuringWalk[0]), len(whole))

        # A client gone while the walk goes on is written nothing more.
        gone = Connection()
        gone.transport = StringTransport()
        gone.disconnected = True
        d = listing.listCommand(gone, [])
        self.assertEqual(gone.transport.value(), b"")
        self.successResultOf(d)

    def test_otherMasksTheUsualWay(self) -> None:
        """
        A mask with wildcards, or one that names a file, is left to
        L{listFiles} (L{listedReply} falls back to it).
        """
        from ftx.server.filesystem import FilesystemStorage
        from ftx.server.listing import listedReply

        storage = FilesystemStorage(self.root)
        for mask in (b"a/*", b"a.txt", b"missing"):
            self.assertIsNone(storage.listingReply(mask))
            entries = storage.listFiles(mask)
            self.assertEqual(listedReply(storage, mask), (listingReply(entries), len(entries)))


class _Protocol:
    _active = None
    greeted = _agreeing = None
    _probeReplies = 0

    def _requestDone(self, request) -> None:
        pass


class ListParsingTests(SynchronousTestCase):
    def parsed(self, data: bytes, fast: bool):
        request = ListRequest(b"list")
        request.protocol = _Protocol()
        results = []
        request.deferred.addBoth(results.append)
        for line in data.split(b"\r\n")[:-1]:
            if not (fast and request.fastLine(line)):
                request.replyReceived(wire.parseReply(line))
        return results[0]

    def test_fastLineGivesTheSameEntries(self) -> None:
        entries = [StoredFile(name, size, size * 7) for size, name in enumerate(ODD_NAMES)]
        data = listingReply(entries)
        self.assertEqual(self.parsed(data, True), self.parsed(data, False))
        self.assertEqual(len(self.parsed(data, True)), len(ODD_NAMES))

    def parsedInPieces(self, data: bytes, size: int):
        """
        As the client's reply stream does: whole lines taken at once where
        the request can (L{ListRequest.takeLines}), the others one by one,
        the bytes arriving C{size} at a time.
        """
        request = ListRequest(b"list")
        request.protocol = _Protocol()
        request.protocol._active = request
        results = []
        request.deferred.addBoth(results.append)
        buffered = b""
        for start in range(0, len(data), size):
            buffered += data[start:start + size]
            position = 0
            while not results:
                position = request.takeLines(buffered, position)
                newline = buffered.find(b"\r\n", position)
                if newline < 0:
                    break
                line, position = buffered[position:newline], newline + 2
                if not request.fastLine(line):
                    request.replyReceived(wire.parseReply(line))
            buffered = buffered[position:]
        return results[0]

    def test_takeLinesGivesTheSameEntries(self) -> None:
        """
        Lines taken many at once give the entries one at a time gave, in
        order, whatever the pieces the bytes come in; a line that is not
        plain (an encoded name, a 19-digit number) is left to the usual way.
        """
        entries = [StoredFile(name, size, size * 7) for size, name in enumerate(ODD_NAMES * 3)]
        entries += [StoredFile(b"plain/%d" % i, i * 1000, 1700000000 + i) for i in range(50)]
        entries += [StoredFile(b"big", 2**63 - 1, 0), StoredFile(b"after", 1, 1)]
        data = listingReply(entries)
        expected = self.parsed(data, False)
        self.assertEqual(len(expected), len(entries))
        for size in (1, 7, 64, 1000, len(data)):
            self.assertEqual(self.parsedInPieces(data, size), expected, size)

    def test_takeLinesStopsAtAnError(self) -> None:
        request = ListRequest(b"list")
        request.protocol = _Protocol()
        data = b"210 a 1 2\r\n210 b 3 4\r\n404 not-found nope\r\n210 c 5 6\r\n"
        self.assertEqual(request.takeLines(data, 0), data.index(b"404"))
        self.assertEqual(request.entries, [("a", 1, 2), ("b", 3, 4)])
        self.assertEqual(request.entries[0].name, "a")
        self.assertEqual(request.takeLines(b"210 a 01 2\r\n", 0), 0)
        self.assertEqual(request.takeLines(b"210 a 1 2", 0), 0)

    def test_fastLineLeavesTheRestToTheUsualWay(self) -> None:
        """
        A name with C{%}, a number over 2**63-1, a leading zero, an extra
        field: not taken here, so the usual way decodes or refuses them as
        it did.
        """
        request = ListRequest(b"list")
        for line in [b"210 %41 1 2", b"210 a 9223372036854775808 2", b"210 a 01 2", b"210 a 1 2 3",
                     b"210 a\x1b 1 2", b"211 0", b"404 not-found x"]:
            self.assertFalse(request.fastLine(line), line)
        self.assertTrue(request.fastLine(b"210 a 9223372036854775807 0"))
        malformed = ListRequest(b"list")
        malformed.protocol = _Protocol()
        malformed.deferred.addErrback(lambda f: None)
        with self.assertRaises(Exception):
            malformed.replyReceived(wire.parseReply(b"210 a 9223372036854775808 2"))


class PipelinedClientTests(TestCase):
    async def test_sgetsFetchesEachAndReportsEachFailure(self) -> None:
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        for name, data in FILES.items():
            os.makedirs(os.path.dirname(os.path.join(root, "srv", name)), exist_ok=True)
            with open(os.path.join(root, "srv", name), "wb") as f:
                f.write(data)
        port = await listenInProcess(reactor, os.path.join(root, "srv"))
        self.addCleanup(port.stopListening)
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
        self.addCleanup(lambda: client.quit().addErrback(lambda _: None))
        self.assertIn(PIPELINE, client.protocol.features)
        out = os.path.join(root, "out")
        os.mkdir(out)
        asked = ["a.txt", "missing.txt", "big.bin", "../escape", "sub/b.txt", "sub/deep/c.txt"]
        self.patch(GetsRequest, "WINDOW", 2)
        failed, received = [], []
        transfers = await client.sgets([(n, os.path.join(out, n.replace("/", "_"))) for n in asked],
                                       received=received.append, failed=lambda n, e: failed.append((n, type(e))))
        self.assertEqual([t.name for t in transfers], ["a.txt", "big.bin", "sub/b.txt", "sub/deep/c.txt"])
        self.assertEqual(received, transfers)
        self.assertEqual(failed, [("missing.txt", NotFound), ("../escape", PermissionDenied)])
        for name in ["a.txt", "big.bin", "sub/b.txt", "sub/deep/c.txt"]:
            with open(os.path.join(out, name.replace("/", "_")), "rb") as f:
                self.assertEqual(f.read(), FILES[name])
        self.assertEqual(sorted(os.listdir(root)), ["out", "srv"])
        # The connection goes on.
        self.assertEqual(len(await client.list()), len(FILES))

    async def test_aLargeFileFinishedAtItsTrailerIsCountedOnce(self) -> None:
        """
        A large file whose body was already stored when its trailer came
        (read by a body thread, as a mirror's changed multi-MiB file often
        is) is in place at once; the answers after it still go to the files
        asked for, not each to the one before (it was counted twice, and
        every later file refused as "asked for X, the server sent Y").
        """
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        for name, data in FILES.items():
            os.makedirs(os.path.dirname(os.path.join(root, "srv", name)), exist_ok=True)
            with open(os.path.join(root, "srv", name), "wb") as f:
                f.write(data)
        port = await listenInProcess(reactor, os.path.join(root, "srv"))
        self.addCleanup(port.stopListening)
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
        self.addCleanup(lambda: client.quit().addErrback(lambda _: None))
        # Every large body read by a thread: stored before its trailer.
        client.protocol.bodyThreads = True
        out = os.path.join(root, "out")
        os.mkdir(out)
        asked = ["big.bin", "a.txt", "big.bin", "sub/b.txt", "sub/deep/c.txt"]
        failed = []
        transfers = await client.sgets([(n, os.path.join(out, "{}-{}".format(i, n.replace("/", "_"))))
                                        for i, n in enumerate(asked)], failed=lambda n, e: failed.append((n, e)))
        self.assertEqual(failed, [])
        self.assertEqual([t.name for t in transfers], asked)
        for i, name in enumerate(asked):
            with open(os.path.join(out, "{}-{}".format(i, name.replace("/", "_"))), "rb") as f:
                self.assertEqual(f.read(), FILES[name])
        self.assertEqual(len(await client.list()), len(FILES))


class _PipelineHostile(HostileProtocol):
    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self._send("220 ftx/1 list,sget,mget,hash,cget,quit,pipeline")

    def dataReceived(self, data: bytes) -> None:
        # Whether commands came ahead of the answers: several in one read.
        if data.count(b"sget ") > 1:
            self.factory.pipelined = True
        HostileProtocol.dataReceived(self, data)


class MirrorPipelineHostileTests(TestCase):
    async def test_aBodyUnderAnotherNameIsRefused(self) -> None:
        await self.refusesABodyUnderAnotherName(_PipelineHostile, pipelined=True)

    async def test_withoutTheFeatureOneAtATime(self) -> None:
        """
        A server without C{pipeline} gets one C{sget} at a time, and the
        same refusal.
        """
        await self.refusesABodyUnderAnotherName(HostileProtocol, pipelined=False)

    async def refusesABodyUnderAnotherName(self, protocolClass, pipelined: bool) -> None:
        """
        A re-run's few changed files go pipelined; a server answering one
        C{sget} with another file's name and body (one that climbs out)
        gets that body dropped: nothing is written outside the target or
        under the name asked for, and the other files arrive.
        """
        sandbox = Sandbox(self)
        copy = os.path.join(sandbox.local, "copy")
        os.mkdir(copy)
        # One file per top folder: no mget mask is worth it, so each is asked
        # for by name.
        listed = [(b"one/a.txt", b"A" * 10), (b"two/b.txt", b"B" * 20), (b"three/c.txt", b"C" * 30)]
        factory = HostileFactory(listed, answers={b"two/b.txt": (b"../../escaped.txt", b"EVIL")})
        factory.pipelined = False
        factory.protocol = protocolClass
        address = listenHostile(self, reactor, factory)
        sandbox.freeze()
        result = await runCli(self, reactor, address, "mirror", ".", "copy", cwd=sandbox.local)
        sandbox.check(self, {os.path.join("copy", "one", "a.txt"), os.path.join("copy", "three", "c.txt")}, refused=1)
        self.assertEqual(result.code, EXIT_PERMISSION, result.out + result.err)
        self.assertIn("asked for 'two/b.txt'", result.err)
        sent = [line for line in factory.commands if line.startswith(b"sget")]
        self.assertEqual(len(sent), 3, factory.commands)
        self.assertEqual(factory.pipelined, pipelined)
        assertNoRawControls(self, result.out, result.err)


@SERVER.serves
class MirrorReRunTests(SynchronousTestCase):
    def test_reRunMovesOnlyTheChanged(self) -> None:
        """
        Against the real server (pipelined), a re-run fetches only the
        changed files, each under its own name.
        """
        server = SERVER(self)
        target = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, target)
        first = ftx(server, "-q", "mirror", ".", target, "--json")
        self.assertEqual(first.returncode, 0, first.err)
        for name in ("a.txt", "sub/b.txt"):
            os.utime(os.path.join(target, name), (0, 0))
        again = ftx(server, "-q", "mirror", ".", target, "--json")
        self.assertEqual(again.returncode, 0, again.err)
        self.assertIn('"transferred": 2', again.out)
        for name, data in FILES.items():
            with open(os.path.join(target, name), "rb") as f:
                self.assertEqual(f.read(), data)
        # Each fetched file was given the server's time: nothing to do now.
        third = ftx(server, "-q", "mirror", ".", target, "--json")
        self.assertIn('"transferred": 0', third.out)


class CollectorTests(SynchronousTestCase):
    def test_resumedAsItWas(self) -> None:
        """
        The mirror's pause of the garbage collector ends with the collector
        as it found it, once, however often it is resumed.
        """
        import gc

        from ftx.cli.mirror import _Collector

        self.addCleanup(gc.enable if gc.isenabled() else gc.disable)
        gc.enable()
        collector = _Collector()
        self.assertFalse(gc.isenabled())
        collector.resume()
        collector.resume()
        self.assertTrue(gc.isenabled())
        gc.disable()
        _Collector().resume()
        self.assertFalse(gc.isenabled())


class MgetChoiceTests(SynchronousTestCase):
    """
    L{ftx.cli.mirrorfetch._mgetMayPay}: the quick guess whether a server
    C{mget} is worth weighing, which a re-run's few files per folder skip.
    """

    def setUp(self) -> None:
        from ftx.client.results import Entry

        self.listed = sorted(
            [Entry("d{}/f{:03d}".format(d, i), 100_000, 0) for d in range(3) for i in range(100)]
            + [Entry("d1.txt", 5, 0), Entry("d10/x", 7, 0), Entry("top.txt", 5, 0)]
        )

    def mayPay(self, wanted, folder=""):
        from ftx.cli.mirrorfetch import _mgetMayPay

        plans = [(e, ("sget", "/x")) for e in self.listed if e.name in wanted]
        return _mgetMayPay(folder, self.listed, plans)

    def test_firstRun(self) -> None:
        self.assertTrue(self.mayPay({e.name for e in self.listed}))

    def test_aFewChangedInEachFolder(self) -> None:
        self.assertFalse(self.mayPay({"d0/f001", "d0/f050", "d1/f007", "d1/f099", "d2/f000", "d2/f003"}))
        self.assertFalse(self.mayPay({"d0/f001"}))

    def test_aNewFolderAmongOthers(self) -> None:
        """
        A folder whose files are nearly all wanted is worth one C{mget},
        however many files the other folders hold.
        """
        wanted = {e.name for e in self.listed if e.name.startswith("d1/")} - {"d1/f000"}
        self.assertTrue(self.mayPay(wanted | {"d0/f001"}))
        # A sibling whose name extends it (d10) is not in its group.
        self.assertTrue(self.mayPay({"d10/x"} | {"d2/f%03d" % i for i in range(100)}))

    def test_topFilesOrOneFolderLeftToTheFullCheck(self) -> None:
        # A mirror of one folder: one group, that fetchTogether weighs.
        self.assertTrue(self.mayPay({"d0/f001", "d0/f002"}, folder="d0"))
        # The files at the top are spread through the listing: weighed too.
        self.assertTrue(self.mayPay({"d1.txt", "top.txt"}))


class SmallGetsTurnTests(SynchronousTestCase):
    """
    Pipelined C{sget}s of small files are answered whole, L{SmallGetsLog.perTurn}
    a turn of the reactor (what is written leaves between turns), and
    logged as the first one's usual line and one line naming the others.
    """

    def setUp(self) -> None:
        from twisted.internet.testing import StringTransport

        from ftx.server.filesystem import FilesystemStorage
        from ftx.server.protocol import FtxServerFactory
        from tests.support import InlineReactor

        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        self.names = ["f{:02d} x".format(i) for i in range(20)]
        for i, name in enumerate(self.names):
            with open(os.path.join(self.root, name), "wb") as f:
                f.write(b"%d" % i * (i + 1))
        self.reactor = InlineReactor()
        self.proto = FtxServerFactory(FilesystemStorage(self.root), self.reactor).buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.transport.clear()

    def answered(self) -> int:
        return self.transport.value().count(b"250 ")

    def test_turnsAndOneLine(self) -> None:
        from twisted.logger import capturedLogs

        from ftx.server.downloads import SmallGetsLog

        perTurn = SmallGetsLog.perTurn
        with capturedLogs() as events:
            self.proto.dataReceived(b"".join(b"sget " + encodeName(n.encode()).encode() + b"\r\n" for n in self.names))
            # The rest wait for the next turns (a Clock runs them all).
            self.assertEqual(self.answered(), perTurn)
            self.reactor.advance(0)
        self.assertEqual(self.answered(), len(self.names))
        out = self.transport.value()
        for i, name in enumerate(self.names):
            body = b"%d" % i * (i + 1)
            header = b"150 " + encodeName(name.encode()).encode() + b" %d 0\r\n" % len(body) + body + b"250 "
            self.assertEqual(out.count(header), 1)
            if i:
                self.assertLess(out.index(b"150 " + encodeName(self.names[i - 1].encode()).encode()), out.index(header))
        sent = [e for e in events if e.get("verb") == "sget" or "files, {size} bytes" in e["log_format"]]
        self.assertEqual([(e["path"], e["size"]) for e in sent[:1]], [(self.names[0], 1)])
        self.assertEqual(len(sent), 2)
        self.assertEqual(sent[1]["count"], len(self.names) - 1)
        self.assertEqual(sent[1]["paths"], " ".join(encodeName(n.encode()) for n in self.names[1:]))
        self.assertEqual(sent[1]["size"], sum(len(b"%d" % i * (i + 1)) for i in range(1, len(self.names))))
