"""
Faults: the connection dropped at a random byte of sget, mget, cget and
put, by the client or by the server, many times. Then the invariants: no
partial upload under its final name (an existing file keeps its old
content or gets the whole new one), temporary files only where a resume
needs them, and after a resume every file byte-identical.
"""

import hashlib
import os
import random

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from tests.reliability import CutLink, TempDirs, leftovers, record
from tests.support import InlineReactor

TRIALS = 240


def _content(rng, size):
    return rng.randbytes(size)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class FaultTests(TempDirs, SynchronousTestCase):
    def setUp(self):
        base = os.path.abspath(self.mktemp())
        self.root = os.path.join(base, "root")
        self.local = os.path.join(base, "local")
        os.makedirs(os.path.join(self.root, "m"))
        os.makedirs(self.local)
        self.cuts = 0
        self.reactor = InlineReactor()
        self.factory = FtxServerFactory(FilesystemStorage(self.root), self.reactor, ServerPolicy(partialTTL=3600))

    def link(self, cutAfter=None, cutBy="client"):
        link = CutLink(self.factory, self.reactor, None, cutBy)
        link.run(link.clientProtocol.greeted)
        if cutAfter is not None:
            # Counted from the first byte after the greeting.
            link.cutAfter = link.moved + cutAfter
        return link

    def settle(self, link, deferred):
        """
        Run C{deferred} over C{link}; returns True if it succeeded.
        """
        results = []
        deferred.addCallbacks(lambda r: results.append(True), lambda f: results.append(False))
        link.run(deferred)
        self.cuts += 1 if link.cut else 0
        link.close()
        self.assertEqual(len(results), 1, "the request neither finished nor failed")
        return results[0]

    def trialPut(self, rng, n, cut, cutBy):
        size = rng.choice([0, 1, 1000, rng.randrange(1, 300000)])
        data = _content(rng, size)
        source = os.path.join(self.local, "up-{}.src".format(n))
        with open(source, "wb") as f:
            f.write(data)
        name = "up-{}.bin".format(n)
        final = os.path.join(self.root, name)
        old = None
        if rng.random() < 0.5:
            old = _content(rng, rng.randrange(0, 5000))
            with open(final, "wb") as f:
                f.write(old)
        link = self.link(cut, cutBy)
        self.settle(link, link.client.put(source, name))
        # Under its final name: the old content or all of the new, never a mix.
        if os.path.exists(final):
            self.assertIn(_read(final), (old, data))
        partial = os.path.join(self.root, "." + name + ".ftx-partial")
        if os.path.exists(partial):
            held = _read(partial)
            self.assertTrue(len(held) > 0 and data.startswith(held), "a kept partial upload must be a prefix")
        link = self.link()
        self.assertTrue(self.settle(link, link.client.put(source, name, resume=True)))
        return _read(final) == data and not os.path.exists(partial)

    def trialGet(self, rng, n, cut, cutBy, verb):
        size = rng.choice([0, 1, rng.randrange(1, 600000)])
        data = _content(rng, size)
        name = "down-{}.bin".format(n)
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)
        target = os.path.join(self.local, name)
        link = self.link(cut, cutBy)
        if verb == "sget":
            d = link.client.sget(name, target)
        elif verb == "cget":
            d = link.client.cget(name, target)
        else:
            d = link.client.mget(name, self.local)
        self.settle(link, d)
        if os.path.exists(target):
            self.assertEqual(_read(target), data, "a file under its final name must be whole")
        link = self.link()
        self.assertTrue(self.settle(link, link.client.cget(name, target)))
        return _read(target) == data

    def trialMget(self, rng, n, cut, cutBy):
        directory = "m/{}".format(n)
        files = {}
        for i in range(rng.randrange(1, 5)):
            data = _content(rng, rng.randrange(0, 100000))
            files["{}/f{}.bin".format(directory, i)] = data
            os.makedirs(os.path.join(self.root, directory), exist_ok=True)
            with open(os.path.join(self.root, directory, "f{}.bin".format(i)), "wb") as f:
                f.write(data)
        link = self.link(cut, cutBy)
        self.settle(link, link.client.mget(directory + "/*", self.local))
        for name, data in files.items():
            path = os.path.join(self.local, name)
            if os.path.exists(path):
                self.assertEqual(_read(path), data, "a file under its final name must be whole")
        ok = True
        for name, data in files.items():
            link = self.link()
            self.assertTrue(self.settle(link, link.client.cget(name, os.path.join(self.local, name))))
            ok = ok and _read(os.path.join(self.local, name)) == data
        return ok

    def test_dropsAtRandomPoints(self):
        rng = random.Random(4)
        lost = 0
        with capturedLogs() as events:
            for n in range(TRIALS):
                verb = ["sget", "mget", "cget", "put"][n % 4]
                cutBy = rng.choice(["client", "server"])
                # Most cuts land inside the transfer; a few at the edges.
                cut = rng.choice([0, 1, 50, rng.randrange(0, 700000), rng.randrange(0, 300000)])
                if verb == "put":
                    ok = self.trialPut(rng, n, cut, cutBy)
                elif verb == "mget":
                    ok = self.trialMget(rng, n, cut, cutBy)
                else:
                    ok = self.trialGet(rng, n, cut, cutBy, verb)
                lost += 0 if ok else 1
        # Only cuts that happened count (a cut point past the end of a
        # transfer lets it finish).
        faults = self.cuts
        record("faults: connection drops", faults, lost, "injected", "files lost or corrupted")
        self.assertGreaterEqual(faults, 100)
        self.assertEqual(lost, 0)
        self.assertEqual([e for e in events if "log_failure" in e], [])
        # Every transfer was completed by its resume: no temporary file is
        # left on either side.
        self.assertEqual(leftovers(self.root), [])
        self.assertEqual(leftovers(self.local), [])

    def test_emptyPartialIsNotKept(self):
        """
        An upload cut before any byte of its body arrived leaves nothing.
        """
        source = os.path.join(self.local, "nothing.src")
        with open(source, "wb") as f:
            f.write(b"x" * 5000)
        link = self.link()
        d = link.client.put(source, "nothing.bin")
        # Cut right after the server said 350, before the body.
        link.cutAfter = link.moved + len(b"put nothing.bin 5000\r\n") + len(b"350 0\r\n")
        self.settle(link, d)
        self.assertEqual(sorted(os.listdir(self.root)), ["m"])

    def test_noPartialsKeptWhenTTLIsZero(self):
        self.factory.policy.partialTTL = 0
        source = os.path.join(self.local, "big.src")
        data = hashlib.sha256(b"x").digest() * 5000
        with open(source, "wb") as f:
            f.write(data)
        link = self.link(cutAfter=60000)
        self.settle(link, link.client.put(source, "big.bin"))
        self.assertEqual(leftovers(self.root), [])
        self.assertFalse(os.path.exists(os.path.join(self.root, "big.bin")))
