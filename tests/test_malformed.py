"""
Malformed input, generated: random bytes, command-shaped lines with wrong
argument counts and bad numbers, uploads whose body is shorter or longer
than announced or never ends, over-long lines. Each bad line gets an error
reply and the connection goes on (an over-long line closes it cleanly);
nothing reaches the log as an unhandled failure; a second client on the
same server is not disturbed.
"""

import gc
import hashlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from ftx.protocol.wire import MAX_LINE_LENGTH
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from tests.reliability import TempDirs, record
from tests.support import InlineReactor

SETTINGS = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))

VERBS = ["list", "sget", "mget", "hash", "cget", "put", "partial", "delete", "df", "noop", "login", "LIST", "Sget"]
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "-0", "+1", "01", "1e3", "0x10", "1.5", "NaN", "\u0661", "9" * 30, str(2**63), str(2**63 - 1)]),
)
NAMES = st.one_of(
    st.sampled_from(["a.txt", "sub/b.txt", "missing", "%", "%zz", "%41", "..", "a%20b", "%ff%fe", "sub"]),
    st.text(min_size=0, max_size=30).filter(lambda t: "\r\n" not in t),
)
DIGESTS = st.one_of(st.text(alphabet="0123456789abcdefABCDEFxyz", min_size=0, max_size=44), st.just("0" * 40))
FIELD = st.one_of(NUMBERS, NAMES, DIGESTS)


class _Server:
    def makeServer(self, policy=None):
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "sub"))
        with open(os.path.join(root, "a.txt"), "wb") as f:
            f.write(b"hello world")
        with open(os.path.join(root, "sub", "b.txt"), "wb") as f:
            f.write(b"b")
        self.root = root
        self.reactor = InlineReactor()
        self.factory = FtxServerFactory(FilesystemStorage(root), self.reactor, policy)

    def connect(self):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        transport.clear()
        return proto, transport

    def send(self, proto, transport, data):
        transport.clear()
        proto.dataReceived(data)
        for _ in range(1000):
            if transport.producer is None or transport.streaming:
                break
            transport.producer.resumeProducing()
        return transport.value()

    def assertStillServing(self, proto, transport):
        """
        The connection is open and answers the next command.
        """
        self.assertFalse(transport.disconnecting)
        self.assertTrue(self.send(proto, transport, b"noop\r\n").endswith(b"200 ok\r\n"))

    def assertOtherClientFine(self):
        proto, transport = self.connect()
        out = self.send(proto, transport, b"hash a.txt\r\n")
        self.assertEqual(out, b"213 " + hashlib.sha1(b"hello world").hexdigest().encode() + b" 11\r\n")
        proto.connectionLost(None)

    def assertNoFailures(self, events):
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(failures, [], failures[:1])

    def watchLogs(self):
        """
        Capture the log for the whole test; at the end, collect garbage so
        that a failed Deferred nobody handled is logged, and check that no
        failure at all was logged.
        """
        logs = capturedLogs()
        events = logs.__enter__()

        def check():
            gc.collect()
            logs.__exit__(None, None, None)
            self.assertNoFailures(events)

        self.addCleanup(check)


class MalformedLineTests(TempDirs, _Server, SynchronousTestCase):
    def setUp(self):
        self.makeServer()
        self.watchLogs()
        self.tried = 0
        self.crashes = 0

    def tearDown(self):
        record("malformed: inputs", self.tried, self.crashes, "tried", "crashes")

    def check(self, line: bytes):
        """
        One line on a fresh connection: a reply, no log failure, and the
        connection goes on (or, after 350, waits for a body and is dropped).
        """
        self.tried += 1
        proto, transport = self.connect()
        with capturedLogs() as events:
            out = self.send(proto, transport, line + b"\r\n")
            try:
                self.assertRegex(out[:4], rb"^[1-5]\d\d ", (line[:80], out[:120]))
                if out.startswith(b"350 "):
                    proto.connectionLost(None)
                else:
                    self.assertStillServing(proto, transport)
                    proto.connectionLost(None)
                self.assertNoFailures(events)
            except Exception:
                self.crashes += 1
                raise

    @settings(max_examples=300, **SETTINGS)
    @given(st.binary(max_size=300).filter(lambda b: b"\r\n" not in b and b"\n" not in b[-1:]))
    def test_randomBytes(self, line):
        verb = line.split(b" ", 1)[0].lower()
        if verb in (b"quit", b"put") or len(line) > MAX_LINE_LENGTH:
            line = b"x" + line
        self.check(line)

    @settings(max_examples=400, **SETTINGS)
    @given(st.sampled_from(VERBS), st.lists(FIELD, max_size=6))
    def test_commandShaped(self, verb, fields):
        line = " ".join([verb] + fields).encode("utf-8", "surrogatepass")
        self.check(line)

    @settings(max_examples=150, **SETTINGS)
    @given(st.binary(min_size=1, max_size=60).filter(lambda b: b"\r\n" not in b))
    def test_invalidUtf8(self, junk):
        self.check(b"sget \xff" + junk.replace(b"\n", b""))

    def test_overlongLineClosesCleanly(self):
        for size in (MAX_LINE_LENGTH + 1, MAX_LINE_LENGTH + 3, 100000):
            self.tried += 1
            proto, transport = self.connect()
            with capturedLogs() as events:
                out = self.send(proto, transport, b"sget " + b"a" * size)
                self.assertTrue(out.startswith(b"400 bad-request"), out[:100])
                self.assertTrue(transport.disconnecting)
                proto.connectionLost(None)
                self.assertNoFailures(events)
            self.assertOtherClientFine()


