"""
Asking a server for its disk space over UDP (``ftx df --udp``): one
datagram out, one back, retried a few times. The datagram format is
L{ftx.protocol.diskspace}.
"""

from __future__ import annotations

import os
from typing import Tuple

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import DatagramProtocol

from ftx._io.endpoints import parseAddress
from ftx.client.results import DiskSpace
from ftx.errors import FtxError
from ftx.protocol.diskspace import formatRequest, parseAnswer

__all__ = ["NoAnswer", "queryDiskSpace", "hostAndPort"]


class NoAnswer(FtxError):
    """
    The server did not answer the disk-space query over UDP: it may not have
    been started with --udp-port, or the datagrams are dropped on the way.
    """

    code = 0
    token = "no-answer"


def hostAndPort(address: str) -> Tuple[str, int]:
    """
    The host and port of a client address (C{host:port}, a bare port, or a
    C{tcp:}/C{tls:}/C{ssl:} endpoint string).

    @raise ValueError: the address has no host and port (a Unix socket).
    """
    try:
        parsed = parseAddress(address)
    except ValueError:
        parsed = None
    if parsed is None or not parsed.isTCP:
        raise ValueError("cannot use UDP with {!r}: it needs a HOST:PORT address".format(address))
    return parsed.host, parsed.port


class _Query(DatagramProtocol):
    noisy = False

    def __init__(self, token: str, deferred: Deferred) -> None:
        self.token = token
        self.deferred = deferred

    def datagramReceived(self, data: bytes, addr) -> None:
        answer = parseAnswer(data)
        if answer is not None and answer[2] == self.token and not self.deferred.called:
            self.deferred.callback(DiskSpace(answer[0], answer[1]))

    def connectionRefused(self) -> None:
        if not self.deferred.called:
            self.deferred.errback(ConnectionRefusedError("nothing listens on that UDP port"))

    def stopProtocol(self) -> None:
        # The epoll reactor reports the ICMP "port unreachable" of a
        # connected UDP socket as an error event and closes the port rather
        # than calling connectionRefused.
        self.connectionRefused()


def queryDiskSpace(reactor, host: str, port: int, timeouts=(0.5, 1.0, 2.0)) -> "Deferred[DiskSpace]":
    """
    Ask C{host:port} for its disk space over UDP, sending the question once
    per entry of C{timeouts} and waiting that long for an answer each time.
    Fires with L{DiskSpace}; fails with L{NoAnswer} once all tries are
    spent, or with C{ConnectionRefusedError} if the host says nothing listens.
    """
    if isIPAddress(host) or isIPv6Address(host):
        resolved: Deferred = Deferred()
        resolved.callback(host)
    else:
        resolved = reactor.resolve(host)

    def ask(ip: str) -> Deferred:
        token = os.urandom(8).hex()
        done: Deferred = Deferred()
        protocol = _Query(token, done)
        listening = reactor.listenUDP(0, protocol, interface="::" if isIPv6Address(ip) else "")
        listening.connect(ip, port)
        waits = list(timeouts)
        pending = []

        def send() -> None:
            if done.called or protocol.transport is None:
                return
            if not waits:
                done.errback(NoAnswer("no answer from {}:{} over UDP after {} tries (is the server started with --udp-port?)".format(host, port, len(timeouts))))
                return
            try:
                protocol.transport.write(formatRequest(token))
            except ConnectionRefusedError:
                protocol.connectionRefused()
                return
            pending.append(reactor.callLater(waits.pop(0), send))

        def cleanUp(result):
            for call in pending:
                if call.active():
                    call.cancel()
            stopped = listening.stopListening()
            if isinstance(stopped, Deferred):
                return stopped.addCallback(lambda _: result)
            return result

        send()
        return done.addBoth(cleanUp)

    return resolved.addCallback(ask)
