"""
Storing and hashing received bytes in worker lanes (L{ftx._io.background})
and the worker pools they run on (L{ftx._io.workers}).
"""

from __future__ import annotations

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ftx._io.background import HIGH_WATER, LOW_WATER, BackgroundWriter
from tests.loopback import MiB


class _QueuedPool:
    """
    A thread pool that runs nothing until the test says so: submitted
    jobs wait in C{jobs}.
    """

    def __init__(self) -> None:
        self.jobs = []

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        self.jobs.append((onResult, f, args, kwargs))


class _FakeReactor:
    def __init__(self) -> None:
        self.pool = _QueuedPool()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class _Sink:
    def __init__(self) -> None:
        self.stored = []
        self.failWith = None

    def store(self, data) -> None:
        if self.failWith is not None:
            raise self.failWith
        self.stored.append(len(data))


class _Hasher:
    def __init__(self) -> None:
        self.updated = []

    def update(self, data) -> None:
        self.updated.append(len(data))


class BackgroundWriterTests(SynchronousTestCase):
    """
    L{BackgroundWriter}'s two lanes, run one batch at a time by the test.
    """

    def setUp(self) -> None:
        self.reactor = _FakeReactor()
        self.sink = _Sink()
        self.hasher = _Hasher()
        self.paused = 0
        self.resumed = 0
        self.writer = BackgroundWriter(self.sink, self.reactor, self._pause, self._resume, self.hasher)

    def _pause(self) -> None:
        self.paused += 1

    def _resume(self) -> None:
        self.resumed += 1

    def runBatch(self, lane: str) -> int:
        """
        Run the first queued batch of C{lane} and report it done; returns
        how many pieces it held.
        """
        jobs = self.reactor.pool.jobs
        for index, (onResult, f, args, kwargs) in enumerate(jobs):
            if self._laneOf(f, args, kwargs) == lane:
                del jobs[index]
                stored, updated = len(self.sink.stored), len(self.hasher.updated)
                try:
                    result = f(*args, **kwargs)
                except BaseException:
                    onResult(False, Failure())
                    return 0
                touched = (len(self.sink.stored) - stored) + (len(self.hasher.updated) - updated)
                onResult(True, result)
                return touched
        self.fail("no queued batch for the {} lane".format(lane))

    def _laneOf(self, f, args, kwargs) -> str:
        """
        The lane ("store" or "hash") a queued job belongs to, told from
        what its work touches in a dry run against fresh recorders, without
        looking inside the lane.
        """
        stored, updated = self.sink.stored, self.hasher.updated
        self.sink.stored, self.hasher.updated = [], []
        try:
            try:
                f(*args, **kwargs)
            except BaseException:
                return "store"
            return "store" if self.sink.stored else "hash"
        finally:
            self.sink.stored, self.hasher.updated = stored, updated

    def test_releaseWaitsForBothLanes(self):
        released = []
        self.writer.write(b"x" * 10, lambda: released.append("first"))
        self.runBatch("store")
        self.assertEqual(released, [])
        self.runBatch("hash")
        self.assertEqual(released, ["first"])
        self.writer.write(b"y" * 10, lambda: released.append("second"))
        self.runBatch("hash")
        self.assertEqual(released, ["first"])
        self.runBatch("store")
        self.assertEqual(released, ["first", "second"])
        self.assertEqual(self.sink.stored, [10, 10])
        self.assertEqual(self.hasher.updated, [10, 10])

    def test_releaseInOrderAcrossBatches(self):
        """
        Pieces written while a lane is busy form its next batch; each piece
        is released once both lanes are past it, never earlier.
        """
        released = []
        for name in ("a", "b", "c"):
            self.writer.write(name.encode() * 5, lambda name=name: released.append(name))
        self.assertEqual(self.runBatch("store"), 1)
        self.assertEqual(self.runBatch("store"), 2)
        self.assertEqual(released, [])
        self.assertEqual(self.runBatch("hash"), 1)
        self.assertEqual(released, ["a"])
        self.assertEqual(self.runBatch("hash"), 2)
        self.assertEqual(released, ["a", "b", "c"])
        self.assertEqual(self.reactor.pool.jobs, [])

    def test_whenDrainedWaitsForBothLanes(self):
        self.assertTrue(self.writer.whenDrained().called)
        self.writer.write(b"z" * 100)
        drained = self.writer.whenDrained()
        self.assertFalse(drained.called)
        self.runBatch("hash")
        self.assertFalse(drained.called)
        self.runBatch("store")
        self.assertTrue(drained.called)
        self.assertTrue(self.writer.whenDrained().called)

    def test_pausesAboveHighWaterAndResumesBelowLowWater(self):
        piece = bytes(3 * MiB)
        count = HIGH_WATER // len(piece) + 1
        for _ in range(count):
            self.writer.write(piece)
        self.assertGreater(count * len(piece), HIGH_WATER)
        self.assertEqual(self.paused, 1)
        self.writer.write(piece)
        self.assertEqual(self.paused, 1)
        # Store lane empties; the hash lane still holds everything.
        while any(self._laneOf(f, a, k) == "store" for _, f, a, k in self.reactor.pool.jobs):
            self.runBatch("store")
        self.assertEqual(self.resumed, 0)
        # One hash batch done: the rest is still above the low mark.
        self.assertEqual(self.runBatch("hash"), 1)
        self.assertGreaterEqual(count * len(piece), LOW_WATER)
        self.assertEqual(self.resumed, 0)
        while self.reactor.pool.jobs:
            self.runBatch("hash")
        self.assertEqual(self.resumed, 1)
        self.assertEqual(self.paused, 1)
        self.assertEqual(len(self.sink.stored), count + 1)
        self.assertEqual(len(self.hasher.updated), count + 1)

    def test_storeFailureReleasesEverythingAndDrains(self):
        released = []
        self.sink.failWith = OSError(28, "No space left on device")
        self.writer.write(b"a" * 10, lambda: released.append("a"))
        self.writer.write(b"b" * 10, lambda: released.append("b"))
        drained = self.writer.whenDrained()
        self.runBatch("store")
        self.assertIsInstance(self.writer.error, OSError)
        while self.reactor.pool.jobs:
            self.runBatch("hash")
        self.assertEqual(sorted(released), ["a", "b"])
        self.assertTrue(drained.called)
        self.writer.write(b"c" * 10, lambda: released.append("c"))
        self.assertEqual(released[-1], "c")
        self.assertEqual(self.reactor.pool.jobs, [])


