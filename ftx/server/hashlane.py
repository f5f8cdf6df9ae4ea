"""
The lane that digest work waits in: C{hash}, the prefix check of C{cget},
the kept bytes of a resumed C{put} and C{partial}.

Such work reads a whole file or a prefix of it, so a few bytes of request
can cost seconds of CPU. It used to share the reactor's thread pool with
listing: forty connections sending C{cget big.bin N WRONG-DIGEST} held
every thread, and a plain C{list} waited eight seconds for one. Here it
has threads of its own (L{ftx._io.workers.DIGEST}), as many jobs run at
once as there are threads, and the turns go round the client addresses
that are waiting, one job each, with at most C{perAddress} of one
address's jobs running at once: one address, however many connections it
opens, gets its share and not the lane. Each connection runs one command
at a time, so it has at most one job here.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import Callable, Deque, Optional

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from ftx._io import workers

__all__ = ["HashLane"]


class _Job:
    def __init__(self, address: str, f: Callable, args: tuple, wanted: Callable[[], bool]) -> None:
        self.address = address
        self.f = f
        self.args = args
        self.wanted = wanted
        self.deferred: Deferred = Deferred(self._cancel)
        self.queue: Optional[Deque["_Job"]] = None

    def _cancel(self, d: Deferred) -> None:
        if self.queue is not None and self in self.queue:
            self.queue.remove(self)


class HashLane:
    """
    Runs digest jobs in a pool of their own, fairly across client
    addresses. Reactor thread only, but for the jobs themselves.

    @param width: jobs running at once (default: the pool's threads).
    @param perAddress: jobs of one address running at once (default: half
        the width, at least one).
    @param pool: the thread pool (default: L{ftx._io.workers.poolFor}
        C{reactor}'s L{DIGEST<ftx._io.workers.DIGEST>} pool).
    """

    def __init__(self, reactor, width: Optional[int] = None, perAddress: Optional[int] = None, pool=None) -> None:
        self._reactor = reactor
        self._pool = pool
        self.width = width or workers.poolWidth(workers.DIGEST)
        self.perAddress = perAddress or max(1, self.width // 2)
        self._waiting: "OrderedDict[str, Deque[_Job]]" = OrderedDict()
        self._running: Counter = Counter()
        #: Jobs run and jobs dropped because their client had gone.
        self.ran = 0
        self.dropped = 0

    @property
    def running(self) -> int:
        return sum(self._running.values())

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def run(self, address: str, f: Callable, *args, wanted: Callable[[], bool] = lambda: True) -> Deferred:
        """
        Run C{f(*args)} in a worker thread when C{address}'s turn comes;
        fires with its result. A job whose C{wanted()} is false when its
        turn comes (its connection is gone) is not run: it fails with
        L{CancelledError}, as it does when cancelled while waiting.
        """
        job = _Job(address, f, args, wanted)
        queue = self._waiting.get(address)
        if queue is None:
            queue = self._waiting[address] = deque()
        job.queue = queue
        queue.append(job)
        self._next()
        return job.deferred

    def _next(self) -> None:
        while self.running < self.width:
            job = self._take()
            if job is None:
                return
            if not job.wanted():
                self.dropped += 1
                job.deferred.errback(Failure(CancelledError("the client is gone")))
                continue
            self._start(job)

    def _take(self) -> Optional[_Job]:
        """
        The first job of the first waiting address not at its share; that
        address then goes to the back of the round.
        """
        for address in list(self._waiting):
            queue = self._waiting[address]
            if not queue:
                del self._waiting[address]
                continue
            if self._running[address] >= self.perAddress:
                continue
            job = queue.popleft()
            job.queue = None
            del self._waiting[address]
            if queue:
                self._waiting[address] = queue
            return job
        return None

    def _start(self, job: _Job) -> None:
        self._running[job.address] += 1
        self.ran += 1
        pool = self._pool if self._pool is not None else workers.poolFor(self._reactor, workers.DIGEST)

        def done(ok: bool, result) -> None:
            # In the worker thread: hop back to the reactor.
            self._reactor.callFromThread(self._finished, job, ok, result)

        pool.callInThreadWithCallback(done, job.f, *job.args)

    def _finished(self, job: _Job, ok: bool, result) -> None:
        self._running[job.address] -= 1
        if self._running[job.address] <= 0:
            del self._running[job.address]
        if ok:
            job.deferred.callback(result)
        else:
            job.deferred.errback(result)
        self._next()
