"""
Whether a server connection reads from its client, and why not.

Three things stop reading, each for its own reason and each lifted by its
own event: a command that runs (L{COMMAND}), a client that leaves its
replies unread (L{CLIENT_BEHIND}, from L{ftx.server.limits.WriteBackpressure})
and a disk that is behind an upload (L{DISK_BEHIND}, from the upload's
L{ftx._io.background.BackgroundWriter}). A L{ReadGate} holds the reasons
in force; reading starts again only once none is left, so one part's
resume can never undo another part's pause.
"""

from __future__ import annotations

from typing import Callable, FrozenSet, Set

__all__ = ["ReadGate", "COMMAND", "CLIENT_BEHIND", "DISK_BEHIND"]

#: A command is being handled: the next line waits until it has been
#: answered (lifted while an upload body is read, which is what comes next).
COMMAND = "command"
#: The client does not read its replies: the transport's output buffer is
#: full.
CLIENT_BEHIND = "client-behind"
#: The worker threads have too much of an upload body waiting to be written.
DISK_BEHIND = "disk-behind"


class ReadGate:
    """
    The reasons reading from one connection is paused.

    C{stopReading} and C{startReading} act on the connection; the gate
    calls C{stopReading} on every L{pause} (stopping twice is harmless)
    and C{startReading} on a L{resume} that leaves no reason in force.
    C{startReading} itself declines on a connection that is closing.
    """

    def __init__(self, stopReading: Callable[[], None], startReading: Callable[[], None]) -> None:
        self._stopReading = stopReading
        self._startReading = startReading
        self._reasons: Set[str] = set()

    @property
    def reasons(self) -> FrozenSet[str]:
        """
        The reasons in force now; empty while the connection reads.
        """
        return frozenset(self._reasons)

    def pausedFor(self, reason: str) -> bool:
        return reason in self._reasons

    def pause(self, reason: str) -> None:
        """
        Stop reading until C{reason} is lifted (and every other reason too).
        """
        self._reasons.add(reason)
        self._stopReading()

    def resume(self, reason: str) -> None:
        """
        Lift C{reason}; read again if no other reason is left. Lifting a
        reason that is not in force only reads again if none is.
        """
        self._reasons.discard(reason)
        if not self._reasons:
            self._startReading()
