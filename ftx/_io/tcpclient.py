"""
A client endpoint for a TCP address whose host is an IP address literal
(C{127.0.0.1:1234}, C{[::1]:1234}): one C{connectTCP}, nothing more.

Twisted's C{HostnameEndpoint} does what a host name needs (resolution in
the reactor's thread pool, then racing the addresses), but for an address
that is already numeric that is a thread started and joined for nothing,
and its module (C{twisted.internet.endpoints}, which pulls in the plugin
system and C{idna}) is about a tenth of a small C{ftx} command's start-up.
This endpoint behaves as C{TCP4ClientEndpoint}/C{TCP6ClientEndpoint} do:
the Deferred fires with the connected protocol, or fails with the reason
the connection could not be made (C{ConnectionRefusedError}, ...), and
cancelling it stops the attempt.
"""

from __future__ import annotations

import socket
from typing import Optional

from twisted.internet import error, interfaces
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from zope.interface import directlyProvides, implementer

__all__ = ["isAddressLiteral", "AddressEndpoint"]

#: Seconds a connection attempt may take, as Twisted's endpoints default.
CONNECT_TIMEOUT = 30


def isAddressLiteral(host: str) -> bool:
    """
    Whether C{host} is an IPv4 or IPv6 address written out, rather than a
    name to resolve.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%", 1)[0] if family == socket.AF_INET6 else host)
        except (OSError, ValueError):
            continue
        return True
    return False


class _Connected(Protocol):
    """
    Hands the transport to the real protocol once connected and fires the
    endpoint's Deferred with it; afterwards it only passes events on (as
    Twisted's own endpoints do).
    """

    def __init__(self, connected: Deferred, wrapped) -> None:
        self._connected = connected
        self._wrapped = wrapped
        for iface in (interfaces.IHalfCloseableProtocol, interfaces.IHandshakeListener):
            if iface.providedBy(wrapped):
                directlyProvides(self, iface)

    def logPrefix(self) -> str:
        if interfaces.ILoggingContext.providedBy(self._wrapped):
            return self._wrapped.logPrefix()
        return self._wrapped.__class__.__name__

    def connectionMade(self) -> None:
        self._wrapped.makeConnection(self.transport)
        self._connected.callback(self._wrapped)

    def dataReceived(self, data: bytes) -> None:
        self._wrapped.dataReceived(data)

    def connectionLost(self, reason) -> None:
        self._wrapped.connectionLost(reason)

    def readConnectionLost(self) -> None:
        self._wrapped.readConnectionLost()

    def writeConnectionLost(self) -> None:
        self._wrapped.writeConnectionLost()

    def handshakeCompleted(self) -> None:
        self._wrapped.handshakeCompleted()


class _Attempt(ClientFactory):
    """
    One connection attempt: builds the real protocol through C{factory}
    and reports the outcome on L{deferred}.
    """

    def __init__(self, factory) -> None:
        self.factory = factory
        self.connector = None
        self.deferred: Deferred = Deferred(self._cancel)

    def _cancel(self, deferred: Deferred) -> None:
        deferred.errback(error.ConnectingCancelledError(self.connector.getDestination()))
        self.connector.stopConnecting()

    def doStart(self) -> None:
        self.factory.doStart()

    def doStop(self) -> None:
        self.factory.doStop()

    def buildProtocol(self, addr) -> Optional[Protocol]:
        try:
            wrapped = self.factory.buildProtocol(addr)
            if wrapped is None:
                raise error.NoProtocol()
        except BaseException:
            self.deferred.errback()
            return None
        return _Connected(self.deferred, wrapped)

    def clientConnectionFailed(self, connector, reason) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)


@implementer(interfaces.IStreamClientEndpoint)
class AddressEndpoint:
    """
    Connects over TCP to C{host} (an IP address literal, see
    L{isAddressLiteral}) and C{port}.
    """

    def __init__(self, reactor, host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.timeout = timeout

    def __repr__(self) -> str:
        return "AddressEndpoint({!r}, {!r})".format(self.host, self.port)

    def connect(self, protocolFactory) -> Deferred:
        attempt = _Attempt(protocolFactory)
        try:
            attempt.connector = self.reactor.connectTCP(self.host, self.port, attempt, timeout=self.timeout)
        except BaseException:
            attempt.deferred.errback()
        return attempt.deferred
