"""
Confinement: a corpus of attempts to leave the root, sent as a client
would send them, against every command. A sentinel directory beside the
root (and the files a link points to) must come out untouched: same
entries, bytes and modification times, nothing new, nothing of it in any
reply.
"""

import hashlib
import os
import threading
import time

from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from ftx.protocol.wire import EMPTY_SHA1, encodeName
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.reliability import TempDirs, record, snapshot
from tests.support import InlineReactor

SECRET = b"SENTINEL-SECRET-7f3a9c " * 40
SECRET_SHA1 = hashlib.sha1(SECRET).hexdigest().encode()
HIDDEN_NAME = b"only-outside-0d1e.txt"
BODY = b"PWNED"
BODY_SHA1 = hashlib.sha1(BODY).hexdigest().encode()


def _corpus(outside: bytes, root: bytes):
    """
    (raw wire field, description) pairs. Names are percent-encoded as a
    client would; a few fields are written by hand to try the decoder.
    """
    names = [
        b"..", b"../", b"../outside", b"../outside/secret.txt", b"../../etc/passwd",
        b"a.txt/../../outside/secret.txt", b"sub/../../outside/secret.txt", b"sub/../..",
        b"./../outside/secret.txt", b"sub/./../../outside", b"sub/..", b".", b"./a.txt",
        b"sub//../../outside", b"..//outside", b"../" * 40 + b"etc/passwd",
        b"/etc/passwd", b"//etc/passwd", outside + b"/secret.txt", root + b"/../outside/secret.txt",
        b"/", root,
        b"a.txt\x00../../outside/secret.txt", b"\x00", b"../outside/secret.txt\x00.txt",
        b"..\\outside\\secret.txt", b"sub\\..\\..\\outside", b"\\etc\\passwd",
        "\u2025/outside/secret.txt".encode(), "\uff0e\uff0e/outside/secret.txt".encode(),
        "..\u2215outside\u2215secret.txt".encode(), "..\u2044outside".encode(),
        "..\u200b/outside/secret.txt".encode(), ".\u0307./outside".encode(), "\u2024\u2024/outside".encode(),
        b"\xc0\xae\xc0\xae/outside/secret.txt", b"\xe0\x80\xae\xe0\x80\xae/outside",
        b"a" * 300, b"a/" * 3000 + b"b", b"x" * 4097, (b"d/" * 200) + b"f",
        b"a\r\nb", b"../outside\r\nsecret.txt", b"evil\n226 x", b"\r\n", b"tab\there",
        b"link-file", b"abs-link", b"link-dir", b"link-dir/secret.txt", b"link-dir/" + HIDDEN_NAME,
        b"sub/deep-link/s2.txt", b"sub/deep-link", b"dangle", b"loop", b"link-dir/../secret.txt",
        b".x.ftx-partial", b"a.txt.ftx-partial", b"sub/.y.ftx-partial",
        b"~/outside", b"$HOME/x", b"outside/secret.txt",
    ]
    fields = [(encodeName(n), n) for n in names]
    fields += [
        ("%2e%2e/outside/secret.txt", b"%2e%2e"), ("%2E%2E%2Foutside%2Fsecret.txt", b"%2E%2E%2F"),
        ("..%2foutside%2fsecret.txt", b"..%2f"), ("%252e%252e/outside/secret.txt", b"%252e"),
        ("%c0%ae%c0%ae/outside/secret.txt", b"%c0%ae"), ("%2e%2e%5coutside%5csecret.txt", b"%5c"),
        ("%2F" + encodeName(outside + b"/secret.txt"), b"%2F-absolute"), ("..%00/x", b"%00"),
        ("%0d%0a..%2f..%2fetc", b"%0d%0a"), ("%", b"lone %"), ("%zz", b"bad %"),
    ]
    return fields


MASKS = [
    b"*", b"*/*", b"../*", b"../outside/*", b"link-dir/*", b"link-dir", b"*/../../*", b"[.][.]/*",
    b"?./*", b"sub/deep-link/*", b"sub/*", b"*/*/*", b".*", b"/*", b"..*/*",
]


