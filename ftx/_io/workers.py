"""
The few threads that store and hash received bodies.

Lanes (L{ftx._io.background}) first ran in the reactor's thread pool, ten
threads. With a hundred downloads at once those ten threads and the
reactor fought over the GIL: strace counted over 100,000 futex calls, and
the client spent more time in the kernel than working, for 1 GB received.
Two small pools, one that stores and one that hashes, each as wide as half
the cores (at least one thread), keep every core busy with the fewest
threads contending.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

from twisted.internet.interfaces import IReactorCore, IReactorThreads
from twisted.python.threadpool import ThreadPool

STORE = "store"
HASH = "hash"

_pools: Dict[Tuple[int, str], ThreadPool] = {}


def poolFor(reactor, kind: str):
    """
    The thread pool for C{kind} (L{STORE} or L{HASH}) work of C{reactor}'s
    transfers, started on first use and stopped when the reactor stops. A
    stand-in reactor that cannot say when it stops (tests) lends its own
    thread pool instead.
    """
    if not (IReactorCore.providedBy(reactor) and IReactorThreads.providedBy(reactor)):
        return reactor.getThreadPool()
    key = (id(reactor), kind)
    pool = _pools.get(key)
    if pool is None:
        size = max(1, (os.cpu_count() or 2) // 2)
        pool = _pools[key] = ThreadPool(1, size, name="ftx-" + kind)
        pool.start()

        def stop() -> None:
            _pools.pop(key, None)
            pool.stop()

        reactor.addSystemEventTrigger("during", "shutdown", stop)
    return pool
