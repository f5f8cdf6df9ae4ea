"""
Which local files are already the same as the server's, for the commands
that would otherwise transfer them again (C{sget}, C{mget}, C{put}).

A file whose size and whole-second modification time match the server's
listing is taken as unchanged without reading a byte on either side, as
C{rsync}'s quick check does (L{ftx.cli.quickcheck.sameAsRemote}): the
listing the command asked for anyway is all it costs. Otherwise, and
always with C{--verify}, a file of the same size is compared by SHA-1:
the server's from C{hash} (which it caches), ours from the local digest
cache (L{ftx.cli.quickcheck.DigestCache}), so that the forced check of an
unchanged tree is cheap from the second time on. The server is asked for
every digest at once, and the local ones are computed meanwhile.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from twisted.python.failure import Failure

from ftx.cli.quickcheck import DigestCache, localDigest, sameAsRemote
from ftx.client.results import Entry
from ftx.errors import FtxError
from ftx.protocol.checksums import SHA1

__all__ = ["UNCHANGED", "IDENTICAL", "compare", "processCache"]

#: Size and modification time match: taken as the same, nothing was read.
UNCHANGED = "unchanged"
#: Same size and the same SHA-1 on both sides.
IDENTICAL = "identical"

_cache: Optional[DigestCache] = None


def processCache() -> DigestCache:
    """
    This process's local digest cache (under C{$XDG_CACHE_HOME/ftx/}),
    opened on first use and saved when the process exits.
    """
    global _cache
    if _cache is None:
        _cache = DigestCache()
    return _cache


def _sameSize(path: str, size: int) -> bool:
    # As before the quick check: the file a symbolic link leads to counts.
    try:
        return os.path.isfile(path) and os.stat(path).st_size == size
    except (OSError, ValueError):
        return False


def compare(ctx, pairs: List[Tuple[str, Entry]], verify: bool = False,
            cache: Optional[DigestCache] = None) -> List[object]:
    """
    For each C{(localPath, serverEntry)}, in order: L{UNCHANGED},
    L{IDENTICAL}, L{None} (different, or nothing here to compare), or the
    L{ftx.errors.FtxError} the server's C{hash} gave.

    With C{verify} the quick check is not trusted: every file of the
    server's size is compared by digest.

    @raise ConnectionLost: the connection went while asking.
    """
    verdicts: List[object] = [None] * len(pairs)
    toHash: List[int] = []
    for index, (path, entry) in enumerate(pairs):
        if not verify and sameAsRemote(path, entry.size, entry.mtime):
            verdicts[index] = UNCHANGED
        elif _sameSize(path, entry.size):
            toHash.append(index)
    if not toHash:
        return verdicts
    pending = _askServer(ctx, sorted({pairs[index][1].name for index in toHash}))
    cache = cache if cache is not None else processCache()
    local: Dict[int, Optional[str]] = {}
    for index in toHash:
        try:
            local[index] = localDigest(pairs[index][0], SHA1, cache)
        except OSError:
            local[index] = None
    remote = _serverAnswers(ctx, pending)
    for index in toHash:
        theirs = remote[pairs[index][1].name]
        if isinstance(theirs, FtxError):
            verdicts[index] = theirs
        else:
            verdicts[index] = IDENTICAL if local[index] is not None and local[index] == theirs else None
    return verdicts


def _askServer(ctx, names: List[str]):
    """
    Send the C{hash} of every name (pipelined, L{FtxClient.hashes}) in one
    hop to the reactor thread, without waiting for the answers.
    """
    client = ctx.connection.client
    answers: list = []

    def start():
        d = client.hashes(names)
        d.addBoth(answers.append)
        # In a list: the reactor thread hands it back at once, unfired.
        return [d]

    [d] = ctx.connection.runner.call(start)
    return names, d, answers


def _serverAnswers(ctx, pending) -> Dict[str, object]:
    names, d, answers = pending
    # Waits in the reactor thread for the answers if they are not all in.
    ctx.connection.runner.call(lambda: d)
    [results] = answers
    if isinstance(results, Failure):
        results.raiseException()
    return dict(zip(names, results))
