"""
Writing received bytes off the reactor thread.

Writing a body to disk and hashing it cost more CPU per byte than receiving
it, and a slow disk can stall a write for long. L{BackgroundWriter} hands
that work to the reactor's thread pool, one batch at a time so the order
holds, and pauses the connection while too much is waiting: memory per
upload stays bounded whatever the client sends.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

# Pause reading above this many bytes waiting for the disk; resume below
# the low mark. Large enough to keep the worker busy while the reactor
# reads the next megabytes, small enough that 100 uploads fit in memory.
HIGH_WATER = 8 << 20
LOW_WATER = 2 << 20


class BackgroundWriter:
    """
    Feeds C{sink.write} from a worker thread, in order.

    @ivar error: the first exception C{sink.write} raised, if any; later
        data is dropped so that the caller can keep the framing and report
        the error at the end.
    """

    def __init__(self, sink, reactor, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.sink = sink
        self._reactor = reactor
        self._pause = pause
        self._resume = resume
        self._pending: List[bytes] = []
        self._waiting = 0
        self._running = False
        self._paused = False
        self._drainWaiters: List[Deferred] = []
        self.error: Optional[BaseException] = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        self._pending.append(data)
        self._waiting += len(data)
        if not self._running:
            self._submit()
        if self._waiting > HIGH_WATER and not self._paused:
            self._paused = True
            self._pause()

    def _submit(self) -> None:
        batch, self._pending = self._pending, []
        self._running = True
        self._reactor.getThreadPool().callInThreadWithCallback(self._workerDone, self._work, batch)

    def _work(self, batch: List[bytes]) -> int:
        count = 0
        for data in batch:
            self.sink.write(data)
            count += len(data)
        return count

    def _workerDone(self, ok: bool, result) -> None:
        # Runs in the worker thread: hop back to the reactor.
        self._reactor.callFromThread(self._batchDone, ok, result)

    def _batchDone(self, ok: bool, result) -> None:
        self._running = False
        if ok:
            self._waiting -= result
        else:
            self.error = result.value if isinstance(result, Failure) else result
            self._pending = []
            self._waiting = 0
        if self._pending:
            self._submit()
        if self._paused and self._waiting < LOW_WATER:
            self._paused = False
            self._resume()
        if not self._running:
            waiters, self._drainWaiters = self._drainWaiters, []
            for d in waiters:
                d.callback(None)

    def whenDrained(self) -> Deferred:
        """
        Fires once everything written so far has reached the sink.
        """
        if not self._running and not self._pending:
            return succeed(None)
        d: Deferred = Deferred()
        self._drainWaiters.append(d)
        return d
