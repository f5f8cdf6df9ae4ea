"""
Progress from a body thread to the reactor, a few times a second.

Each thread that moves a body's bytes (L{ftx._io.threadedbody},
L{ftx._io.threadedblocks}, L{ftx._io.threadedreceive},
L{ftx._io.threadedsend}) counts them as it goes; a call into the reactor
for every read or send would cost more than the progress is worth, so the
count goes over every L{every} bytes or L{seconds}, whichever comes first.
"""

from __future__ import annotations

from time import monotonic
from typing import Callable

__all__ = ["ThrottledReports"]


class ThrottledReports:
    """
    Bytes moved in a thread, handed to C{progressed} in the reactor thread
    (C{reactor.callFromThread}) in batches.

    @ivar pending: bytes counted and not handed over yet.
    """

    def __init__(self, reactor, progressed: Callable[[int], None], every: int, seconds: float) -> None:
        self._reactor = reactor
        self._progressed = progressed
        self._every = every
        self._seconds = seconds
        self._last = monotonic()
        self.pending = 0

    def add(self, count: int, more: bool = True) -> None:
        """
        Count C{count} bytes; hand the batch over if it is due and C{more}
        (a thread whose last bytes these are leaves them to its end).
        """
        self.pending += count
        if more and (self.pending >= self._every or monotonic() - self._last >= self._seconds):
            self.flush()

    def flush(self) -> None:
        """
        Hand over what is pending now, if anything.
        """
        if self.pending:
            self._reactor.callFromThread(self._progressed, self.pending)
            self.pending = 0
            self._last = monotonic()
