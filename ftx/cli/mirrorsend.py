"""
How C{ftx mirror --reverse} sends the files its plan names: every C{put}
handed to the client at once, in the reactor thread, a few open at a time.

A C{put}'s body waits for the server's C{350}, so the commands themselves
cannot go out ahead of their answers (a refused one would leave its body
to be read as commands). What can go is the trip through the command's
thread between files: with every request queued on the connection, the
next C{put} leaves as soon as the previous one is stored, as the
download side's queued C{sget}s did before they were pipelined
(L{ftx.cli.mirrorfetch}).
"""

from __future__ import annotations

from typing import Callable, List

from twisted.internet.defer import DeferredList, DeferredSemaphore, maybeDeferred
from twisted.python.failure import Failure

from ftx.cli.remotefiles import Tally
from ftx.client.client import REPLACE

__all__ = ["sendPlanned"]

#: As for put: below this, asking the server for a partial upload costs
#: more than it can save.
RESUME_AT = 1 << 20

#: Uploads queued on the connection at once: each holds its local file
#: open from then until it is stored.
QUEUED = 16


def sendPlanned(ctx, prefix: str, transfers: List, resumable: bool, keepsTime: bool, done: Callable,
                tally: Tally) -> None:
    """
    C{put} each planned transfer (L{ftx.cli.mirrorplan.Action}s whose
    source is a L{ftx.cli.mirrorplan.LocalFile}) as C{prefix + name}:
    C{done(action, size, resumed=...)} for each one stored, in the plan's
    order, failures counted in C{tally}. The server keeps the local time
    when C{keepsTime}; files of 1 MiB or more continue an interrupted
    upload when C{resumable}.

    @raise ConnectionLost: the connection dropped (what was stored stays,
        an interrupted upload is continued by the next run).
    """
    client = ctx.connection.client
    reporter = ctx.reporter
    gate = DeferredSemaphore(QUEUED)

    def one(action):
        f = action.source
        options = {"resume": resumable and f.size >= RESUME_AT, "mode": REPLACE}
        if keepsTime:
            options["mtime"] = f.mtime
        bar: list = []

        def progress(name: str, sofar: int, total: int) -> None:
            # The bar appears when the file starts, not when it is queued.
            if not bar:
                bar.append(reporter.transfer(name, total))
            if bar[0] is not None:
                bar[0](name, sofar, total)

        def finished(result):
            reporter.transferDone(0 if isinstance(result, Failure) else f.size)
            return result

        return gate.run(lambda: maybeDeferred(client.put, f.path, prefix + action.name, progress, **options)).addBoth(
            finished)

    results = ctx.connection.runner.call(lambda: DeferredList([one(a) for a in transfers], consumeErrors=True))
    for action, (ok, result) in zip(transfers, results):
        if ok:
            done(action, result.size, resumed=result.transferred < result.size)
            continue
        tally.failedInBatch(result, ctx.reporter, action.name)
