"""
A download over S3 never blocks the server's event loop: files are opened
in a worker thread, and while the next window of a large object is on its
way from a slow engine, the body sender steps aside
(L{ftx.server.s3.reads.S3File.whenReadable}) and every other connection is
served. Over plain TCP and over TLS (where a pull
producer is otherwise polled in a loop), against the real engine made
slow by a delay on each ranged GET.
"""

from __future__ import annotations

import hashlib
import os
import time

from twisted.internet import reactor
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase

from ftx.client.api import ClientTLS, connect
from ftx.server.protocol import FtxServerFactory
from ftx.server.s3 import reads
from tests.connections import Connections
from tests.storages import OnS3
from tests.support import temporaryFolder

#: What the engine takes, on top of its own time, for each window.
DELAY = 0.6
#: The longest the event loop may go without a turn. Generous for a
#: loaded machine, well under DELAY: the blocking read waited DELAY.
LAG_BOUND = 0.35
WINDOW = 512 << 10
#: Three windows, fetched one after another (AHEAD is 1 here).
SIZE = 3 * WINDOW


class _SlowReads:
    """
    A boto3 client whose ranged reads of a download (the C{If-Match} GETs
    of the read-ahead), or with C{opens} the GETs that open a file, each
    take L{DELAY} longer; anything else passes.
    """

    def __init__(self, client, opens: bool = False) -> None:
        self._client = client
        self._opens = opens

    def get_object(self, **kwargs):
        if ("IfMatch" in kwargs) != self._opens:
            time.sleep(DELAY)
        return self._client.get_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


class _LagProbe:
    """
    A looping call every 10 ms; C{worst} is the longest gap between two
    of its calls.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self._last = time.monotonic()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._loop.start(0.01)

    def _tick(self) -> None:
        now = time.monotonic()
        self.worst = max(self.worst, now - self._last)
        self._last = now

    def stop(self) -> None:
        self._loop.stop()


class ResponsiveDownloadTests(OnS3, TestCase):
    def setUp(self) -> None:
        self.patch(reads, "WINDOW", WINDOW)
        self.patch(reads, "AHEAD", 1)
        self.data = os.urandom(SIZE)
        self.makeStorage({b"big.bin": self.data})
        self.s3.client = _SlowReads(self.s3.client)
        self.folder = temporaryFolder(self, "ftx-s3-reactor-")
        self.connections = Connections(self, reactor)
        self.factory = self.connections.serve(FtxServerFactory(self.storage, reactor))

    async def _download(self, address: str, **options) -> None:
        client = await connect(reactor, address, **options)
        target = os.path.join(self.folder, "big.bin")
        probe = _LagProbe()
        started = time.monotonic()
        try:
            await client.sget("big.bin", target)
        finally:
            probe.stop()
            await client.quit()
        with open(target, "rb") as f:
            self.assertEqual(hashlib.sha1(f.read()).hexdigest(), hashlib.sha1(self.data).hexdigest())
        # The download did wait for the slow engine: the probe ran meanwhile.
        self.assertGreater(time.monotonic() - started, DELAY * 2)
        self.assertLess(probe.worst, LAG_BOUND, "the event loop stalled {:.3f} s during the download".format(probe.worst))

    async def test_plainDownloadLeavesTheLoopFree(self):
        port = await self.connections.listen(self.folder, self.factory)
        await self._download("127.0.0.1:{}".format(port.getHost().port))

    async def test_opensLeaveTheLoopFree(self):
        """
        Opening a file is a GET: C{sget} and C{mget} open in a worker
        thread, so a slow engine stalls only the download that waits.
        """
        small = {"small/s{}.bin".format(i): os.urandom(1000 + i) for i in range(3)}
        for name, data in small.items():
            self.s3.client.put_object(Bucket=self.s3.name, Key=self.s3Prefix + name, Body=data)
        self.s3.client = _SlowReads(self.s3.client._client, opens=True)
        port = await self.connections.listen(self.folder, self.factory)
        client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port))
        probe = _LagProbe()
        try:
            await client.mget("small/*", self.folder)
            await client.sget("small/s0.bin", os.path.join(self.folder, "again.bin"))
        finally:
            probe.stop()
            await client.quit()
        for name, data in small.items():
            with open(os.path.join(self.folder, name), "rb") as f:
                self.assertEqual(f.read(), data)
        self.assertLess(probe.worst, LAG_BOUND, "the event loop stalled {:.3f} s while files were opened".format(probe.worst))

    async def test_tlsDownloadLeavesTheLoopFree(self):
        from tests.test_tls import PKI

        pki = PKI(temporaryFolder(self, "ftx-s3-pki-"))
        _, number = await self.connections.listenTLS(self.folder, pki.server, factory=self.factory)
        await self._download("ssl:host=127.0.0.1:port={}".format(number), tls=ClientTLS(cafile=pki.serverCA))