class MalformedBodyTests(TempDirs, _Server, SynchronousTestCase):
    def setUp(self):
        self.makeServer(ServerPolicy(idleTimeout=60))
        self.watchLogs()
        self.tried = 0
        self.crashes = 0

    def tearDown(self):
        record("malformed: inputs", self.tried, self.crashes, "tried", "crashes")

    @settings(max_examples=200, **SETTINGS)
    @given(
        st.integers(min_value=0, max_value=64),
        st.integers(min_value=-8, max_value=8),
        st.sampled_from(["good", "wrong", "garbage", "none", "upper"]),
        st.integers(min_value=0, max_value=2**32),
    )
    def test_putBodies(self, size, delta, trailer, seed):
        """
        A body shorter, as long as, or longer than announced, with a good,
        wrong, malformed or missing trailer.
        """
        self.tried += 1
        body = (hashlib.sha256(str(seed).encode()).digest() * 3)[: max(0, size + delta)]
        digest = hashlib.sha1(body[:size]).hexdigest()
        trailers = {
            "good": b"sha1 " + digest.encode(), "wrong": b"sha1 " + b"0" * 40,
            "garbage": b"sha2 xyz", "none": b"", "upper": b"sha1 " + digest.upper().encode(),
        }
        name = "up-{}.bin".format(self.tried)
        final = os.path.join(self.root, name)
        proto, transport = self.connect()
        try:
            with capturedLogs() as events:
                self.assertEqual(self.send(proto, transport, "put {} {}\r\n".format(name, size).encode()), b"350 0\r\n")
                out = self.send(proto, transport, body + trailers[trailer] + b"\r\n")
                complete = len(body) == size and trailer in ("good", "upper")
                if complete:
                    self.assertTrue(out.startswith(b"226 "), out[:100])
                    with open(final, "rb") as f:
                        self.assertEqual(f.read(), body)
                    self.assertStillServing(proto, transport)
                elif out == b"":
                    # Short body: the trailer was taken as body bytes and
                    # the server still waits; the client gives up.
                    self.assertLess(len(body), size)
                    self.assertFalse(os.path.exists(final))
                else:
                    self.assertRegex(out[:4], rb"^4\d\d ", out[:100])
                    self.assertFalse(os.path.exists(final))
                    self.assertStillServing(proto, transport)
                proto.connectionLost(None)
                self.assertNoFailures(events)
                self.assertEqual(os.path.exists(final), complete)
        except Exception:
            self.crashes += 1
            raise

    def test_bodyThatNeverFinishes(self):
        """
        The client stops halfway through a body: after the idle timeout the
        server closes the connection; the part received is kept for a
        resume, never under the final name.
        """
        self.tried += 1
        proto, transport = self.connect()
        with capturedLogs() as events:
            self.assertEqual(self.send(proto, transport, b"put stuck.bin 1000\r\n"), b"350 0\r\n")
            self.send(proto, transport, b"x" * 400)
            self.reactor.advance(59)
            self.assertFalse(transport.disconnecting)
            self.reactor.advance(2)
            self.assertTrue(transport.disconnecting)
            self.assertTrue(transport.value().startswith(b"503 unavailable"))
            proto.connectionLost(None)
            self.assertNoFailures(events)
        self.assertFalse(os.path.exists(os.path.join(self.root, "stuck.bin")))
        with open(os.path.join(self.root, ".stuck.bin.ftx-partial"), "rb") as f:
            self.assertEqual(f.read(), b"x" * 400)
        self.assertOtherClientFine()
