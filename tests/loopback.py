"""
What the fast-path tests share: temporary files of random bytes, socket
pairs on loopback, a reader thread, and an in-process server with a
client on 127.0.0.1 that is fully closed when the test ends (so trial
finds the reactor clean).
"""

from __future__ import annotations

import fcntl
import os
import socket
import termios
import threading

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase

from ftx._io import workers
from ftx.client.api import connect
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.support import listenInProcess, temporaryFolder, writeRandom

KiB = 1 << 10
MiB = 1 << 20


def randomFile(case: SynchronousTestCase, size: int, seed: int = 0):
    """
    A temporary file of C{size} reproducible random bytes, open for reading
    without buffering, and its content.
    """
    path = os.path.join(temporaryFolder(case, "ftx-fastpaths-"), "data.bin")
    writeRandom(path, size, seed)
    with open(path, "rb") as f:
        content = f.read()
    f = open(path, "rb", buffering=0)
    case.addCleanup(f.close)
    return f, content


def socketPair(case: SynchronousTestCase):
    a, b = socket.socketpair()
    case.addCleanup(a.close)
    case.addCleanup(b.close)
    return a, b


def tcpPair(case: SynchronousTestCase):
    """
    Two ends of a TCP connection on 127.0.0.1 (C{SO_RCVLOWAT} is a TCP
    matter).
    """
    listener = socket.create_server(("127.0.0.1", 0))
    case.addCleanup(listener.close)
    b = socket.create_connection(listener.getsockname(), timeout=10)
    case.addCleanup(b.close)
    a, _ = listener.accept()
    case.addCleanup(a.close)
    return a, b


class Reader(threading.Thread):
    """
    Reads a socket until end of file, in a thread, so that a blocking
    sender never waits on the test itself.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.chunks = []

    def run(self) -> None:
        self.sock.settimeout(20)
        try:
            while True:
                chunk = self.sock.recv(256 * KiB)
                if not chunk:
                    return
                self.chunks.append(chunk)
        except OSError:
            return

    def received(self) -> bytes:
        self.join(20)
        return b"".join(self.chunks)


def drain(sock: socket.socket) -> bytes:
    """
    Whatever is waiting in C{sock} right now.
    """
    sock.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = sock.recv(256 * KiB)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def queued(sock) -> int:
    """
    Bytes waiting to be read in C{sock} (C{FIONREAD}).
    """
    return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"), "little", signed=True)


def whenLost(protocol) -> Deferred:
    """
    A Deferred that fires once C{protocol}'s connection is lost.
    """
    lost: Deferred = Deferred()
    original = protocol.connectionLost

    def connectionLost(reason):
        try:
            return original(reason)
        finally:
            if not lost.called:
                lost.callback(None)

    protocol.connectionLost = connectionLost
    return lost


def roots(case: SynchronousTestCase, *names: str):
    """
    Fresh empty folders C{names} under one temporary folder.
    """
    base = temporaryFolder(case, "ftx-fastpaths-")
    made = []
    for name in names:
        path = os.path.join(base, name)
        os.mkdir(path)
        made.append(path)
    return made


async def session(case, reactor, root: str, factory=None, checksum=None):
    """
    A server in this process serving C{root} on 127.0.0.1 and a client
    connected to it. At the end of the test the client says goodbye, the
    port stops listening, and the test waits until both ends of every
    connection are closed.
    """
    # Run last: the transfers' worker threads would otherwise outlive a
    # pytest session that never shuts its reactor down.
    case.addCleanup(workers.stopPools, reactor)
    if factory is None:
        factory = FtxServerFactory(FilesystemStorage(root), reactor)
    serverLost = []
    build = factory.buildProtocol

    def buildProtocol(addr):
        protocol = build(addr)
        if protocol is not None:
            serverLost.append(whenLost(protocol))
        return protocol

    factory.buildProtocol = buildProtocol
    port = await listenInProcess(reactor, root, factory=factory)
    case.addCleanup(lambda: DeferredList(serverLost))
    case.addCleanup(port.stopListening)
    client = await connect(reactor, "127.0.0.1:{}".format(port.getHost().port), checksum=checksum)
    clientLost = whenLost(client.protocol)

    async def quit():
        if client.protocol.transport.connected:
            try:
                await client.quit()
            except Exception:
                client.protocol.transport.loseConnection()
        await clientLost

    case.addCleanup(lambda: Deferred.fromCoroutine(quit()))
    return port, client


#: Names in order, mixing files sent whole (up to 256 KiB) with streamed ones.
MIX = [
    ("mix/a-1k.txt", 1 * KiB),
    ("mix/b-big.bin", 2 * MiB + 7),
    ("mix/c-empty", 0),
    ("mix/d-200k.bin", 200 * KiB),
    ("mix/e-big.bin", 3 * MiB),
    ("mix/f-256k.bin", 256 * KiB),
    ("mix/g-256k-plus-1.bin", 256 * KiB + 1),
    ("mix/h-1k.txt", 1 * KiB),
]


def makeMix(root: str):
    """
    Write L{MIX} under C{root}; returns each name's SHA-1.
    """
    digests = {}
    for seed, (name, size) in enumerate(MIX):
        digests[name] = writeRandom(os.path.join(root, name), size, seed=100 + seed)
    return digests


class Recorder(Protocol):
    """
    A protocol that keeps what it receives and says when it is connected,
    when it has received a given count, and when it is lost.
    """

    def __init__(self) -> None:
        self.chunks = []
        self.made: Deferred = Deferred()
        self.lost: Deferred = Deferred()
        self._waiting = []

    def connectionMade(self) -> None:
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        self._check()

    def connectionLost(self, reason) -> None:
        if not self.lost.called:
            self.lost.callback(None)

    def received(self) -> bytes:
        return b"".join(self.chunks)

    def whenReceived(self, count: int) -> Deferred:
        """
        Fires once at least C{count} bytes have arrived in all.
        """
        d: Deferred = Deferred()
        self._waiting.append((count, d))
        self._check()
        return d

    def _check(self) -> None:
        total = sum(len(c) for c in self.chunks)
        for entry in list(self._waiting):
            if total >= entry[0]:
                self._waiting.remove(entry)
                entry[1].callback(total)


async def tcpConnection(case, reactor):
    """
    A real Twisted TCP connection on 127.0.0.1: the server's L{Recorder}
    (on a C{tcp.Server} transport) and the client's (on a C{tcp.Client}),
    both connected. Closed, and waited for, when the test ends.
    """
    servers = []

    def buildServer(addr):
        protocol = Recorder()
        servers.append(protocol)
        return protocol

    serverFactory = Factory()
    serverFactory.buildProtocol = buildServer
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(serverFactory)
    case.addCleanup(port.stopListening)
    clientFactory = Factory()
    clientFactory.buildProtocol = lambda addr: Recorder()
    client = await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port, timeout=10).connect(clientFactory)
    for _ in range(1000):
        # The accept may be handled in a later reactor turn than the connect.
        if servers:
            break
        await deferLater(reactor, 0.01, lambda: None)
    case.assertTrue(servers, "the server never accepted the connection")
    server = servers[0]
    await server.made

    async def close():
        for protocol in (client, server):
            if protocol.transport.connected:
                protocol.transport.abortConnection()
        await DeferredList([client.lost, server.lost])

    case.addCleanup(lambda: Deferred.fromCoroutine(close()))
    return server, client
