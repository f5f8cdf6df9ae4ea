"""
Blocking reads on a socket the reactor lent to a thread for one body.

The socket stays non-blocking, because it is still the reactor's and goes
back to it for the trailer, so a thread that wants to wait for bytes polls
it itself. Both ends lend their socket this way (the client's download
reader, L{ftx._io.threadedbody}; the server's upload reader,
L{ftx._io.threadedreceive}); only how long a silence they wait out before
giving the socket back differs.
"""

from __future__ import annotations

import select
from typing import Callable

__all__ = ["LentSocket"]


class LentSocket:
    """
    C{recv_into} that waits, in short polls so that a stop request is seen
    soon, and gives up after C{giveUpAfter} seconds without a byte.
    """

    def __init__(self, sock, pollSeconds: float, giveUpAfter: float, stopped: Callable[[], bool]) -> None:
        self._recvInto = sock.recv_into
        self._pollMilliseconds = pollSeconds * 1000
        self._pollSeconds = pollSeconds
        self._giveUpAfter = giveUpAfter
        self._stopped = stopped
        self._poller = select.poll()
        # A socket closed meanwhile (-1) fails here, with an OSError the
        # reading thread takes as an early end, like any other.
        self._poller.register(sock.fileno(), select.POLLIN)

    def recvInto(self, view, count: int, flags: int = 0) -> int:
        """
        Read up to C{count} bytes into C{view} (C{flags} as for
        C{recv_into}: C{MSG_PEEK} leaves them there); 0 at the end of the stream,
        after a stop request or after the silence allowed.

        @raise OSError: the connection failed.
        """
        quiet = 0.0
        while not self._stopped():
            try:
                return self._recvInto(view, count, flags)
            except (BlockingIOError, InterruptedError):
                if self._poller.poll(self._pollMilliseconds):
                    quiet = 0.0
                else:
                    quiet += self._pollSeconds
                    if quiet >= self._giveUpAfter:
                        return 0
        return 0
