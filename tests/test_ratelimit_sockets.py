"""
Rate limits over real loopback sockets: small files, a low limit, each
transfer no faster than the limit allows and intact; the server's limit
each way, its total shared by two clients, the client's own limit, and a
limited body over TLS (whose pull-producer loop must not spin while the
bucket is empty).
"""

from __future__ import annotations

import os
import re
import time

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io.filebody import BodySender
from ftx._io.ratelimit import TokenBucket, stepFor
from ftx.client.api import ClientTLS, connect
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from tests.connections import Connections
from tests.support import ServerProcess, runFtx, sha1, temporaryFolder, writeRandom
from tests.test_tls import PKI

#: Bytes a second: low enough that a half-megabyte file takes about a second.
RATE = 512 << 10
SIZE = 512 << 10


def fastest(size: int, rate: int) -> float:
    """
    The shortest time C{size} bytes may take at C{rate}: a connection idle
    for a while holds a full bucket (its burst) and a read may go a step
    into debt; the rest comes at the rate. 2% is left for the clocks of
    two ends.
    """
    bucket = TokenBucket(rate, Clock())
    return (size - bucket.burst - bucket.step) / rate * 0.98


class RateLimitSocketTests(TestCase):
    def setUp(self) -> None:
        self.base = temporaryFolder(self, "ftx-rate-")
        self.root = os.path.join(self.base, "root")
        self.local = os.path.join(self.base, "local")
        os.mkdir(self.root)
        os.mkdir(self.local)
        self.connections = Connections(self, reactor)

    async def serve(self, **policy):
        factory = self.connections.serve(
            FtxServerFactory(FilesystemStorage(self.root), reactor, ServerPolicy(**policy))
        )
        port = await self.connections.listen(self.root, factory)
        return "127.0.0.1:{}".format(port.getHost().port)

    async def timed(self, action):
        started = time.monotonic()
        await action
        return time.monotonic() - started

    async def test_serverLimitsDownloads(self):
        digest = writeRandom(os.path.join(self.root, "a.bin"), SIZE, seed=1)
        address = await self.serve(limitRate=RATE)
        client = await connect(reactor, address)
        try:
            took = await self.timed(client.sget("a.bin", os.path.join(self.local, "a.bin")))
        finally:
            await client.quit()
        self.assertEqual(sha1(os.path.join(self.local, "a.bin")), digest)
        self.assertGreaterEqual(took, fastest(SIZE, RATE))

    async def test_serverLimitsSmallFilesOfABatch(self):
        # Small files of an mget go out whole, without a body producer.
        digests = {}
        for n in range(8):
            digests["s{}.bin".format(n)] = writeRandom(os.path.join(self.root, "s{}.bin".format(n)), SIZE // 8, seed=n)
        address = await self.serve(limitRate=RATE)
        client = await connect(reactor, address)
        try:
            took = await self.timed(client.mget("s*.bin", self.local))
        finally:
            await client.quit()
        for name, digest in digests.items():
            self.assertEqual(sha1(os.path.join(self.local, name)), digest)
        self.assertGreaterEqual(took, fastest(SIZE, RATE))

    async def test_serverLimitsUploads(self):
        digest = writeRandom(os.path.join(self.local, "b.bin"), SIZE, seed=2)
        address = await self.serve(limitRate=RATE)
        client = await connect(reactor, address)
        try:
            took = await self.timed(client.put(os.path.join(self.local, "b.bin"), "b.bin"))
        finally:
            await client.quit()
        self.assertEqual(sha1(os.path.join(self.root, "b.bin")), digest)
        self.assertGreaterEqual(took, fastest(SIZE, RATE))

    async def test_totalIsSharedByTwoClients(self):
        for n in (1, 2):
            writeRandom(os.path.join(self.root, "{}.bin".format(n)), SIZE // 2, seed=n)
        address = await self.serve(limitTotal=RATE)
        clients = [await connect(reactor, address) for _ in (1, 2)]
        started = time.monotonic()
        finished = []

        async def fetch(client, n):
            await client.sget("{}.bin".format(n), os.path.join(self.local, "{}.bin".format(n)))
            finished.append(time.monotonic() - started)

        try:
            results = await DeferredList(
                [ensureDeferred(fetch(client, n)) for n, client in zip((1, 2), clients)], consumeErrors=True
            )
        finally:
            for client in clients:
                await client.quit()
        self.assertEqual([ok for ok, _ in results], [True, True])
        for n in (1, 2):
            self.assertEqual(sha1(os.path.join(self.local, "{}.bin".format(n))), sha1(os.path.join(self.root, "{}.bin".format(n))))
        # Together no faster than the total; in turns, so the first is not
        # done long before the second (alone it would take half the time).
        self.assertGreaterEqual(max(finished), fastest(SIZE, RATE))
        self.assertGreaterEqual(min(finished), 0.75 * max(finished))

    async def test_clientLimitsBothWays(self):
        digest = writeRandom(os.path.join(self.root, "c.bin"), SIZE, seed=3)
        address = await self.serve()
        client = await connect(reactor, address, limitRate=RATE)
        try:
            down = await self.timed(client.sget("c.bin", os.path.join(self.local, "c.bin")))
            up = await self.timed(client.put(os.path.join(self.local, "c.bin"), "back.bin"))
        finally:
            await client.quit()
        self.assertEqual(sha1(os.path.join(self.local, "c.bin")), digest)
        self.assertEqual(sha1(os.path.join(self.root, "back.bin")), digest)
        self.assertGreaterEqual(down, fastest(SIZE, RATE))
        self.assertGreaterEqual(up, fastest(SIZE, RATE))

    async def test_clientLimitsEncryptedUploads(self):
        from ftx.client.e2e import generateIdentity

        previous = os.environ.get("XDG_STATE_HOME")
        os.environ["XDG_STATE_HOME"] = os.path.join(self.base, "state")
        self.addCleanup(_restoreEnvironment, "XDG_STATE_HOME", previous)
        writeRandom(os.path.join(self.local, "e.bin"), SIZE, seed=7)
        identity = generateIdentity()
        address = await self.serve()
        client = await connect(reactor, address, limitRate=RATE)
        try:
            started = time.monotonic()
            sent = await client.put(os.path.join(self.local, "e.bin"), "e.age", encryptTo=[identity.recipient()])
            took = time.monotonic() - started
            back = os.path.join(self.local, "back.bin")
            await client.sget("e.age", back, identities=[identity])
        finally:
            await client.quit()
        self.assertEqual(sha1(back), sha1(os.path.join(self.local, "e.bin")))
        # The ciphertext streamed as it was made, held to the rate.
        self.assertGreaterEqual(took, fastest(sent.size, RATE))

    async def test_limitedBodyOverTLSDoesNotSpin(self):
        folder = os.path.join(self.base, "pki")
        os.mkdir(folder)
        pki = PKI(folder)
        digest = writeRandom(os.path.join(self.root, "d.bin"), SIZE, seed=4)
        calls = []
        resume = BodySender.resumeProducing

        def counted(sender):
            calls.append(1)
            return resume(sender)

        self.patch(BodySender, "resumeProducing", counted)
        factory = self.connections.serve(
            FtxServerFactory(FilesystemStorage(self.root), reactor, ServerPolicy(limitRate=RATE))
        )
        port, number = await self.connections.listenTLS(self.root, pki.server, factory=factory)
        client = await connect(reactor, "ssl:host=127.0.0.1:port={}".format(number), tls=ClientTLS(cafile=pki.serverCA))
        try:
            took = await self.timed(client.sget("d.bin", os.path.join(self.local, "d.bin")))
        finally:
            await client.quit()
        self.assertEqual(sha1(os.path.join(self.local, "d.bin")), digest)
        self.assertGreaterEqual(took, fastest(SIZE, RATE))
        # About one call per step (and one more per wait); a loop calling
        # the producer while the bucket is empty makes thousands.
        self.assertLess(len(calls), 4 * SIZE // stepFor(RATE) + 20)


class AccountLimitTests(TestCase):
    """
    C{rate=} in the access file: all of one account's connections share it.
    """

    async def test_accountConnectionsShareTheirRate(self):
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse

        from ftx.server.accounts import AccessControl, AccessRules

        base = temporaryFolder(self, "ftx-rate-")
        root, local = os.path.join(base, "root"), os.path.join(base, "local")
        os.mkdir(root)
        os.mkdir(local)
        for n in (1, 2):
            writeRandom(os.path.join(root, "{}.bin".format(n)), SIZE // 2, seed=n)
        connections = Connections(self, reactor)
        storage = FilesystemStorage(root)
        access = AccessControl(
            storage, AccessRules.parse("alice r rate={}\n".format(RATE)),
            [InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")], None, reactor=reactor,
        )
        factory = connections.serve(FtxServerFactory(storage, reactor, ServerPolicy(), access))
        port = await connections.listen(root, factory)
        address = "127.0.0.1:{}".format(port.getHost().port)
        clients = [await connect(reactor, address, credentials=("alice", "secret")) for _ in (1, 2)]
        started = time.monotonic()
        try:
            await DeferredList(
                [
                    client.sget("{}.bin".format(n), os.path.join(local, "{}.bin".format(n)))
                    for n, client in zip((1, 2), clients)
                ],
                fireOnOneErrback=True, consumeErrors=True,
            )
            took = time.monotonic() - started
        finally:
            for client in clients:
                await client.quit()
        for n in (1, 2):
            self.assertEqual(sha1(os.path.join(local, "{}.bin".format(n))), sha1(os.path.join(root, "{}.bin".format(n))))
        self.assertGreaterEqual(took, fastest(SIZE, RATE))


class CommandLineTests(SynchronousTestCase):
    """
    The options as a user types them: C{twistd ftx --limit-rate} and
    C{ftx --bwlimit} (a bare number of KiB/s, as rsync reads it).
    """

    def test_serverAndClientOptions(self):
        base = temporaryFolder(self, "ftx-rate-")
        root, local = os.path.join(base, "root"), os.path.join(base, "local")
        os.mkdir(root)
        os.mkdir(local)
        # Large enough for the command's threaded body reads, which a
        # limited connection must not use.
        size = 1280 << 10
        digest = writeRandom(os.path.join(root, "a.bin"), size, seed=5)
        with ServerProcess(root, "--limit-rate", "2M") as server:
            # The server allows 2 MiB/s; the client asks for 1024 KiB/s.
            down = runFtx(["--server", server.address, "-v", "--dir", local, "--bwlimit", "1024", "sget", "a.bin"])
            self.assertEqual(down.returncode, 0, down.stderr)
        self.assertEqual(sha1(os.path.join(local, "a.bin")), digest)
        self.assertGreaterEqual(_took(down.stderr), fastest(size, 1 << 20))


def _restoreEnvironment(name: str, previous) -> None:
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


def _took(stderr: bytes) -> float:
    """
    The seconds C{ftx -v} says its command took.
    """
    found = re.search(rb"took ([0-9.]+) s", stderr)
    if found is None:
        raise AssertionError("no timing in: {!r}".format(stderr))
    return float(found.group(1))
