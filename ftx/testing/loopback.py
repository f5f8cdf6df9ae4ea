"""
An ftx server and client connected in memory, for testing code that
embeds the client: no port, no thread, no real time.

Bytes move between the two only when L{InMemoryConnection.flush} is
called (Twisted's C{iosim}), work the server and client would hand to
threads runs at once on the calling thread (L{InlineReactor}), and timers
wait for the test to advance the clock. A test is then a straight line::

    connection = connectInMemory(MemoryStorage({b"notes.txt": b"hello"}))
    d = connection.client.list()
    connection.flush()
    [entry] = self.successResultOf(d)
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test import iosim

from ftx.client.api import FtxClientFactory
from ftx.client.client import FtxClient
from ftx.server.protocol import FtxServerFactory, FtxServerProtocol, ServerPolicy
from ftx.server.storage import IStorage
from ftx.testing.memory import MemoryStorage

__all__ = ["InlineReactor", "InMemoryConnection", "connectInMemory"]

#: Rounds of flushing after which a conversation that still moves bytes is
#: taken to be stuck (a test's bug, not a slow transfer: each round moves
#: everything both sides have written).
_MAX_ROUNDS = 10000


class _InlinePool:
    """
    A thread pool that runs each job at once on the calling thread.
    """

    def callInThreadWithCallback(self, onResult: Callable[[bool, object], None], f, *args, **kwargs) -> None:
        try:
            result = f(*args, **kwargs)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)

    def callInThread(self, f, *args, **kwargs) -> None:
        f(*args, **kwargs)


class InlineReactor(Clock):
    """
    A C{Clock} that also stands in for the reactor's threads: work sent to
    its thread pool runs at once, and C{callFromThread} calls at once. The
    server's storage calls and both ends' disk writers then finish before
    the call that started them returns, and timers (idle timeouts, login
    delays, the greeting timeout) fire when the test calls C{advance}.
    """

    def __init__(self) -> None:
        Clock.__init__(self)
        self._pool = _InlinePool()

    def getThreadPool(self) -> _InlinePool:
        return self._pool

    def callFromThread(self, f, *args, **kwargs) -> None:
        f(*args, **kwargs)

    def callInThread(self, f, *args, **kwargs) -> None:
        f(*args, **kwargs)


class InMemoryConnection:
    """
    One server protocol and one client, joined by an C{iosim} pump.

    @ivar client: the L{FtxClient}; its Deferreds fire as L{flush} moves
        the replies.
    @ivar server: the L{FtxServerProtocol} serving it.
    @ivar factory: the L{FtxServerFactory}, whose storage is the one given.
    @ivar reactor: the L{InlineReactor} both ends use; C{advance} it for
        timers.
    """

    def __init__(self, factory: FtxServerFactory, client: FtxClient, server: FtxServerProtocol, pump) -> None:
        self.factory = factory
        self.client = client
        self.server = server
        self.reactor = factory.reactor
        self._pump = pump

    def flush(self) -> None:
        """
        Move bytes both ways until neither side has anything to send.

        @raise RuntimeError: they are still talking after many rounds.
        """
        for _ in range(_MAX_ROUNDS):
            if not self._pump.pump():
                return
        raise RuntimeError("the in-memory connection is still busy after {} rounds".format(_MAX_ROUNDS))

    def disconnect(self) -> None:
        """
        Close both ends, as a dropped connection would.
        """
        self.server.transport.loseConnection()
        self.client.protocol.transport.loseConnection()
        self.flush()


def connectInMemory(
    storage: Optional[IStorage] = None,
    *,
    policy: Optional[ServerPolicy] = None,
    checksum: Optional[str] = None,
    reactor: Optional[InlineReactor] = None,
    serverFactory: Optional[FtxServerFactory] = None,
) -> InMemoryConnection:
    """
    A client connected to a server over C{storage} (an empty
    L{MemoryStorage} by default), greeted and ready for requests.

    @param policy: the server's L{ServerPolicy}.
    @param checksum: what the client asks to check transfers by, as for
        L{ftx.client.connect}.
    @param reactor: the L{InlineReactor} to use (a new one by default).
    @param serverFactory: a server factory of your own (a subclass, or one
        with accounts); C{storage}, C{policy} and C{reactor} are then taken
        from it.
    @raise RuntimeError: the server did not greet (it refused the
        connection, or its factory is broken).
    """
    if serverFactory is None:
        reactor = reactor if reactor is not None else InlineReactor()
        storage = storage if storage is not None else MemoryStorage()
        serverFactory = FtxServerFactory(storage, reactor, policy)
    else:
        reactor = serverFactory.reactor
    clientFactory = FtxClientFactory(reactor, checksum)
    server = serverFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    protocol = clientFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    greeted: Deferred = protocol.greeted
    pump = iosim.connect(server, iosim.makeFakeServer(server), protocol, iosim.makeFakeClient(protocol), greet=False, clock=reactor)
    connection = InMemoryConnection(serverFactory, FtxClient(protocol, reactor), server, pump)
    connection.flush()
    outcome: list = []
    greeted.addBoth(outcome.append)
    if not outcome or isinstance(outcome[0], Failure):
        reason = outcome[0].getErrorMessage() if outcome else "no greeting"
        raise RuntimeError("the in-memory server did not greet the client: {}".format(reason))
    return connection
