"""
The server's life after startup: the periodic sweep of abandoned partial
uploads (which also recounts the quota), and a graceful stop.

A stop (SIGTERM, ``twistd`` stopping the application) first closes the
listening port, then lets running transfers finish for up to the grace
period, closing each connection as soon as its command is done, and cuts
whatever is still running when the grace period ends.
"""

from __future__ import annotations

import time

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

__all__ = ["drain", "SweepService", "sweepInterval"]

_log = Logger()

# After the grace period the remaining connections are aborted; their
# connectionLost normally follows within a reactor turn. This bounds the
# wait should a transport never report it.
_ABORT_WAIT = 5.0


def drain(factory, grace: float, reactor) -> Deferred:
    """
    Stop taking connections on C{factory}, close the idle ones, let busy
    ones finish their command within C{grace} seconds, then cut the rest.
    Fires once no connection is left (or shortly after they were cut).
    """
    admission = factory.admission
    admission.closing = True
    connections = list(admission.active)
    if connections:
        _log.info("stopping: {count} connections, up to {grace} seconds to finish", count=len(connections), grace=grace)
    for connection in connections:
        connection.shutdownRequested()
    done: Deferred = Deferred()
    timers = []

    def finished(_=None):
        for timer in timers:
            if timer.active():
                timer.cancel()
        if not done.called:
            done.callback(None)

    def graceOver():
        left = list(admission.active)
        if left:
            _log.warn("grace period over: cutting {count} connections", count=len(left))
        for connection in left:
            connection.transport.abortConnection()
        timers.append(reactor.callLater(_ABORT_WAIT, finished))

    admission.whenEmpty().addCallback(finished)
    if not done.called:
        timers.append(reactor.callLater(grace, graceOver))
    return done


def sweepInterval(ttl) -> float:
    """
    How often to sweep: a quarter of the partial-upload lifetime, between
    one second and one hour.
    """
    if not ttl:
        return 3600.0
    return min(max(ttl / 4.0, 1.0), 3600.0)


class SweepService(TimerService):
    """
    Runs the storage's L{sweep<ftx.server.storage.IStorage.sweep>} in a
    worker thread of C{reactor} at startup and then every L{sweepInterval}:
    expires partial uploads older than the TTL and recounts the bytes the
    storage holds for the quota.
    """

    _log = Logger()

    def __init__(self, storage, ttl, reactor) -> None:
        self.storage = storage
        self.ttl = ttl
        self.reactor = reactor
        TimerService.__init__(self, sweepInterval(ttl), self.sweepOnce)
        self.clock = reactor

    def sweepOnce(self) -> Deferred:
        reactor = self.reactor
        # None keeps partial files forever: sweep only to count.
        ttl = float("inf") if self.ttl is None else self.ttl
        d = deferToThreadPool(reactor, reactor.getThreadPool(), self.storage.sweep, ttl, time.time())
        d.addCallbacks(self._swept, self._failed)
        return d

    def _swept(self, result) -> None:
        if result.expired:
            self._log.info("removed {count} abandoned partial uploads", count=result.expired)

    def _failed(self, failure) -> None:
        self._log.failure("sweeping partial uploads failed", failure=failure)
