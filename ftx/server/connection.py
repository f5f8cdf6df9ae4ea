"""
What the parts of a server connection may ask of the protocol that owns
them.

L{ftx.server.protocol.FtxServerProtocol} keeps the connection, the
dispatch and the small commands; it owns three parts, each with its own
state: L{ftx.server.downloads.Downloads} (sending bodies),
L{ftx.server.uploads.Uploads} (receiving them) and
L{ftx.server.limits.ConnectionLimits} (bounded input, idle timeout, line
and login deadlines, graceful close, write backpressure). A part reaches
the protocol only through L{IConnection}, and the other parts only through
what the protocol hands it when it makes them; no part reads another's
private state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from zope.interface import Attribute, Interface

from ftx.errors import BadRequest

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = ["IConnection", "checkArity"]


class IConnection(Interface):
    """
    One client connection, as its parts see it.
    """

    transport = Attribute("The connection's transport: parts write bodies and listings and close through it.")
    peer = Attribute("C{host:port} of the client, for log lines.")
    log = Attribute("The protocol's logger: parts log as the connection, so every line keeps one namespace.")
    disconnected = Attribute("Whether the connection is gone; parts stop writing once it is.")
    checksum = Attribute("The checksum name body trailers carry on this connection.")
    storage = Attribute("The L{ftx.server.storage.IStorage} this client is served from.")
    reactor = Attribute("The reactor: timers, threads and the clock of body reads.")
    policy = Attribute("The L{ftx.server.protocol.ServerPolicy} of the server.")
    gate = Attribute("The L{ftx.server.readgate.ReadGate}: the one place reading is paused and resumed.")
    rate = Attribute("The L{ftx.server.ratelimit.ConnectionRate}: the throttles bodies obey each way.")
    paused = Attribute("C{LineReceiver}'s: whether lines and raw data are being delivered.")
    line_mode = Attribute("C{LineReceiver}'s: true in line mode, false while a body is read raw.")
    delimiter = Attribute("What lines are split on when read: C{LF} (a C{CR} before it is dropped); lines sent end in L{ftx.protocol.wire.LINE_END}.")

    def reply(line: bytes) -> None:
        """
        Send one reply line, unless the connection is gone.
        """

    def permit(action: str, name: "bytes | None") -> None:
        """
        Raise an L{ftx.errors.FtxError} unless this client may do C{action}
        (C{read}, C{write}, C{delete}) to C{name}.
        """

    def threaded(f, *args) -> "Deferred":
        """
        Run C{f(*args)} in the reactor's thread pool; the idle timer is off
        meanwhile, since the server is busy, not the client.
        """

    def hashed(f, *args) -> "Deferred":
        """
        Run digest work C{f(*args)} (reading a file or a prefix for its
        digest) in the server's L{ftx.server.hashlane.HashLane}, fairly
        across client addresses; the idle timer is off meanwhile.
        """

    def logged(verb: str, name: bytes, size: int, started: float, outcome: str = "ok") -> None:
        """
        Log one finished transfer in the server's usual line.
        """

    def resetTimeout() -> None:
        """
        Something moved: the connection is not idle.
        """

    def parse(data: bytes) -> None:
        """
        Hand C{data} to C{LineReceiver}, which splits it into lines (or
        passes it on raw while a body is read).
        """

    def inputHeld() -> int:
        """
        Bytes received but not yet handed to C{lineReceived} or
        C{rawDataReceived}.
        """

    def setRawMode() -> None:
        """
        C{LineReceiver}'s: what arrives next is a body.
        """

    def setLineMode(extra: bytes = b"") -> None:
        """
        C{LineReceiver}'s: back to lines; C{extra} is parsed first.
        """


def checkArity(args: List[str], least: int, most: int, usage: str) -> None:
    """
    Refuse a command with fewer than C{least} or more than C{most}
    arguments, telling its C{usage}.
    """
    if not least <= len(args) <= most:
        raise BadRequest("usage: {}".format(usage))
