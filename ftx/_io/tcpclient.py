"""
A client endpoint for a TCP address whose host is an IP address literal
(C{127.0.0.1:1234}, C{[::1]:1234}): one C{connectTCP}, nothing more; and
one for C{localhost} (the C{ftx} command's default server), which tries
C{::1}, then C{127.0.0.1}.

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

__all__ = ["isAddressLiteral", "isLoopbackName", "AddressEndpoint", "LoopbackEndpoint"]

#: Seconds a connection attempt may take, as Twisted's endpoints default.
CONNECT_TIMEOUT = 30
#: The addresses of C{localhost} (RFC 6761 reserves the name for the
#: loopback), in the order C{getaddrinfo} usually gives them.
LOOPBACK = ("::1", "127.0.0.1")


def isLoopbackName(host: str) -> bool:
    """
    Whether C{host} is C{localhost} (in any case, with or without the
    final dot).
    """
    return host.lower().rstrip(".") == "localhost"


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


@implementer(interfaces.IStreamClientEndpoint)
class LoopbackEndpoint:
    """
    Connects to C{localhost}: to each address of L{LOOPBACK} in turn,
    going on to the next when one cannot be connected to (nothing listens
    there, or the machine has no IPv6), and failing as the last one did.
    Trying them one after the other costs nothing on the loopback, where
    a refusal is immediate; a name that may lead elsewhere goes to
    Twisted's C{HostnameEndpoint}, which races its addresses.
    """

    def __init__(self, reactor, port: int, timeout: float = CONNECT_TIMEOUT) -> None:
        self.reactor = reactor
        self.port = port
        self.timeout = timeout

    def __repr__(self) -> str:
        return "LoopbackEndpoint({!r})".format(self.port)

    def connect(self, protocolFactory) -> Deferred:
        hosts = iter(LOOPBACK)

        def attempt(failure=None):
            host = next(hosts, None)
            if host is None:
                return failure
            d = AddressEndpoint(self.reactor, host, self.port, self.timeout).connect(protocolFactory)
            return d.addErrback(nextOne)

        def nextOne(failure):
            failure.trap(error.ConnectError)
            if failure.check(error.ConnectingCancelledError):
                return failure
            return attempt(failure)

        return attempt()