class WorkerPoolTests(SynchronousTestCase):
    """
    Lanes of a real reactor run on ftx's own small pools; a stand-in
    reactor lends its own pool.
    """

    def test_standInReactorLendsItsPool(self):
        from ftx._io import workers
        from tests.support import InlineReactor

        fake = InlineReactor()
        self.assertIs(workers.poolFor(fake, workers.HASH), fake.getThreadPool())

    def test_realReactorGetsOnePoolPerKindStoppedAtShutdown(self):
        from twisted.internet.interfaces import IReactorThreads
        from twisted.internet.task import Clock
        from twisted.internet.testing import MemoryReactor
        from zope.interface import implementer

        from ftx._io import workers

        @implementer(IReactorThreads)
        class Reactor(MemoryReactor, Clock):
            def __init__(self):
                MemoryReactor.__init__(self)
                Clock.__init__(self)

            def getThreadPool(self):
                raise AssertionError("ftx's lanes must not use the reactor's own pool")

        reactor = Reactor()
        store = workers.poolFor(reactor, workers.STORE)
        self.assertIs(workers.poolFor(reactor, workers.STORE), store)
        hashing = workers.poolFor(reactor, workers.HASH)
        self.assertIsNot(hashing, store)
        self.assertTrue(store.started and hashing.started)
        triggers = reactor.triggers["during"]["shutdown"]
        self.assertEqual(len(triggers), 2)
        for f, args, kwargs in triggers:
            f(*args, **kwargs)
        self.assertFalse(store.started or hashing.started)

    def test_stopPoolsStopsThemNowAndNewOnesStartLater(self):
        """
        A process that keeps its reactor running (a test runner) stops the
        pools itself; the next transfer starts fresh ones.
        """
        from twisted.internet import reactor

        from ftx._io import workers

        first = workers.poolFor(reactor, workers.STORE)
        self.addCleanup(workers.stopPools, reactor)
        self.assertTrue(first.started)
        workers.stopPools(reactor)
        self.assertFalse(first.started)
        second = workers.poolFor(reactor, workers.STORE)
        self.assertIsNot(second, first)
        self.assertTrue(second.started)
        workers.stopPools(reactor)
        self.assertFalse(second.started)