class ConfinementTests(TempDirs, SynchronousTestCase):
    def setUp(self):
        base = os.path.abspath(self.mktemp()).encode()
        self.base = base
        root, outside = base + b"/root", base + b"/outside"
        self.root, self.outside = root, outside
        os.makedirs(root + b"/sub")
        os.makedirs(outside + b"/subdir")
        with open(outside + b"/secret.txt", "wb") as f:
            f.write(SECRET)
        with open(outside + b"/" + HIDDEN_NAME, "wb") as f:
            f.write(SECRET)
        with open(outside + b"/subdir/s2.txt", "wb") as f:
            f.write(SECRET)
        with open(root + b"/a.txt", "wb") as f:
            f.write(b"inside")
        with open(root + b"/sub/b.txt", "wb") as f:
            f.write(b"inside too")
        os.symlink(b"../outside/secret.txt", root + b"/link-file")
        os.symlink(outside + b"/secret.txt", root + b"/abs-link")
        os.symlink(b"../outside", root + b"/link-dir")
        os.symlink(b"../../outside/subdir", root + b"/sub/deep-link")
        os.symlink(b"../outside/not-yet-there", root + b"/dangle")
        os.symlink(b"loop", root + b"/loop")
        os.symlink(b"a.txt", root + b"/inside-link")
        os.symlink(b"sub", root + b"/inside-dir")
        self.factory = FtxServerFactory(FilesystemStorage(root), InlineReactor())
        self.before = snapshot(outside)
        self.beforeBase = snapshot(base, skip=root)
        self.outputs = []

    def connect(self):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def send(self, proto, transport, data: bytes) -> bytes:
        transport.clear()
        proto.dataReceived(data)
        for _ in range(10000):
            if transport.producer is None or transport.streaming:
                break
            transport.producer.resumeProducing()
        out = transport.value()
        self.outputs.append(out)
        return out

    def attempt(self, proto, transport, field: str) -> int:
        """
        The field against every command; returns how many requests went.
        """
        commands = [
            "list " + field, "sget " + field, "mget " + field, "hash " + field, "hash " + field + " 3",
            "cget " + field + " 0 " + EMPTY_SHA1, "partial " + field, "delete " + field,
        ]
        for command in commands:
            out = self.send(proto, transport, command.encode("utf-8") + b"\r\n")
            self.assertRegex(out[:4], rb"^\d\d\d ", (command, out[:200]))
        out = self.send(proto, transport, "put {} {}\r\n".format(field, len(BODY)).encode("utf-8"))
        if out.startswith(b"350"):
            out = self.send(proto, transport, BODY + b"sha1 " + BODY_SHA1 + b"\r\n")
        self.assertRegex(out[:4], rb"^\d\d\d ", (field, out[:200]))
        return len(commands) + 1

    def assertNothingEscaped(self):
        self.assertEqual(snapshot(self.outside), self.before)
        self.assertEqual(snapshot(self.base, skip=self.root), self.beforeBase)
        everything = b"".join(self.outputs)
        for marker in (b"SENTINEL-SECRET", SECRET_SHA1):
            self.assertNotIn(marker, everything, "sentinel content or digest leaked")
        # Error replies echo the name the client sent; what the server lists
        # or sends on its own must never name a file that lives outside.
        for line in everything.split(b"\r\n"):
            if line[:1] in (b"1", b"2"):
                self.assertNotIn(HIDDEN_NAME, line, "a name from outside the root was listed")
                self.assertNotIn(b"s2.txt", line, "a name from outside the root was listed")

    def test_corpusAgainstEveryCommand(self):
        """
        Every name in the corpus, with every command: refused, or acted on
        strictly inside the root.
        """
        proto, transport = self.connect()
        tried = 0
        fields = _corpus(self.outside, self.root)
        self.assertGreaterEqual(len(fields), 50)
        with capturedLogs() as events:
            for field, _ in fields:
                tried += self.attempt(proto, transport, field)
            for mask in MASKS:
                for verb in ("list", "mget"):
                    self.send(proto, transport, b"%s %s\r\n" % (verb.encode(), encodeName(mask).encode()))
                    tried += 1
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(failures, [])
        self.assertFalse(transport.disconnecting)
        escaped = 0
        try:
            self.assertNothingEscaped()
        except AssertionError:
            escaped = 1
            raise
        finally:
            record("confinement: escape attempts", tried, escaped, "tried", "escapes")

    def test_linksLeadingOutsideAreInvisibleAndRefused(self):
        proto, transport = self.connect()
        listing = self.send(proto, transport, b"list\r\n")
        names = [line.split(b" ")[1] for line in listing.split(b"\r\n") if line.startswith(b"210 ")]
        # Links that stay inside are followed; links that leave are not listed.
        self.assertEqual(sorted(names), [b"a.txt", b"inside-link", b"sub/b.txt"])
        for name in (b"link-file", b"abs-link", b"link-dir/secret.txt", b"sub/deep-link/s2.txt"):
            self.assertTrue(self.send(proto, transport, b"sget " + name + b"\r\n").startswith(b"403 "), name)
        self.assertTrue(self.send(proto, transport, b"sget inside-link\r\n").startswith(b"150 inside-link 6 0"))
        self.assertTrue(self.send(proto, transport, b"sget inside-dir/b.txt\r\n").startswith(b"150 "))
        # put and delete act on a link inside the root itself, never on what
        # it points to; links that lead out are refused like everywhere.
        self.assertTrue(self.send(proto, transport, b"delete link-file\r\n").startswith(b"403 "))
        self.assertTrue(self.send(proto, transport, b"put dangle 5\r\n").startswith(b"403 "))
        self.assertTrue(self.send(proto, transport, b"delete inside-link\r\n").startswith(b"200 "))
        self.assertTrue(os.path.exists(self.root + b"/a.txt"))
        self.assertTrue(self.send(proto, transport, b"put inside-dir/new.txt 5\r\n").startswith(b"350 "))
        self.send(proto, transport, BODY + b"sha1 " + BODY_SHA1 + b"\r\n")
        self.assertTrue(os.path.isfile(self.root + b"/sub/new.txt"))
        self.assertNothingEscaped()

    def test_linkSwappedBetweenCheckAndUse(self):
        """
        A thread keeps swapping a file and a directory inside the root for
        links to the sentinel while every command runs against them.
        """
        inner = self.root + b"/swapdir"
        os.makedirs(inner)
        with open(inner + b"/secret.txt", "wb") as f:
            f.write(b"harmless")
        with open(self.root + b"/swapfile", "wb") as f:
            f.write(b"harmless")
        stop = threading.Event()
        swaps = [0]

        def swapper():
            # Each step may meet a name the server just created or removed
            # (a put can mkdir swapdir while it is away): skip and go on.
            deadline = time.monotonic() + 5.0
            tmp = self.root + b"/.swap-tmp"
            steps = [
                lambda: os.symlink(b"../outside/secret.txt", tmp),
                lambda: os.replace(tmp, self.root + b"/swapfile"),
                lambda: open(tmp, "wb").close(),
                lambda: os.replace(tmp, self.root + b"/swapfile"),
                lambda: os.rename(inner, self.root + b"/.real"),
                lambda: os.symlink(b"../outside", inner),
                lambda: os.unlink(inner),
                lambda: os.rename(self.root + b"/.real", inner),
            ]
            while not stop.is_set() and time.monotonic() < deadline:
                for step in steps:
                    try:
                        step()
                    except OSError:
                        pass
                swaps[0] += 1

        thread = threading.Thread(target=swapper)
        thread.start()
        tried = 0
        proto, transport = self.connect()
        try:
            with capturedLogs() as events:
                for _ in range(40):
                    for field in ("swapfile", "swapdir/secret.txt", "swapdir", "swapdir/other.txt"):
                        tried += self.attempt(proto, transport, field)
        finally:
            stop.set()
            thread.join()
        self.assertGreater(swaps[0], 0)
        self.assertEqual([e for e in events if "log_failure" in e], [])
        escaped = 0
        try:
            self.assertNothingEscaped()
        except AssertionError:
            escaped = 1
            raise
        finally:
            record("confinement: escape attempts", tried, escaped, "tried", "escapes")
