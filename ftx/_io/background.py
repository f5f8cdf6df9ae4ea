"""
Writing and hashing received bytes off the reactor thread.

Writing a body to disk and hashing it cost more CPU per byte than receiving
it, and a slow disk can stall a write for long. L{BackgroundWriter} hands
that work to worker threads (L{ftx._io.workers}) in lanes, one that stores and,
for SHA-1, one that hashes, each in order, so the reactor, the disk and
the hashing keep several cores' worth of work moving on as many as there
are (C{write}, C{hashlib} and C{xxhash} release the GIL on large buffers). It pauses the connection
while too much is waiting, so memory per transfer stays bounded whatever
the peer sends.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Callable, Deque, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from ftx._io import workers

# Pause reading above this many bytes waiting in a lane; resume once every
# lane is below the low mark. Large enough to keep the workers busy while
# the reactor reads the next megabytes.
HIGH_WATER = 8 << 20
LOW_WATER = 2 << 20
# All transfers of a process together: above this many bytes waiting, a
# transfer that adds more pauses too, until the total is back under half.
# Without it a hundred downloads each kept their 8 MiB waiting for the
# hashing thread: 650 MB resident, most of it megabytes faulted in anew.
BUDGET = 48 << 20


class _Budget:
    """
    The bytes waiting in every L{BackgroundWriter}'s lanes, and the writers
    paused because of the total rather than their own backlog. Reactor
    thread only.
    """

    def __init__(self) -> None:
        self.waiting = 0
        self.paused: "weakref.WeakSet[BackgroundWriter]" = weakref.WeakSet()

    def over(self) -> bool:
        return self.waiting > BUDGET

    def roomAgain(self) -> None:
        if self.waiting < BUDGET // 2 and self.paused:
            for writer in list(self.paused):
                writer._maybeResume()


_budget = _Budget()


class Lane:
    """
    Runs C{work(data)} for every piece of data, in order, one batch at a
    time in the thread pool.
    """

    def __init__(self, work: Callable[[bytes], None], reactor, changed: Callable[[], None], kind: str = workers.STORE) -> None:
        self._work = work
        self._reactor = reactor
        self._pool = workers.poolFor(reactor, kind)
        self._changed = changed
        self._pending: List[bytes] = []
        self.waiting = 0
        self.running = False
        self.error: Optional[BaseException] = None
        #: Pieces given to L{add}, and pieces this lane is finished with.
        self.added = 0
        self.done = 0

    def add(self, data: bytes) -> None:
        self.added += 1
        if self.error is not None:
            self.done = self.added
            return
        self._pending.append(data)
        self.waiting += len(data)
        if not self.running:
            self._submit()

    @property
    def idle(self) -> bool:
        return not self.running and not self._pending

    def _submit(self) -> None:
        batch, self._pending = self._pending, []
        self.running = True
        self._pool.callInThreadWithCallback(self._workerDone, self._run, batch)

    def _run(self, batch: List[bytes]):
        count = 0
        work = self._work
        for data in batch:
            work(data)
            count += len(data)
        return count, len(batch)

    def _workerDone(self, ok: bool, result) -> None:
        # Runs in the worker thread: hop back to the reactor.
        self._reactor.callFromThread(self._batchDone, ok, result)

    def _batchDone(self, ok: bool, result) -> None:
        self.running = False
        if ok:
            self.waiting -= result[0]
            self.done += result[1]
        else:
            self.error = result.value if isinstance(result, Failure) else result
            self._pending = []
            self.waiting = 0
            self.done = self.added
        if self._pending:
            self._submit()
        self._changed()


class BackgroundWriter:
    """
    Feeds C{sink.store} and, when a C{hasher} is given, C{hasher.update}
    from worker threads, each in order. With C{cheapHash} one worker
    stores and then hashes each piece: a checksum as fast as memory (XXH3)
    costs less than a lane of its own, and hashing on the reactor thread
    made it wait for the GIL after every piece.

    @ivar error: the first exception C{sink.store} or the hasher raised,
        if any; later data is dropped so that the caller can keep the
        framing and report the error at the end.
    """

    def __init__(
        self, sink, reactor, pause: Callable[[], None], resume: Callable[[], None], hasher=None, cheapHash: bool = False
    ) -> None:
        self.sink = sink
        self._pause = pause
        self._resume = resume
        if hasher is not None and cheapHash:
            store, update = sink.store, hasher.update

            def storeAndHash(data) -> None:
                store(data)
                update(data)

            self._lanes = [Lane(storeAndHash, reactor, self._laneChanged)]
        else:
            self._lanes = [Lane(sink.store, reactor, self._laneChanged)]
            if hasher is not None:
                self._lanes.append(Lane(hasher.update, reactor, self._laneChanged, workers.HASH))
        self._paused = False
        self._drainWaiters: List[Deferred] = []
        self._written = 0
        self._releases: Deque[Tuple[int, Callable[[], None]]] = deque()
        #: Bytes of this writer counted in the process budget.
        self._counted = 0

    @property
    def paused(self) -> bool:
        """
        Whether this writer has paused its connection and not resumed it.
        """
        return self._paused

    @property
    def error(self) -> Optional[BaseException]:
        for lane in self._lanes:
            if lane.error is not None:
                return lane.error
        return None

    def write(self, data, release: Optional[Callable[[], None]] = None) -> None:
        """
        Queue C{data} (bytes, or a view of a buffer) for every lane.
        C{release}, if given, is called once no lane needs C{data} any more,
        so the buffer under it can be reused.
        """
        if self.error is not None:
            if release is not None:
                release()
            return
        self._written += 1
        if release is not None:
            self._releases.append((self._written, release))
        tooMuch = False
        for lane in self._lanes:
            lane.add(data)
            tooMuch = tooMuch or lane.waiting > HIGH_WATER
        self._count()
        if (tooMuch or _budget.over()) and not self._paused:
            self._paused = True
            _budget.paused.add(self)
            self._pause()

    def _count(self) -> None:
        waiting = max(lane.waiting for lane in self._lanes)
        _budget.waiting += waiting - self._counted
        self._counted = waiting

    def _maybeResume(self) -> None:
        if (
            self._paused
            and all(lane.waiting < LOW_WATER for lane in self._lanes)
            and (_budget.waiting < BUDGET // 2 or self._counted == 0)
        ):
            self._paused = False
            _budget.paused.discard(self)
            self._resume()

    def _laneChanged(self) -> None:
        if self.error is not None:
            for lane in self._lanes:
                lane._pending = []
                lane.waiting = 0
                if not lane.running:
                    lane.done = lane.added
        self._count()
        finished = min(lane.done for lane in self._lanes)
        releases = self._releases
        while releases and releases[0][0] <= finished:
            releases.popleft()[1]()
        self._maybeResume()
        _budget.roomAgain()
        if all(lane.idle for lane in self._lanes):
            waiters, self._drainWaiters = self._drainWaiters, []
            for d in waiters:
                d.callback(None)

    def whenDrained(self) -> Deferred:
        """
        Fires once everything written so far has reached the sink and the
        hasher.
        """
        if all(lane.idle for lane in self._lanes):
            return succeed(None)
        d: Deferred = Deferred()
        self._drainWaiters.append(d)
        return d
