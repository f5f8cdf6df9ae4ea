"""
The deadlines that stop a slowloris: a command line must end within
C{--line-timeout} of its first byte, and a client that must log in must do
so within C{--login-timeout} of connecting (``docs/operations.rst``).

The idle timeout alone cannot stop such a client: every byte restarts it,
so one byte every few seconds would hold a connection, and its slot, for
ever; and a client that never logs in holds a slot without being allowed
to do anything.
"""

from __future__ import annotations

from typing import Callable, Optional

from ftx._io import internals
from ftx.errors import BadRequest, FtxError, LoginRequired

__all__ = ["Deadlines"]


class Deadlines:
    """
    The line and login deadlines of one server connection, on the
    connection's reactor (a Clock in tests). Part of
    L{ftx.server.limits.ConnectionLimits}; it reaches the protocol through
    L{ftx.server.connection.IConnection} and closes through C{closeWith},
    which answers with an error and hangs up.
    """

    def __init__(self, connection, closeWith: Callable[[FtxError], None]) -> None:
        self._connection = connection
        self._closeWith = closeWith
        self._line = None
        self._login = None

    def watchLine(self, pending: int) -> None:
        """
        After input was handled: keep the line deadline running while the
        server waits for the end of a command line the client has begun
        (C{pending} bytes not yet handed to C{LineReceiver}, plus its
        partial line), and only then: not while a command runs or a body
        is read, nor between lines.
        """
        connection = self._connection
        seconds = getattr(connection.policy, "lineTimeout", None)
        waiting = (
            seconds
            and connection.line_mode
            and not connection.paused
            and not connection.disconnected
            and not connection.transport.disconnecting
            and pending + internals.lineBuffered(connection) > 0
        )
        if not waiting:
            self._cancelLine()
        elif self._line is None:
            self._line = connection.reactor.callLater(seconds, self._lineTooSlow, seconds)

    def _lineTooSlow(self, seconds: float) -> None:
        self._line = None
        connection = self._connection
        if connection.disconnected or connection.transport.disconnecting or connection.paused or not connection.line_mode:
            return
        connection.log.info(
            "{peer} did not finish a command line within {seconds} seconds; closing", peer=connection.peer, seconds=seconds
        )
        self._closeWith(BadRequest("command line not finished within {:g} seconds; closing".format(seconds)))

    def expectLogin(self, seconds: Optional[float]) -> None:
        """
        The client must log in within C{seconds} (L{None} or 0: no limit)
        or be closed.
        """
        if seconds and self._login is None:
            self._login = self._connection.reactor.callLater(seconds, self._loginTooSlow, seconds)

    def loggedIn(self) -> None:
        if self._login is not None:
            login, self._login = self._login, None
            if login.active():
                login.cancel()

    def _loginTooSlow(self, seconds: float) -> None:
        self._login = None
        connection = self._connection
        if connection.disconnected or connection.transport.disconnecting:
            return
        connection.log.info("{peer} did not log in within {seconds} seconds; closing", peer=connection.peer, seconds=seconds)
        self._closeWith(LoginRequired("not logged in within {:g} seconds; closing".format(seconds)))

    def _cancelLine(self) -> None:
        if self._line is not None:
            line, self._line = self._line, None
            if line.active():
                line.cancel()

    def stop(self) -> None:
        """
        The connection is gone: no deadline is left running.
        """
        self._cancelLine()
        self.loggedIn()
