"""
What the TLS and shutdown tests share: temporary folders outside the
working tree, and L{Connections}, which keeps every connection a test
makes in this process so that all of them are closed, and their close
waited for, when the test ends (trial finds the reactor clean).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from ftx._io import tls, workers
from ftx.client.api import FtxClientFactory
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.loopback import whenLost
from tests.support import listenInProcess, waitUntil

#: Seconds a test's aborted connections get to close before it fails.
CLOSE_WAIT = 10.0


class Connections:
    """
    The connections of one test: servers it runs in this process (through
    L{listen} and L{listenTLS}) and every L{FtxClientFactory} connection
    it opens, including those refused in their handshake. When the test
    ends, every connection still open is aborted at both ends it has in
    this process, the test waits until each saw C{connectionLost} (and
    fails after L{CLOSE_WAIT} seconds), the ports stop listening, and
    ftx's worker pools stop so that no thread outlives the test.

    Aborted, not closed: after C{quit} over TLS the server's close waits
    for its write-backpressure producer to go, with reading paused, so
    neither end ever sends or reads the TLS close alert and an orderly
    close would not end.
    """

    def __init__(self, case: SynchronousTestCase, reactor) -> None:
        self._case = case
        self._reactor = reactor
        #: (protocol, Deferred that fires once it lost its connection)
        self._clients = []
        self._servers = []
        self._ports = []
        build = FtxClientFactory.buildProtocol

        def buildProtocol(factory, addr):
            protocol = build(factory, addr)
            self._clients.append((protocol, whenLost(protocol)))
            return protocol

        # Cleanups run last in, first out: the pools stop after the rest.
        case.addCleanup(workers.stopPools, reactor)
        case.patch(FtxClientFactory, "buildProtocol", buildProtocol)
        case.addCleanup(lambda: Deferred.fromCoroutine(self._close()))

    def serve(self, factory: FtxServerFactory) -> FtxServerFactory:
        """
        Keep each connection C{factory} accepts (through a TLS wrapper too)
        among this test's connections.
        """
        build = factory.buildProtocol

        def buildProtocol(addr):
            protocol = build(addr)
            if protocol is not None:
                self._servers.append((protocol, whenLost(protocol)))
            return protocol

        factory.buildProtocol = buildProtocol
        return factory

    def factory(self, root: str, **options) -> FtxServerFactory:
        """
        A server factory on C{root}'s files, its connections kept.
        """
        return self.serve(FtxServerFactory(FilesystemStorage(root), self._reactor, **options))

    async def listen(self, root: str, factory=None):
        """
        A plain server in this process on 127.0.0.1 (L{listenInProcess});
        fires with the listening port.
        """
        port = await listenInProcess(self._reactor, root, factory=factory or self.factory(root))
        self._ports.append(port)
        return port

    async def listenTLS(self, root: str, certificate: str, clientCA=None, factory=None):
        """
        A TLS server in this process on 127.0.0.1 with C{certificate} (and
        asking for client certificates signed by C{clientCA}); fires with
        the listening port and its number.
        """
        endpoint = tls.serverEndpoint(
            self._reactor, "ssl:0:interface=127.0.0.1:privateKey=" + certificate, clientCA
        )
        port = await endpoint.listen(factory or self.factory(root))
        self._ports.append(port)
        return port, port.getHost().port

    async def _close(self) -> None:
        everything = self._clients + self._servers
        for protocol, lost in everything:
            if not lost.called and protocol.transport is not None:
                protocol.transport.abortConnection()
        # An abort closes the connection at the next reactor turn.
        closed = await waitUntil(self._reactor, lambda: all(lost.called for _, lost in everything), CLOSE_WAIT, 0.005)
        for port in self._ports:
            await port.stopListening()
        if not closed:
            stuck = [protocol for protocol, lost in everything if not lost.called]
            self._case.fail("connections still open {} s after the test: {}".format(CLOSE_WAIT, stuck))
