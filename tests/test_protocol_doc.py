"""
docs/protocol.rst and the server agree: each rule the page states is
checked here against a real ``twistd ftx`` over a plain standard-library
socket, as a client written from the page alone would talk to it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import Optional

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ftx.errors import PermissionDenied
from ftx.protocol.names import MAX_DEPTH, MAX_NAME, MAX_ROOT, MAX_SEGMENT, listable, splitName
from ftx.server.filesystem import FilesystemStorage
from ftx.server.tap import Options
from tests.clitools import SharedServer, serverFor, waitFor
from tests.rawclient import READ_TIMEOUT, RawClient, nameOfLength, sha1
from tests.storages import InMemory, OnFilesystem
from tests.support import ServerProcess

#: Bytes of a name segment the file system allows but the protocol does not.
TOO_LONG_SEGMENT = b"L" * 250


def _prepareRoot(server: ServerProcess) -> None:
    """
    What the names the page says ``list`` leaves out need on disk.
    """
    root = server.rootPath
    (root / "c\x01l.txt").write_bytes(b"control")
    (root / ".kept.ftx-partial").write_bytes(b"partial")
    (root / TOO_LONG_SEGMENT.decode()).write_bytes(b"long")
    os.symlink("/etc/passwd", str(root / "outward"))
    os.symlink("nowhere", str(root / "dangling"))
    os.symlink("loop-b", str(root / "loop-a"))
    os.symlink("loop-a", str(root / "loop-b"))
    os.symlink("sub", str(root / "linked-folder"))
    os.symlink("sub/a.txt", str(root / "inward"))
    os.mkfifo(str(root / "fifo"))


SERVER = SharedServer(
    files={
        "~x": b"tilde",
        "\u00e9x": b"e-acute",
        ".hidden": b"dot",
        "star*": b"star",
        "sub/a.txt": b"a",
        "sub/deep/er/b.txt": b"b",
    },
    prepare=_prepareRoot,
)


class _RawTestCase(SynchronousTestCase):
    def connect(self, server: Optional[ServerProcess] = None) -> RawClient:
        client = RawClient((server or SERVER(self)).port)
        self.addCleanup(client.close)
        return client

    def scratch(self, server: ServerProcess) -> bytes:
        """
        A folder name of this test's own under the shared root, removed after.
        """
        folder = "t-" + uuid.uuid4().hex[:12]
        self.addCleanup(shutil.rmtree, str(server.rootPath / folder), True)
        return folder.encode()


@SERVER.serves
class ListingTests(_RawTestCase):
    """
    The order of ``list`` and ``mget``, and what they leave out.
    """

    def test_orderIsTheDecodedBytes(self) -> None:
        """
        Names come in the byte order of their decoded form: C{~x} (0x7E)
        before C{éx} (0xC3), the reverse of their encoded forms' order.
        """
        client = self.connect()
        names = client.listing(b"%3Fx")  # ?x: one byte, then x
        self.assertEqual(names, [b"~x"])
        names = client.listing(b"*x")
        self.assertEqual(names, [b"~x", b"%C3%A9x"])
        self.assertNotEqual(names, sorted(names))
        self.assertEqual([n for n, _ in client.mget(b"*x")], names)

    def test_wholeListingInDecodedOrder(self) -> None:
        from urllib.parse import unquote_to_bytes

        names = self.connect().listing()
        decoded = [unquote_to_bytes(n.decode()) for n in names]
        self.assertEqual(decoded, sorted(decoded))

    def test_leftOut(self) -> None:
        names = self.connect().listing()
        self.assertEqual(
            names,
            [b".hidden", b"inward", b"star%2A", b"sub/a.txt", b"sub/deep/er/b.txt", b"~x", b"%C3%A9x"],
        )

    def test_fetchingWhatListLeavesOut(self) -> None:
        """
        Each kind of name ``list`` leaves out gets the answer the page gives.
        """
        client = self.connect()
        expected = {
            b"c%01l.txt": b"403 permission-denied",
            b".kept.ftx-partial": b"403 permission-denied",
            TOO_LONG_SEGMENT: b"403 permission-denied",
            b"outward": b"403 permission-denied",
            b"fifo": b"403 permission-denied",
            b"dangling": b"404 not-found",
            b"loop-a": b"404 not-found",
        }
        for name, answer in expected.items():
            for verb in (b"sget ", b"hash "):
                reply = client.command(verb + name)
                self.assertTrue(reply.startswith(answer + b" "), (verb, name, reply))
        reply = client.command(b"cget loop-a 0 " + sha1(b"").encode())
        self.assertTrue(reply.startswith(b"404 not-found "), reply)
        # Under a linked folder: not listed, but fetched by name.
        self.assertEqual(client.command(b"sget linked-folder/a.txt"), b"150 linked-folder/a.txt 1 0")
        self.assertEqual(client.readExactly(1), b"a")
        self.assertEqual(client.readLine(), b"250 " + sha1(b"a").encode())


@SERVER.serves
class MaskTests(_RawTestCase):
    def test_percentEncodedStarIsTheWildcard(self) -> None:
        client = self.connect()
        self.assertEqual(client.listing(b"%2A"), client.listing(b"*"))
        self.assertIn(b"~x", client.listing(b"%2A"))

    def test_literalStarInBrackets(self) -> None:
        client = self.connect()
        self.assertEqual(client.listing(b"star[*]"), [b"star%2A"])
        self.assertEqual(client.listing(b"%5B%2A%5D"), [])

    def test_negatedSet(self) -> None:
        names = self.connect().listing(b"[!.s]*")
        self.assertEqual(names, [b"inward", b"~x", b"%C3%A9x"])

    def test_starMatchesLeadingDot(self) -> None:
        self.assertIn(b".hidden", self.connect().listing(b"*"))

    def test_wildcardsWorkOnBytes(self) -> None:
        client = self.connect()
        self.assertEqual(client.listing(b"%3F%3Fx"), [b"%C3%A9x"])

    def test_wildcardNeverMatchesSlash(self) -> None:
        client = self.connect()
        self.assertEqual(client.listing(b"sub/*"), [b"sub/a.txt"])
        self.assertEqual(client.listing(b"*/*.txt"), [b"sub/a.txt"])

    def test_folderWithoutWildcardListsEveryDepth(self) -> None:
        client = self.connect()
        self.assertEqual(client.listing(b"sub"), [b"sub/a.txt", b"sub/deep/er/b.txt"])
        self.assertEqual([n for n, _ in client.mget(b"sub")], [b"sub/a.txt", b"sub/deep/er/b.txt"])
        self.assertEqual(client.listing(b"sub/a.txt"), [b"sub/a.txt"])

    def test_trailingSlashIsRefused(self) -> None:
        self.assertTrue(self.connect().command(b"list sub/").startswith(b"403 permission-denied "))


@SERVER.serves
class NameLengthTests(_RawTestCase):
    def test_segmentLimit(self) -> None:
        """
        A segment of 242 bytes can be uploaded, one of 243 cannot: the
        limit the page states is the one every command applies.
        """
        server = SERVER(self)
        client = self.connect()
        folder = self.scratch(server)
        longest = folder + b"/" + b"s" * MAX_SEGMENT
        self.assertEqual(MAX_SEGMENT, 242)
        self.assertTrue(client.put(longest, b"x").startswith(b"226 "))
        self.assertIn(longest, client.listing(folder))
        over = folder + b"/" + b"s" * (MAX_SEGMENT + 1)
        self.assertTrue(client.put(over, b"x").startswith(b"403 permission-denied "))
        self.assertTrue(client.command(b"sget " + over).startswith(b"403 permission-denied "))

    def test_nameLimit(self) -> None:
        server = SERVER(self)
        client = self.connect()
        folder = self.scratch(server)
        name = nameOfLength(folder, MAX_NAME)
        self.assertEqual(len(name), 2048)
        self.assertTrue(client.put(name, b"y").startswith(b"226 "), name)
        self.assertTrue(client.command(b"sget " + name).startswith(b"150 "))
        client.readExactly(1)
        client.readLine()
        over = nameOfLength(folder, MAX_NAME + 1)
        self.assertTrue(client.command(b"sget " + over).startswith(b"403 permission-denied "))


class RootIndependentLengthTests(SynchronousTestCase):
    """
    The longest name works the same under a root whose path is as long as
    the server allows; before, it was refused once root and name passed
    the operating system's path limit.
    """

    def test_longestNameUnderLongestRoot(self) -> None:
        top = tempfile.mkdtemp(prefix="ftx-longroot-")
        self.addCleanup(shutil.rmtree, top, True)
        root = top
        while MAX_ROOT - len(os.fsencode(root)) > 250:
            root = os.path.join(root, "r" * 200)
        root = os.path.join(root, "x" * (MAX_ROOT - 1 - len(os.fsencode(root))))
        os.makedirs(root)
        self.assertEqual(len(os.fsencode(root)), MAX_ROOT)
        server = ServerProcess(root)
        self.addCleanup(server.stop)
        client = RawClient(server.port)
        self.addCleanup(client.close)
        name = nameOfLength(b"deep", MAX_NAME)
        self.assertTrue(client.put(name, b"z").startswith(b"226 "))
        self.assertEqual(client.listing(), [name])
        self.assertTrue(client.command(b"sget " + name).startswith(b"150 "))

    def test_rootTooLong(self) -> None:
        top = tempfile.mkdtemp(prefix="ftx-longroot-")
        self.addCleanup(shutil.rmtree, top, True)
        root = top
        while len(os.fsencode(root)) <= MAX_ROOT:
            root = os.path.join(root, "r" * 200)
        os.makedirs(root)
        self.assertRaises(ValueError, FilesystemStorage, root)
        # twistd says so in one line rather than a traceback.
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--root", root])
        self.assertIn("2000 bytes", str(error))


class ListableTests(SynchronousTestCase):
    """
    L{listable} is L{splitName}'s verdict without the exception: ``list``
    shows exactly the names a client may ask for.
    """

    def test_agreesWithSplitName(self) -> None:
        names = [
            b"a", b"a/b", b"", b"/a", b"a/", b"a//b", b"./a", b"a/..", b"a\\b", b"a\x00b", b"a\x1bb", b"a\x7f",
            b"x" * MAX_SEGMENT, b"x" * (MAX_SEGMENT + 1), b"a/" * 127 + b"b", b"a/" * 128 + b"b",
            nameOfLength(b"d", MAX_NAME), nameOfLength(b"d", MAX_NAME + 1), b"a.ftx-partial",
            b".b.ftx-partial/c", "\u00e9".encode(), b"\xff\xfe", b".", b"..", b"a/.", b"a/./b", b"...", b".a",
            b"a..b", b"../a", b"a/..b", b"x.ftx-partialx", b"x" * 250 + b"/y", b"y/" + b"x" * 243 + b"/z",
        ]
        for name in names:
            try:
                splitName(name)
            except PermissionDenied:
                accepted = False
            else:
                accepted = True
            self.assertEqual(listable(name), accepted, name)


@SERVER.serves
class ResumedPutTests(_RawTestCase):
    def _cutOff(self, server: ServerProcess, name: bytes, size: int, sent: bytes) -> None:
        """
        Start C{put NAME SIZE}, send C{sent} of the body, and drop the
        connection; returns once the server holds those bytes.
        """
        client = RawClient(server.port)
        try:
            self.assertEqual(client.command(b"put %s %d" % (name, size)), b"350 0")
            client.socket.sendall(sent)
        finally:
            client.close()
        expected = b"214 %d %s" % (len(sent), sha1(sent).encode())
        probe = self.connect()
        self.assertTrue(waitFor(lambda: probe.command(b"partial " + name) == expected, READ_TIMEOUT, 0.02))

    def resume(self, client: RawClient, line: bytes) -> bytes:
        """
        Send C{line} once the cut-off upload's lock is given back: the
        server notices the dropped connection a moment after it holds its
        bytes, and until then answers C{409} and changes nothing.
        """
        replies = []

        def answered() -> bool:
            replies.append(client.command(line))
            return not replies[-1].startswith(b"409 ")

        waitFor(answered, READ_TIMEOUT, 0.02)
        return replies[-1]

    def test_offsetBeyondWhatTheServerHolds(self) -> None:
        server = SERVER(self)
        name = self.scratch(server) + b"/f.bin"
        data = b"0123456789"
        self._cutOff(server, name, 10, data[:6])
        client = self.connect()
        reply = self.resume(client, b"put %s 10 7 %s" % (name, sha1(data[:7]).encode()))
        self.assertTrue(reply.startswith(b"416 bad-offset "), reply)
        reply = client.command(b"put %s 10 11 %s" % (name, sha1(data[:7]).encode()))
        self.assertTrue(reply.startswith(b"416 bad-offset "), reply)
        # Nothing changed: the server still holds the six bytes.
        self.assertEqual(client.command(b"partial " + name), b"214 6 " + sha1(data[:6]).encode())

    def test_wrongPrefixKeepsWhatIsHeld(self) -> None:
        server = SERVER(self)
        name = self.scratch(server) + b"/f.bin"
        self._cutOff(server, name, 10, b"012345")
        client = self.connect()
        reply = self.resume(client, b"put %s 10 4 %s" % (name, sha1(b"abcd").encode()))
        self.assertTrue(reply.startswith(b"422 integrity "), reply)
        self.assertEqual(client.command(b"partial " + name), b"214 6 " + sha1(b"012345").encode())

    def test_smallerOffsetAndAnotherSize(self) -> None:
        """
        Resuming from fewer bytes than the server holds, with a different
        size than the first attempt announced, stores the new file.
        """
        server = SERVER(self)
        name = self.scratch(server) + b"/f.bin"
        self._cutOff(server, name, 10, b"012345")
        client = self.connect()
        whole = b"0123WXYZ"
        self.assertEqual(self.resume(client, b"put %s 8 4 %s" % (name, sha1(b"0123").encode())), b"350 4")
        client.socket.sendall(whole[4:])
        self.assertEqual(client.command(b"sha1 " + sha1(whole).encode()), b"226 %s 8 %s" % (name, sha1(whole).encode()))
        self.assertEqual((server.rootPath / name.decode()).read_bytes(), whole)
        self.assertEqual(client.command(b"partial " + name), b"214 0 " + sha1(b"").encode())

    def test_offsetZeroStartsOver(self) -> None:
        server = SERVER(self)
        name = self.scratch(server) + b"/f.bin"
        self._cutOff(server, name, 10, b"012345")
        client = self.connect()
        self.assertEqual(self.resume(client, b"put %s 3 0 %s" % (name, sha1(b"whatever").encode())), b"350 0")
        client.socket.sendall(b"new")
        self.assertTrue(client.command(b"sha1 " + sha1(b"new").encode()).startswith(b"226 "))
        self.assertEqual((server.rootPath / name.decode()).read_bytes(), b"new")


@SERVER.serves
class PutTests(_RawTestCase):
    def test_createsFoldersAndReplaces(self) -> None:
        server = SERVER(self)
        client = self.connect()
        folder = self.scratch(server)
        name = folder + b"/a/b/c.txt"
        self.assertTrue(client.put(name, b"first").startswith(b"226 "))
        self.assertTrue((server.rootPath / folder.decode() / "a" / "b").is_dir())
        self.assertTrue(client.put(name, b"second!").startswith(b"226 "))
        self.assertEqual((server.rootPath / name.decode()).read_bytes(), b"second!")

    def test_folderInTheWay(self) -> None:
        server = SERVER(self)
        client = self.connect()
        folder = self.scratch(server)
        self.assertTrue(client.put(folder + b"/d/f", b"x").startswith(b"226 "))
        self.assertTrue(client.command(b"put %s/d 1" % folder).startswith(b"409 conflict "))
        self.assertTrue(client.command(b"put %s/d/f/g 1" % folder).startswith(b"404 not-found "))


@SERVER.serves
class FeatureTests(_RawTestCase):
    def test_fullServer(self) -> None:
        client = self.connect()
        code, version, features = client.greeting.split(b" ")
        self.assertEqual((code, version), (b"220", b"ftx/1"))
        features = features.split(b",")
        for feature in (b"list", b"sget", b"mget", b"hash", b"cget", b"put", b"resume", b"delete", b"df", b"quit"):
            self.assertIn(feature, features)
        self.assertEqual(client.command(b"noop"), b"200 ok")
        self.assertEqual(client.command(b"checksum sha1"), b"200 checksum sha1")
        if b"xxh128" in features:
            self.assertEqual(client.command(b"checksum xxh128"), b"200 checksum xxh128")
        self.assertTrue(client.command(b"checksum SHA1").startswith(b"400 bad-request "))

    def test_readOnlyServerOffersNoWrites(self) -> None:
        server = serverFor(self, "--read-only", files={"a.txt": b"a"})
        client = self.connect(server)
        features = client.greeting.split(b" ")[2].split(b",")
        for feature in (b"put", b"resume", b"delete"):
            self.assertNotIn(feature, features)
        for feature in (b"list", b"sget", b"mget", b"hash", b"cget", b"df", b"quit"):
            self.assertIn(feature, features)
        for command in (b"put b.txt 1", b"delete a.txt", b"partial a.txt"):
            self.assertTrue(client.command(command).startswith(b"403 permission-denied "), command)


@SERVER.serves
class CaseAndLineEndTests(_RawTestCase):
    def test_commandsInAnyCase(self) -> None:
        client = self.connect()
        self.assertEqual(client.command(b"NOOP"), b"200 ok")
        self.assertEqual(client.command(b"Hash sub/a.txt"), b"213 " + sha1(b"a").encode() + b" 1")

    def test_upperCaseDigests(self) -> None:
        server = SERVER(self)
        client = self.connect()
        reply = client.command(b"cget sub/deep/er/b.txt 0 " + sha1(b"").upper().encode())
        self.assertEqual(reply, b"150 sub/deep/er/b.txt 1 0")
        client.readExactly(1)
        self.assertEqual(client.readLine(), b"250 " + sha1(b"b").encode())
        name = self.scratch(server) + b"/u.txt"
        self.assertEqual(client.command(b"put %s 2" % name), b"350 0")
        client.socket.sendall(b"up")
        self.assertEqual(client.command(b"sha1 " + sha1(b"up").upper().encode()), b"226 %s 2 %s" % (name, sha1(b"up").encode()))

    def test_bareLineFeedEndsALine(self) -> None:
        """
        A line ending in LF alone is answered (it used to wait for a CR LF
        that never came), and the answer still ends in CR LF.
        """
        server = SERVER(self)
        client = self.connect()
        self.assertEqual(client.command(b"noop", end=b"\n"), b"200 ok")
        self.assertEqual(client.listing(b"sub/a.txt"), [b"sub/a.txt"])
        name = self.scratch(server) + b"/lf.txt"
        self.assertTrue(client.put(name, b"lf", end=b"\n").startswith(b"226 "))
        self.assertEqual((server.rootPath / name.decode()).read_bytes(), b"lf")

    def test_otherCarriageReturnsAreRefused(self) -> None:
        client = self.connect()
        self.assertTrue(client.command(b"noop\r", end=b"\r\n").startswith(b"400 bad-request "))
        self.assertTrue(client.command(b"no\rop", end=b"\n").startswith(b"400 bad-request "))
        self.assertEqual(client.command(b"noop"), b"200 ok")

    def test_longestLine(self) -> None:
        """
        16,384 bytes without the line end are a line, whichever the end;
        one more byte is ``400`` and the server closes.
        """
        client = self.connect()
        longest = b"noop " + b"x" * (16384 - 5)
        # noop takes no argument check: the line is read and answered.
        self.assertEqual(client.command(longest, end=b"\n"), b"200 ok")
        self.assertEqual(client.command(longest), b"200 ok")
        self.assertTrue(client.command(longest + b"x", end=b"\n").startswith(b"400 bad-request "))
        self.assertTrue(client.closedByServer())


@SERVER.serves
class FieldTests(_RawTestCase):
    def test_lenientDecoding(self) -> None:
        """
        A character that should have been encoded stands for its UTF-8
        bytes, C{+} is a plus, a stray C{%} is C{400}.
        """
        client = self.connect()
        self.assertEqual(client.listing("\u00e9x".encode()), [b"%C3%A9x"])
        self.assertEqual(client.listing(b"%c3%a9x"), [b"%C3%A9x"])
        self.assertEqual(client.listing(b"a+b"), [])
        self.assertTrue(client.command(b"sget a%2").startswith(b"400 bad-request "))
        self.assertTrue(client.command(b"sget a%zz").startswith(b"400 bad-request "))

    def test_emptyLineAndDoubleSpace(self) -> None:
        client = self.connect()
        self.assertTrue(client.command(b"").startswith(b"400 bad-request "))
        self.assertTrue(client.command(b"list  *").startswith(b"400 bad-request "))
        self.assertEqual(client.command(b"noop"), b"200 ok")

    def test_deleteFolderAndLink(self) -> None:
        server = SERVER(self)
        client = self.connect()
        folder = self.scratch(server)
        self.assertTrue(client.put(folder + b"/f", b"x").startswith(b"226 "))
        self.assertTrue(client.command(b"delete " + folder).startswith(b"409 conflict "))
        self.assertTrue(client.command(b"delete outward").startswith(b"403 permission-denied "))
        os.symlink("f", str(server.rootPath / folder.decode() / "link"))
        self.assertEqual(client.command(b"delete %s/link" % folder), b"200 deleted %s/link" % folder)
        self.assertTrue((server.rootPath / folder.decode() / "f").exists())

    def test_numbers(self) -> None:
        """
        Decimal, no sign, no leading zero, at most 2**63 - 1.
        """
        client = self.connect()
        self.assertEqual(client.command(b"hash sub/a.txt 0"), b"213 " + sha1(b"").encode() + b" 0")
        for field in (b"01", b"+1", b"-1", b"1.0", str(2**63).encode()):
            self.assertTrue(client.command(b"hash sub/a.txt " + field).startswith(b"400 bad-request "), field)
        reply = client.command(b"hash sub/a.txt " + str(2**63 - 1).encode())
        self.assertTrue(reply.startswith(b"416 bad-offset "), reply)


class _NameLimitContract:
    """
    Every storage backend refuses the names the page refuses, with the
    same error, before touching anything: the limits live in
    L{ftx.protocol.names}, not in a backend.
    """

    def test_limitsOnEveryBackend(self) -> None:
        storage = self.makeStorage({b"a.txt": b"a"})
        for name in (b"s" * (MAX_SEGMENT + 1), nameOfLength(b"d", MAX_NAME + 1), b"a/" * MAX_DEPTH + b"b"):
            self.assertRaises(PermissionDenied, storage.beginUpload, name, 1)
            self.assertRaises(PermissionDenied, storage.openForRead, name)
            self.assertRaises(PermissionDenied, storage.listFiles, name)
        upload = storage.beginUpload(b"s" * MAX_SEGMENT, 1)
        upload.store(b"x")
        upload.hasher.update(b"x")
        upload.finish(sha1(b"x"))
        self.assertEqual([f.name for f in storage.listFiles()], [b"a.txt", b"s" * MAX_SEGMENT])


class NameLimitsOnFilesystem(_NameLimitContract, OnFilesystem, SynchronousTestCase):
    pass


class NameLimitsInMemory(_NameLimitContract, InMemory, SynchronousTestCase):
    pass
