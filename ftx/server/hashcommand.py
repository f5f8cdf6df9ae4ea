"""
The C{hash NAME [LENGTH]} command: the SHA-1 of a served file or of its
first C{LENGTH} bytes.

Reading a file for its digest takes a turn in the hash lane
(L{ftx.server.hashlane.HashLane}), but most answers need no reading: the
storage's digest cache already knows the whole file's digest while the
file is unchanged (same device, inode, size, modification and change
times). Such an answer costs an open and an C{fstat}, as the open of an
C{sget} does, and is given on the reactor thread at once. A thousand
pipelined C{hash} commands of an unchanged tree (C{ftx mget '*' --verify}
the second time) used to take a thousand trips through a worker thread,
each answer its own C{send} and its own log line; now they are answered
as they are read, their replies leave together, and only a miss waits
for the lane.

The answers given from the cache in one turn of the reactor are logged as
one line (how many, the first name, the bytes they cover), as an C{mget}
is: formatting and writing a line cost the server more than the answer.
At most L{Hashes.perTurn} of them are given in one turn: a client that
sends a hundred thousand C{hash} lines at once gets the rest in the next
turns, and the other connections are served in between.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater

from ftx.errors import BadOffset
from ftx.protocol import wire
from ftx.protocol.checksums import SHA1
from ftx.protocol.wire import decodeName, nameText
from ftx.server.connection import checkArity
from ftx.server.downloads import refuseBeyondEnd

__all__ = ["Hashes", "knownDigest"]


def knownDigest(storage, name: bytes, length: Optional[int] = None) -> Optional[Tuple[str, int]]:
    """
    The C{(digest, length)} C{hash} answers for C{name}, when the digest
    cache of C{storage} holds the whole file's and it is still valid; else
    L{None}: the file must be read (a prefix, or a digest not known).
    Reactor thread: opens the file but reads none of it (not for a storage
    whose open waits for the network, C{opensInThread}).

    @raise BadOffset: C{length} is beyond the end of the file (refused
        before it would wait for a turn in the lane).
    @raise ftx.errors.NotFound: as L{ftx.server.storage.IStorage.openForRead}.
    """
    f, size = storage.openForRead(name)
    try:
        if length is not None and length > size:
            raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), size, length))
        if length is not None and length != size:
            return None
        digest = storage.cachedDigest(f, SHA1)
    finally:
        f.close()
    return None if digest is None else (digest, size)


class _FromCache:
    """
    Answers given from the digest cache and not logged yet.
    """

    def __init__(self, first: bytes, started: float) -> None:
        self.first = first
        self.started = started
        self.count = 0
        self.size = 0


class Hashes:
    """
    The C{hash} command of one connection, reached through
    L{ftx.server.connection.IConnection}.
    """

    #: Answers from the cache given in one turn of the reactor, at most
    #: (about 5 ms of it): the next one waits for the next turn.
    perTurn = 256

    def __init__(self, connection) -> None:
        self._connection = connection
        self._fromCache: Optional[_FromCache] = None

    def commands(self) -> Dict[str, Callable]:
        return {"hash": self.hash}

    def hash(self, args) -> Optional[Deferred]:
        """
        C{hash NAME [LENGTH]}: answered at once from the digest cache when
        it can be, else by reading in the hash lane (the L{Deferred} fires
        once the answer is sent).
        """
        checkArity(args, 1, 2, "hash NAME [LENGTH]")
        name = decodeName(args[0])
        length = wire.optionalInt(args, 1, "length")
        connection = self._connection
        connection.permit("read", name)
        started = time.monotonic()
        storage = connection.storage
        if getattr(storage, "opensInThread", False):
            # An object store: its open waits for the network, so neither
            # the cache nor the length is looked at in the event loop.
            d = connection.threaded(refuseBeyondEnd, storage, name, length) if length is not None else succeed(None)
            d.addCallback(lambda _: connection.hashed(storage.digest, name, length))
        elif self._fromCache is not None and self._fromCache.count >= self.perTurn:
            # This turn's share is given (the log line of those answers
            # comes first, its call being due before this one).
            return deferLater(connection.reactor, 0, self.hash, args)
        else:
            known = knownDigest(storage, name, length)
            if known is not None:
                connection.reply(wire.formatLine(wire.DIGEST, *known))
                self._tally(name, known[1], started)
                return None
            # The log keeps the order of the answers.
            self.logFromCache()
            d = connection.hashed(storage.digest, name, length)
        return d.addCallback(self._answered, name, started)

    def _answered(self, answer: Tuple[str, int], name: bytes, started: float) -> None:
        digest, count = answer
        self._connection.reply(wire.formatLine(wire.DIGEST, digest, count))
        self._connection.logged("hash", name, count, started)

    def _tally(self, name: bytes, size: int, started: float) -> None:
        if self._fromCache is None:
            self._fromCache = _FromCache(name, started)
            self._connection.reactor.callLater(0, self.logFromCache)
        self._fromCache.count += 1
        self._fromCache.size += size

    def logFromCache(self) -> None:
        """
        Log the answers given from the cache since the last such line: one
        answer as any other C{hash}, several as one line.
        """
        batch, self._fromCache = self._fromCache, None
        if batch is None:
            return
        connection = self._connection
        if batch.count == 1:
            connection.logged("hash", batch.first, batch.size, batch.started)
            return
        connection.log.info(
            "{peer} hash {count} files from the digest cache, {path} first: {size} bytes in {duration:.3f}s: ok",
            peer=connection.peer, count=batch.count, path=nameText(batch.first), size=batch.size,
            duration=time.monotonic() - batch.started,
        )
