"""
The web view's rate limits over real loopback sockets: C{twistd ftx
--limit-rate --http-port} holds a curl download to the rate within a few
percent and still resumes it with C{curl -C -}; in-process, the server's
C{--limit-total} is shared by a web download and a protocol download at
once, and an account's C{rate=} holds its web downloads.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time

import trustme
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io.ratelimit import stepFor
from ftx.client.api import connect
from ftx.server.accounts import AccessControl, AccessRules
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from ftx.server.ratelimit import ServerRates
from ftx.server.web.ranges import RangeProducer
from tests.connections import Connections
from tests.support import ServerProcess, sha1, temporaryFolder, writeRandom
from tests.test_ratelimit_sockets import RATE, SIZE, fastest
from tests.test_web import _basic
from tests.test_web_twistd import _needCurl, curl, webPort
from tests.webtools import fetch, serveWeb

#: The twistd test's limit: 1 MB/s, a 2 MB file, two seconds.
TWISTD_RATE = 1_000_000
TWISTD_SIZE = 2_000_000


class TwistdLimitTests(SynchronousTestCase):
    """
    As a user runs it: C{twistd ftx --limit-rate 1MB/s --http-port ...},
    downloaded with curl.
    """

    def setUp(self) -> None:
        _needCurl()
        base = temporaryFolder(self, "ftx-webrate-")
        self.root, self.local = os.path.join(base, "root"), os.path.join(base, "local")
        os.mkdir(self.root)
        os.mkdir(self.local)
        self.digest = writeRandom(os.path.join(self.root, "big.bin"), TWISTD_SIZE, seed=11)
        server = ServerProcess(self.root, "--limit-rate", "1MB/s", "--http-port", "tcp:0:interface=127.0.0.1")
        self.addCleanup(server.stop)
        self.url = "http://127.0.0.1:{}/big.bin".format(webPort(server))

    def download(self, *args: str):
        """
        curl into the local file; its bytes and the seconds from the first
        byte to the last (curl's own timing).
        """
        out = os.path.join(self.local, "big.bin")
        result = curl(*args, "-o", out, "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}", self.url)
        self.assertEqual(result.returncode, 0, result.stderr)
        code, size, first, total = result.stdout.decode().split()
        return code, int(size), float(total) - float(first)

    def assertRate(self, size: int, seconds: float) -> None:
        """
        The body came at the limit: never faster (a first step may come at
        once, hence the step's allowance), and not much slower.
        """
        measured = size / seconds
        error = (measured - TWISTD_RATE) / TWISTD_RATE
        self.assertLessEqual(measured, (size + stepFor(TWISTD_RATE)) / size * TWISTD_RATE * 1.02, error)
        self.assertGreaterEqual(measured, TWISTD_RATE * 0.93, error)

    def test_rateHeld(self) -> None:
        code, size, seconds = self.download()
        self.assertEqual((code, size), ("200", TWISTD_SIZE))
        self.assertEqual(sha1(os.path.join(self.local, "big.bin")), self.digest)
        self.assertRate(size, seconds)

    def test_rangeResumeUnderTheLimit(self) -> None:
        """
        C{curl -C -} of a file whose first 40% is here: 206, the rest at
        the rate, the whole byte-identical.
        """
        kept = TWISTD_SIZE * 2 // 5
        with open(os.path.join(self.root, "big.bin"), "rb") as f, open(os.path.join(self.local, "big.bin"), "wb") as out:
            out.write(f.read(kept))
        code, size, seconds = self.download("-C", "-")
        self.assertEqual((code, size), ("206", TWISTD_SIZE - kept))
        self.assertEqual(sha1(os.path.join(self.local, "big.bin")), self.digest)
        self.assertRate(size, seconds)


def processCPU(pid: int) -> float:
    """
    The CPU seconds process C{pid} has used (user and system).
    """
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TwistdTLSLimitTests(SynchronousTestCase):
    def test_limitedOverTLSDoesNotSpin(self) -> None:
        """
        Over an C{ssl:} --http-port the limit holds too, and the server
        waits for its tokens idle: a producer called in a loop while the
        bucket is empty would burn a core for the whole download.
        """
        _needCurl()
        base = temporaryFolder(self, "ftx-webrate-")
        root = os.path.join(base, "root")
        os.mkdir(root)
        size = TWISTD_RATE
        digest = writeRandom(os.path.join(root, "a.bin"), size, seed=12)
        ca = trustme.CA()
        pem, caFile = os.path.join(base, "server.pem"), os.path.join(base, "ca.pem")
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
        ca.cert_pem.write_to_path(caFile)
        http = "ssl:0:interface=127.0.0.1:privateKey={0}:certKey={0}".format(pem)
        server = ServerProcess(root, "--limit-rate", "1MB/s", "--http-port", http)
        self.addCleanup(server.stop)
        url = "https://127.0.0.1:{}/a.bin".format(webPort(server))
        # The first request hashes the file for its ETag: not what is measured.
        self.assertEqual(curl("--cacert", caFile, "-I", url).returncode, 0)
        out = os.path.join(base, "a.bin")
        before = processCPU(server.process.pid)
        result = curl("--cacert", caFile, "-o", out, "-w", "%{time_starttransfer} %{time_total}", url)
        spent = processCPU(server.process.pid) - before
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sha1(out), digest)
        first, total = (float(t) for t in result.stdout.split())
        self.assertGreaterEqual(total - first, (size - stepFor(TWISTD_RATE)) / TWISTD_RATE * 0.98)
        self.assertLess(spent, 0.5)


class SharedLimitTests(TestCase):
    def setUp(self) -> None:
        base = temporaryFolder(self, "ftx-webrate-")
        self.root, self.local = os.path.join(base, "root"), os.path.join(base, "local")
        os.mkdir(self.root)
        os.mkdir(self.local)
        self.connections = Connections(self, reactor)

    async def test_totalSharedWithTheProtocol(self):
        """
        C{--limit-total}: a web download and a protocol download at once
        take together as long as the total allows, and both are intact.
        """
        web = writeRandom(os.path.join(self.root, "w.bin"), SIZE // 2, seed=1)
        ftx = writeRandom(os.path.join(self.root, "f.bin"), SIZE // 2, seed=2)
        storage = FilesystemStorage(self.root)
        factory = self.connections.serve(FtxServerFactory(storage, reactor, ServerPolicy(limitTotal=RATE)))
        port = await self.connections.listen(self.root, factory)
        url = await serveWeb(self, reactor, storage, factory.access, factory.rates)
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
        calls = []
        send = RangeProducer._sendChunk

        def counted(producer):
            calls.append(1)
            return send(producer)

        self.patch(RangeProducer, "_sendChunk", counted)
        started = time.monotonic()
        try:
            results = await DeferredList(
                [ensureDeferred(fetch(reactor, url + "/w.bin")), client.sget("f.bin", os.path.join(self.local, "f.bin"))],
                consumeErrors=True,
            )
            took = time.monotonic() - started
        finally:
            await client.quit()
        self.assertEqual([ok for ok, _ in results], [True, True], results)
        response, body = results[0][1]
        self.assertEqual((response.code, hashlib.sha1(body).hexdigest()), (200, web))
        self.assertEqual(sha1(os.path.join(self.local, "f.bin")), ftx)
        self.assertGreaterEqual(took, fastest(SIZE, RATE))
        # About a call per step and one per wait: no loop while waiting.
        self.assertLess(len(calls), 4 * (SIZE // 2) // stepFor(RATE) + 20)

    async def test_accountRate(self):
        """
        C{rate=} in the access file holds alice's web downloads; carol,
        without one, is not held.
        """
        digest = writeRandom(os.path.join(self.root, "a.bin"), SIZE, seed=3)
        storage = FilesystemStorage(self.root)
        access = AccessControl(
            storage, AccessRules.parse("alice r rate={}\ncarol r\n".format(RATE)),
            [InMemoryUsernamePasswordDatabaseDontUse(alice=b"a", carol=b"c")], None, reactor=reactor, loginDelay=0,
        )
        url = await serveWeb(self, reactor, storage, access, ServerRates(reactor))
        timings = {}
        for user, password in (("alice", "a"), ("carol", "c")):
            started = time.monotonic()
            response, body = await fetch(reactor, url + "/a.bin", headers=_basic(user, password))
            timings[user] = time.monotonic() - started
            self.assertEqual((response.code, hashlib.sha1(body).hexdigest()), (200, digest), user)
        self.assertGreaterEqual(timings["alice"], fastest(SIZE, RATE))
        self.assertLess(timings["carol"], fastest(SIZE, RATE) / 2)


class _StalledReader(Protocol):
    """
    Asks for a file and then reads nothing, with a small receive buffer.
    """

    def __init__(self, path: bytes) -> None:
        self.path = path

    def connectionMade(self) -> None:
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        self.transport.write(b"GET " + self.path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.transport.pauseProducing()


class StalledReaderTests(TestCase):
    async def test_serverHoldsNoMoreThanTheSocketDoes(self):
        """
        A client that stops reading stops the download: the producer is
        paused with the connection's buffer, and reads no more of the file
        than the sockets hold (here 32 MiB would all go into memory).
        """
        base = temporaryFolder(self, "ftx-webrate-")
        root = os.path.join(base, "root")
        os.mkdir(root)
        writeRandom(os.path.join(root, "big.bin"), 32 << 20, seed=13)
        url = await serveWeb(self, reactor, FilesystemStorage(root))
        sent = []
        send = RangeProducer._sendChunk

        def counted(producer):
            before = producer.left
            send(producer)
            sent.append(before - producer.left)

        self.patch(RangeProducer, "_sendChunk", counted)
        port = int(url.rsplit(":", 1)[1])
        client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), _StalledReader(b"/big.bin"))
        self.addCleanup(client.transport.abortConnection)
        # Until the sending stops (the file's ETag is hashed first).
        last, steady = -1, 0
        for _ in range(100):
            await deferLater(reactor, 0.1, lambda: None)
            total = sum(sent)
            steady = steady + 1 if total == last and total > 0 else 0
            last = total
            if steady >= 5:
                break
        self.assertGreaterEqual(steady, 5, "the sending never stopped: {} bytes".format(last))
        self.assertLess(last, 8 << 20)
