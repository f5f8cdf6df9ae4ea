"""
How C{ftx mirror} fetches the files its plan names, with the download
commands' machinery (L{ftx.cli.downloads}): one server C{mget} where most
of a folder is wanted (a first run), partial files continued one by one,
and the rest, a re-run's few changed files, queued all at once.
"""

from __future__ import annotations

import os
import queue
from bisect import bisect_left
from operator import attrgetter
from typing import Callable, Dict, List, Tuple

from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.python.failure import Failure

from ftx.cli.downloads import fetchOne, fetchTogether, serverGroups
from ftx.cli.remotefiles import Tally, hasWildcard, keepMtime
from ftx.cli.terminal import printable
from ftx.client import localfiles, safenames
from ftx.client.pipelined import PIPELINE
from ftx.client.results import Entry
from ftx.errors import Conflict, ConnectionLost, FtxError

__all__ = ["fetchPlanned"]


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def fetchPlanned(ctx, folder: str, local: str, listed: List[Entry], transfers, done: Callable, tally: Tally) -> None:
    """
    Fetch each planned transfer (L{ftx.cli.mirrorplan.Action}s whose
    source is the server's L{Entry}) under C{local}; C{done(action, size)}
    as each arrives, failures counted in C{tally}. C{listed} is the whole
    listing of C{folder}: what an C{mget} may bring besides the planned
    files, dropped (and refused if unsafe, which was reported already).

    @raise ConnectionLost: the connection dropped; the partial file of the
        file in progress is kept, and a re-run continues it.
    """
    plans, actions = [], {}
    for action in transfers:
        entry = action.source
        try:
            path = safenames.confined(local, [_raw(part) for part in action.name.split("/")])
            if os.path.isdir(path) and not os.path.islink(path):
                raise Conflict("{} is a folder here and a file on the server".format(printable(path)))
        except FtxError as e:
            tally.failed(e, ctx.reporter, action.name)
            continue
        plans.append((entry, ("cget" if action.verb == "continue" else "sget", path)))
        actions[entry.name] = action
    if not plans:
        return
    ctx.reporter.startBatch("mirror", len(plans), sum(entry.size for entry, _ in plans))
    # A folder whose name holds wildcard characters cannot be asked for as
    # a mask: its files come one by one.
    fetched = set()
    if not hasWildcard(folder) and _mgetMayPay(folder, listed, plans):
        groups = [(folder, listed)] if folder else serverGroups(None, listed)
        fetched = fetchTogether(ctx, groups, plans, tally)
    for entry, _ in plans:
        if entry.name in fetched:
            done(actions[entry.name], entry.size)
    rest = [(entry, plan) for entry, plan in plans if entry.name not in fetched]
    for entry, (how, path) in rest:
        if how != "cget":
            continue
        try:
            transfer = fetchOne(ctx, entry, how, path)
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            tally.failed(e, ctx.reporter, actions[entry.name].name)
            continue
        done(actions[entry.name], transfer.size)
    queued = [(entry, path) for entry, (how, path) in rest if how == "sget"]
    for entry, outcome in _fetchQueued(ctx, queued, tally, actions):
        done(actions[entry.name], outcome.size)
    ctx.reporter.close()


_nameOf = attrgetter("name")


