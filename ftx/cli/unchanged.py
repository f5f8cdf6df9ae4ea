"""
Which local files are already the same as the server's, for the commands
that would otherwise transfer them again (C{sget}, C{mget}, C{put}).

A file whose size and whole-second modification time match the server's
listing is taken as unchanged without reading a byte on either side, as
C{rsync}'s quick check does (L{ftx.cli.quickcheck.sameStatus}): the
listing the command asked for anyway is all it costs. Otherwise, and
always with C{--verify}, a file of the same size is compared by SHA-1:
the server's from C{hash} (which it caches), ours from the local digest
cache (L{ftx.cli.quickcheck.DigestCache}), so that the forced check of an
unchanged tree is cheap from the second time on. The server is asked for
every digest at once, and the local ones are computed meanwhile.
"""

from __future__ import annotations

import os
import stat
from typing import Dict, List, Optional, Tuple

from twisted.python.failure import Failure

from ftx.cli.quickcheck import DigestCache, localDigest, sameStatus
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


def _status(path: str) -> Tuple[Optional[os.stat_result], Optional[os.stat_result]]:
    """
    C{os.lstat(path)}, and the status of the file it is: the same for a
    regular file, that of its target for a symbolic link, L{None} for
    anything else or nothing. One system call for a plain file: a re-run
    over a thousand files takes each one's status once.
    """
    try:
        own = os.lstat(path)
        if stat.S_ISLNK(own.st_mode):
            # As before the quick check: the file a symbolic link leads to
            # is compared by digest (it is never "unchanged").
            target = os.stat(path)
            return own, target if stat.S_ISREG(target.st_mode) else None
    except (OSError, ValueError):
        return None, None
    return own, own if stat.S_ISREG(own.st_mode) else None


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
    toHash: Dict[int, os.stat_result] = {}
    for index, (path, entry) in enumerate(pairs):
        own, target = _status(path)
        if own is None:
            continue
        if not verify and sameStatus(own, entry.size, entry.mtime):
            verdicts[index] = UNCHANGED
        elif target is not None and target.st_size == entry.size:
            toHash[index] = target
    if not toHash:
        return verdicts
    pending = _askServer(ctx, sorted({pairs[index][1].name for index in toHash}))
    cache = cache if cache is not None else processCache()
    local: Dict[int, Optional[str]] = {}
    for index, status in toHash.items():
        try:
            local[index] = localDigest(pairs[index][0], SHA1, cache, status)
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
