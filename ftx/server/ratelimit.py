"""
The server's rate limits: C{--limit-rate} per connection, C{--limit-total}
for the whole server, C{rate=SIZE/s} per account in the access file.

Each applies to each direction on its own: a connection limited to 1 MB/s
may send 1 MB/s and receive 1 MB/s. Bodies the server sends are held back
by their producer (L{ftx._io.filebody.BodySender} asks the connection's
sending L{Throttle} before each step); bytes it receives are counted as they
arrive and reading stops (the L{ReadGate}'s L{RATE_LIMITED} reason) while
the receiving throttle is in debt. Nothing is buffered to keep a rate: the
client's own TCP window holds what it sends ahead.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from twisted.internet.defer import Deferred

from ftx._io import internals
from ftx._io.ratelimit import Throttle, TokenBucket

__all__ = ["RATE_LIMITED", "ServerRates", "ConnectionRate"]

#: The L{ftx.server.readgate.ReadGate} reason: the client sent faster than
#: its limit allows.
RATE_LIMITED = "rate-limited"


def _pair(rate: Optional[int], clock) -> Tuple[Optional[TokenBucket], Optional[TokenBucket]]:
    """
    A sending and a receiving bucket for C{rate}, or none for no limit.
    """
    if not rate:
        return None, None
    return TokenBucket(rate, clock), TokenBucket(rate, clock)


class ServerRates:
    """
    The limits of one server: the per-connection rate, the buckets every
    connection shares (C{--limit-total}) and one pair per limited account,
    shared by all of that account's connections.
    """

    def __init__(self, clock, perConnection: Optional[int] = None, total: Optional[int] = None) -> None:
        self._clock = clock
        self.perConnection = perConnection or None
        self.total = total or None
        self._totalBuckets = _pair(self.total, clock)
        self._accounts: Dict[str, Tuple[Optional[TokenBucket], Optional[TokenBucket]]] = {}

    def forConnection(self, gate) -> "ConnectionRate":
        """
        The throttles of a new connection whose reading C{gate} controls.
        """
        own = _pair(self.perConnection, self._clock)
        sending = Throttle([own[0], self._totalBuckets[0]])
        receiving = Throttle([own[1], self._totalBuckets[1]])
        return ConnectionRate(self, sending, receiving, gate)

    def forAccount(self, name: str, rate: Optional[int]):
        """
        The bucket pair of account C{name} limited to C{rate}, made once.
        """
        if not rate:
            return None, None
        pair = self._accounts.get(name)
        if pair is None or pair[0].rate != rate:
            pair = self._accounts[name] = _pair(rate, self._clock)
        return pair

    def connectionBucket(self) -> Optional[TokenBucket]:
        """
        A new bucket of the per-connection limit for one direction of one
        connection the server does not make through L{forConnection} (the
        web view's HTTP connections), or L{None} for no limit.
        """
        return TokenBucket(self.perConnection, self._clock) if self.perConnection else None

    def sendingThrottle(self, own: Optional[TokenBucket], account=None) -> Throttle:
        """
        A sending L{Throttle} held back by C{own} (a L{connectionBucket}),
        the server-wide total and the C{rate=} of C{account} (an
        L{ftx.server.accounts.Account} or L{None}): the total and the
        account's limit are the same buckets the protocol's connections use.
        """
        buckets = [own, self._totalBuckets[0]]
        if account is not None:
            buckets.append(self.forAccount(account.name, getattr(account.permissions, "rate", None))[0])
        return Throttle(buckets)


class ConnectionRate:
    """
    The rate limits of one server connection.

    @ivar sending: the L{Throttle} bodies the server sends obey.
    @ivar receiving: the L{Throttle} of what the client sends.
    """

    def __init__(self, rates: ServerRates, sending: Throttle, receiving: Throttle, gate) -> None:
        self._rates = rates
        self.sending = sending
        self.receiving = receiving
        self._gate = gate
        self._sendWait: Optional[Deferred] = None

    @property
    def limitsReading(self) -> bool:
        """
        Whether reading is limited: bodies are then read in small steps
        through the protocol, not in megabytes straight from the socket.
        """
        return self.receiving.limited

    def started(self, transport) -> None:
        """
        The connection is made: read no more at a time than a step.
        """
        if self.receiving.limited:
            internals.setReadSize(transport, self.receiving.step)

    def loggedIn(self, account, transport) -> None:
        """
        C{account} logged in: its own limit (if any) applies from now on.
        """
        if account is None:
            return
        rate = getattr(account.permissions, "rate", None)
        sending, receiving = self._rates.forAccount(account.name, rate)
        if sending is None:
            return
        self.sending.add(sending)
        self.receiving.add(receiving)
        self.started(transport)

    def afterSending(self, count: int) -> Deferred:
        """
        C{count} bytes were written whole (a small file of C{mget}): fires
        once the limit allows more.
        """
        self.sending.spend(count)
        d: Deferred = Deferred()
        if self.sending.inDebt:
            self._sendWait = d
            self.sending.wait(self._maySend)
        else:
            d.callback(None)
        return d

    def _maySend(self) -> None:
        d, self._sendWait = self._sendWait, None
        if d is not None:
            d.callback(None)

    def received(self, count: int) -> None:
        """
        C{count} bytes arrived: stop reading while they exceed the limit.
        """
        if not self.receiving.limited:
            return
        self.receiving.spend(count)
        if self.receiving.inDebt and not self._gate.pausedFor(RATE_LIMITED):
            self._gate.pause(RATE_LIMITED)
            self.receiving.wait(self._readAgain)

    def _readAgain(self) -> None:
        self._gate.resume(RATE_LIMITED)

    def connectionLost(self) -> None:
        self.sending.cancel()
        self.receiving.cancel()
        # A batch waiting to send its next small file goes on, and finds
        # the connection gone.
        self._maySend()
