"""
The server's rate limits over HTTP: C{--limit-rate} per HTTP connection,
C{--limit-total} shared with every connection of the ftx protocol, and an
account's C{rate=} shared with that account's protocol connections.

Only what the view sends is limited (file bodies); requests are a few
hundred bytes of headers. Each response gets a sending
L{ftx._io.ratelimit.Throttle} of three buckets: its connection's own (kept
as long as the connection, so that the requests of one keep-alive
connection share it, as the commands of one protocol connection do), the
server's total and its account's. L{ftx.server.web.ranges.RangeProducer}
asks it before each chunk and waits for the tokens with no byte held.
(Under HTTP/2, which needs the C{h2} package ftx does not install, each
stream would count as a connection.)
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from ftx._io.ratelimit import Throttle

__all__ = ["WebRates"]


class WebRates:
    """
    The throttles of the web view's responses, from the server's
    L{ftx.server.ratelimit.ServerRates} (or none: no limits at all).
    """

    def __init__(self, rates=None) -> None:
        self._rates = rates
        # HTTP channel -> its own bucket (or None): dropped with the channel.
        self._own: "WeakKeyDictionary[object, object]" = WeakKeyDictionary()

    def throttleFor(self, request, account) -> Throttle:
        """
        The sending throttle of one response to C{request}, made for
        C{account} (an L{ftx.server.accounts.Account}, or L{None}).
        """
        if self._rates is None:
            return Throttle()
        channel = getattr(request, "channel", None)
        if channel is None:
            own = self._rates.connectionBucket()
        else:
            try:
                own = self._own[channel]
            except KeyError:
                own = self._own[channel] = self._rates.connectionBucket()
        return self._rates.sendingThrottle(own, account)
