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
#: Reading files for their digests (C{hash}, C{cget}, a resumed C{put}):
#: a pool of its own, so a flood of them never takes the threads that
#: store uploads or the reactor's, which list and answer cheap commands.
DIGEST = "digest"

_pools: Dict[Tuple[int, str], Tuple[ThreadPool, object]] = {}


def poolWidth(kind: str = STORE) -> int:
    """
    The threads of a pool: half the cores, at least one; at least two for
    L{DIGEST}, so that one client address, held to half of them
    (L{ftx.server.hashlane.HashLane}), never holds them all.
    """
    width = max(1, (os.cpu_count() or 2) // 2)
    return max(2, width) if kind == DIGEST else width


def poolFor(reactor, kind: str):
    """
    The thread pool for C{kind} (L{STORE}, L{HASH} or L{DIGEST}) work of C{reactor}'s
    transfers, started on first use and stopped when the reactor stops. A
    stand-in reactor that cannot say when it stops (tests) lends its own
    thread pool instead.
    """
    if not (IReactorCore.providedBy(reactor) and IReactorThreads.providedBy(reactor)):
        return reactor.getThreadPool()
    key = (id(reactor), kind)
    entry = _pools.get(key)
    if entry is None:
        pool = ThreadPool(1, poolWidth(kind), name="ftx-" + kind)
        pool.start()
        trigger = reactor.addSystemEventTrigger("during", "shutdown", _stop, key)
        entry = _pools[key] = (pool, trigger)
    return entry[0]


def stopPools(reactor) -> None:
    """
    Stop C{reactor}'s pools now, as its shutdown would; a later transfer
    starts new ones. For a process that goes on running C{reactor} but
    will not shut it down (a test runner), so that no worker thread keeps
    the process from exiting.
    """
    for kind in (STORE, HASH, DIGEST):
        entry = _pools.get((id(reactor), kind))
        if entry is not None:
            reactor.removeSystemEventTrigger(entry[1])
            _stop((id(reactor), kind))


def _stop(key: Tuple[int, str]) -> None:
    entry = _pools.pop(key, None)
    if entry is not None:
        entry[0].stop()