def _mgetMayPay(folder: str, listed: List[Entry], plans) -> bool:
    """
    Whether any of the server C{mget}s that L{fetchTogether} would weigh
    (one per group of L{serverGroups}, or C{folder}) may pass its test: two
    wanted files or more, and the files of the group not wanted at most a
    tenth of the bytes wanted or 1 MiB. A re-run wants a few files of each
    folder and none does; L{fetchTogether} then costs a pass over the whole
    listing and a list a group for nothing.

    Only a guess, that L{fetchTogether} checks again: a top folder's files
    are found by bisection in the listing, sorted by name as the server
    sends it, and each is added up only until its group fails.
    """
    wantedCount: Dict[str, int] = {}
    wantedBytes: Dict[str, int] = {}
    for entry, (how, _) in plans:
        if how == "sget":
            top, slash, _ = entry.name.partition("/")
            key = folder or (top if slash and not hasWildcard(top) else "*")
            wantedCount[key] = wantedCount.get(key, 0) + 1
            wantedBytes[key] = wantedBytes.get(key, 0) + entry.size
    candidates = [key for key, count in wantedCount.items() if count >= 2]
    if not candidates:
        return False
    if folder or "*" in candidates:
        # The whole listing is one group, or the files at the top are
        # spread through it.
        return True
    for key in candidates:
        bound = max(wantedBytes[key] // 10, 1 << 20) + wantedBytes[key]
        total = 0
        # Every name that starts with KEY/ sorts between KEY/ and KEY0
        # (found by name, with no list of the ten thousand names made).
        start = bisect_left(listed, key + "/", key=_nameOf)
        for index in range(start, bisect_left(listed, key + "0", lo=start, key=_nameOf)):
            total += listed[index].size
            if total > bound:
                break
        else:
            return True
    return False


def _fetchQueued(ctx, queued: List[Tuple[Entry, str]], tally: Tally, actions: Dict) -> List[Tuple[Entry, object]]:
    """
    Fetch C{queued} by handing every request to the client at once, in the
    reactor thread: it sends each as the previous one ends, with no trip
    through the command's thread between files. On the loaded 2-core test
    machine that trip cost about 50 ms a file, most of a re-run's time when
    a hundred files changed. Returns the C{(entry, transfer)} that arrived.
    """
    ready = []
    for entry, path in queued:
        try:
            localfiles.makeParents(path)
        except OSError as e:
            tally.failed(localfiles.localError(e, os.path.dirname(path)), ctx.reporter, actions[entry.name].name)
            continue
        ready.append((entry, path))
    if not ready:
        return []
    client = ctx.connection.client
    reporter = ctx.reporter
    if PIPELINE in client.protocol.features:
        return _fetchPipelined(ctx, ready, tally, actions)

    def one(entry: Entry, path: str):
        bar = []

        def progress(name: str, sofar: int, total: int) -> None:
            # The bar appears when the file starts, not when it is queued.
            if not bar:
                ctx.downloading(entry.name, path)
                bar.append(reporter.transfer(entry.name, total))
            if bar[0] is not None:
                bar[0](name, sofar, total)

        def finished(result):
            # Also for a small file that came without a progress call: the
            # batch bar counts it.
            reporter.transferDone(0 if isinstance(result, Failure) else entry.size)
            return result

        d = client.sget(entry.name, path, progress)
        d.addCallback(lambda transfer: (keepMtime(transfer.path, entry.mtime), transfer)[1])
        return d.addBoth(finished)

    results = ctx.connection.runner.call(
        lambda: DeferredList([one(entry, path) for entry, path in ready], consumeErrors=True))
    ctx.downloading(None)
    arrived = []
    for (entry, _), (ok, result) in zip(ready, results):
        if ok:
            arrived.append((entry, result))
            continue
        tally.failedInBatch(result, ctx.reporter, actions[entry.name].name)
    return arrived


def _fetchPipelined(ctx, ready: List[Tuple[Entry, str]], tally: Tally, actions: Dict) -> List[Tuple[Entry, object]]:
    """
    L{_fetchQueued} on a server with the C{pipeline} feature: the C{sget}
    commands go out ahead of their answers (L{ftx.client.pipelined}), so
    neither end waits for the other between files.
    """
    client = ctx.connection.client
    reporter = ctx.reporter
    byName = {entry.name: (entry, path) for entry, path in ready}
    bars: Dict[str, object] = {}
    arrived: List[Tuple[Entry, object]] = []
    failures: List[Tuple[str, BaseException]] = []

    def progress(name: str, sofar: int, total: int) -> None:
        # The bar appears when the file starts, not when it is asked for;
        # a body under a name not asked for is dropped, with no bar.
        if name not in byName:
            return
        if name not in bars:
            ctx.downloading(name, byName[name][1])
            bars[name] = reporter.transfer(name, total)
        if bars[name] is not None:
            bars[name](name, sofar, total)

    # Each file gets the server's time in this thread, the command's, as
    # it arrives: a utime is a write of the file's status, and on a busy
    # disk it made the reactor thread wait, with the next files unread.
    stamps: "queue.Queue" = queue.Queue()
    ended: List[object] = []

    def received(transfer) -> None:
        entry, _ = byName[transfer.name]
        stamps.put((transfer.path, entry.mtime))
        reporter.transferDone(entry.size)
        arrived.append((entry, transfer))

    def failed(name: str, error: BaseException) -> None:
        reporter.transferDone(0)
        failures.append((name, error))

    def start() -> None:
        d = maybeDeferred(client.sgets, [(e.name, path) for e, path in ready], progress, received, failed)
        d.addBoth(lambda result: (ended.append(result), stamps.put(None)))

    try:
        ctx.connection.runner.reactor.callFromThread(start)
        for stamp in iter(stamps.get, None):
            keepMtime(*stamp)
    finally:
        ctx.downloading(None)
    if isinstance(ended[0], Failure):
        ended[0].raiseException()
    for name, error in failures:
        tally.failedInBatch(error, ctx.reporter, actions[name].name)
    return arrived
