"""
Load: one ``twistd ftx`` server, 100 clients at once doing list, sget,
mget, hash and put. Every result is checked by SHA-1; the server's peak
memory (RSS, sampled) is reported and bounded.
"""

import hashlib
import os
import random
import time

import psutil
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, DeferredList
from twisted.trial.unittest import TestCase

from ftx.client.api import connect
from tests.reliability import measure, record
from tests.support import ServerProcess, closeSocketsAfter, digestOf, sha1, temporaryFolder, writeRandom

CLIENTS = 100
MiB = 1 << 20


class _Barrier:
    """
    Holds every client until all are connected, so that the server really
    holds CLIENTS connections at once.
    """

    def __init__(self, count):
        self.count = count
        self.all = Deferred()
        # Bounded: a client that failed to connect must not hang the rest.
        self.all.addTimeout(30, reactor)
        self.all.addErrback(lambda f: None)

    async def wait(self):
        self.count -= 1
        if self.count == 0:
            self.all.callback(None)
        d = Deferred()
        self.all.addBoth(lambda r: d.callback(None) or r)
        await d


async def _oneClient(n, address, files, local, barrier):
    rng = random.Random(n)
    client = await connect(reactor, address)
    errors = []
    try:
        await barrier.wait()
        listing = {e.name: e.size for e in await client.list()}
        for name, (size, _) in files.items():
            if listing.get(name) != size:
                errors.append("list {}".format(name))
        name = rng.choice(sorted(files))
        target = os.path.join(local, "c{}-{}".format(n, name.replace("/", "_")))
        transfer = await client.sget(name, target)
        if sha1(target) != files[name][1] or transfer.digest != digestOf(target, transfer.checksum):
            errors.append("sget {}".format(name))
        folder = os.path.join(local, "m{}".format(n))
        got = await client.mget("m/*", folder)
        if sorted(t.name for t in got) != sorted(k for k in files if k.startswith("m/")):
            errors.append("mget names")
        for t in got:
            if sha1(os.path.join(folder, t.name)) != files[t.name][1]:
                errors.append("mget {}".format(t.name))
        if await client.hash(name) != files[name][1]:
            errors.append("hash {}".format(name))
        data = rng.randbytes(rng.randrange(1, 256 * 1024))
        source = os.path.join(local, "up{}.bin".format(n))
        with open(source, "wb") as f:
            f.write(data)
        await client.put(source, "up/{}.bin".format(n))
        if await client.hash("up/{}.bin".format(n)) != hashlib.sha1(data).hexdigest():
            errors.append("put {}".format(n))
    finally:
        await client.quit()
    return errors


class LoadTests(TestCase):
    """
    One twistd server, many clients of this process at once.
    """

    async def test_hundredConcurrentClients(self):
        closeSocketsAfter(self, reactor)
        top = temporaryFolder(self)
        root, local = os.path.join(top, "root"), os.path.join(top, "local")
        os.mkdir(local)
        files = {}
        for i in range(8):
            name = "f{}.bin".format(i)
            size = [0, 1, 1000, 100000, MiB, 2 * MiB, 300000, 4096][i]
            files[name] = (size, writeRandom(os.path.join(root, name), size, seed=i))
        for i in range(3):
            name = "m/{}.txt".format(i)
            files[name] = (5000 * i, writeRandom(os.path.join(root, name), 5000 * i, seed=100 + i))
        # 100 clients from one address: more than --max-per-address allows by default.
        server = ServerProcess(root, "--max-connections", "200", "--max-per-address", "0")
        process = psutil.Process(server.process.pid)
        peak = [process.memory_info().rss]
        baseline = peak[0]

        def sample():
            try:
                peak[0] = max(peak[0], process.memory_info().rss)
            except psutil.Error:
                pass

        sampler = task.LoopingCall(sample)
        sampler.start(0.02)
        started = time.monotonic()
        barrier = _Barrier(CLIENTS)
        try:
            results = await DeferredList(
                [Deferred.fromCoroutine(_oneClient(n, server.address, files, local, barrier)) for n in range(CLIENTS)],
                consumeErrors=True,
            )
        finally:
            sampler.stop()
            elapsed = time.monotonic() - started
            server.stop()
        errors = []
        for ok, value in results:
            errors.extend(value if ok else [repr(value.value)])
        record("load: concurrent clients", CLIENTS, len([1 for ok, v in results if not ok or v]), "held", "with errors")
        measure(
            "load: server peak memory",
            "{:.1f} MiB RSS (idle {:.1f} MiB), {} clients in {:.1f}s".format(peak[0] / MiB, baseline / MiB, CLIENTS, elapsed),
        )
        self.assertEqual(errors, [])
        self.assertNotIn("Traceback", server.output())
        self.assertLess(peak[0], baseline + 200 * MiB)
