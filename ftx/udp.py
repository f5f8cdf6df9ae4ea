"""
Disk space over UDP: a one-datagram question and a one-datagram answer,
for monitoring that should not open a connection (``ftx df --udp``).

The format is in ``docs/protocol.rst`` ("Disk space over UDP"). The server
side answers from the same storage object as the TCP ``df`` command, so
both give the same figures. Because a UDP source address can be forged, a
request must be at least as long as any answer: the server can never be
used to send more bytes than it was sent.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Tuple

from twisted.application.service import Service
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ftx.errors import FtxError
from ftx.requests import DiskSpace

__all__ = [
    "DiskSpaceProtocol",
    "DiskSpaceService",
    "NoAnswer",
    "queryDiskSpace",
    "hostAndPort",
    "interfaceOf",
]

#: Requests shorter than this are ignored; no answer is longer.
REQUEST_SIZE = 64
MAX_REQUEST_SIZE = 512
_TOKEN = re.compile(r"\A[A-Za-z0-9]{1,16}\Z")
_ANSWER = re.compile(r"\A212 (0|[1-9][0-9]{0,18}) (0|[1-9][0-9]{0,18}) ([A-Za-z0-9]{1,16})\Z")


class NoAnswer(FtxError):
    """
    The server did not answer the disk-space query over UDP: it may not have
    been started with --udp-port, or the datagrams are dropped on the way.
    """

    code = 0
    token = "no-answer"


def formatRequest(token: str) -> bytes:
    return ("df " + token).encode("ascii").ljust(REQUEST_SIZE, b" ")


def parseRequest(data: bytes) -> Optional[str]:
    """
    The token of a well-formed request, or L{None} for anything else.
    """
    if not REQUEST_SIZE <= len(data) <= MAX_REQUEST_SIZE:
        return None
    try:
        fields = data.decode("ascii").split()
    except UnicodeDecodeError:
        return None
    if len(fields) != 2 or fields[0] != "df" or not _TOKEN.match(fields[1]):
        return None
    return fields[1]


def parseAnswer(data: bytes) -> Optional[Tuple[int, int, str]]:
    try:
        match = _ANSWER.match(data.decode("ascii").rstrip())
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3)


class DiskSpaceProtocol(DatagramProtocol):
    """
    Answers C{df} datagrams with the storage's total and free bytes; ignores
    everything else without a word (an error answer would itself be a
    reflection vector).
    """

    _log = Logger()
    noisy = False

    def __init__(self, storage) -> None:
        self.storage = storage

    def datagramReceived(self, data: bytes, addr) -> None:
        token = parseRequest(data)
        if token is None:
            return
        try:
            total, free = self.storage.diskSpace()
        except Exception:
            self._log.failure("df over UDP failed for {peer}", peer=addr)
            return
        self.transport.write("212 {} {} {}".format(total, free, token).encode("ascii"), addr)


class DiskSpaceService(Service):
    """
    Listens for disk-space datagrams while running; logs the port it got so
    that a server started with C{--udp-port 0} tells which port it has.
    """

    _log = Logger()

    def __init__(self, port: int, interface: str, storage, reactor=None) -> None:
        self.portNumber = port
        self.interface = interface
        self.storage = storage
        self.reactor = reactor
        self.port = None

    def privilegedStartService(self) -> None:
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        self.port = self.reactor.listenUDP(self.portNumber, DiskSpaceProtocol(self.storage), interface=self.interface)
        self._log.info(
            "ftx answering df over UDP on {interface} (port {port})",
            interface=self.interface or "*", port=self.port.getHost().port,
        )

    def startService(self) -> None:
        Service.startService(self)
        if self.port is None:
            self.privilegedStartService()

    def stopService(self):
        Service.stopService(self)
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


def _endpointFields(description: str) -> Tuple[str, list, dict]:
    """
    Split a Twisted endpoint string into kind, positional and keyword
    fields, honouring backslash escapes (C{interface=\\:\\:1}).
    """
    parts, current, escaped = [], "", False
    for char in description:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    positional = [p for p in parts[1:] if "=" not in p]
    keywords = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    return parts[0], positional, keywords


def interfaceOf(description: str) -> str:
    """
    The interface a server endpoint string listens on, for binding the UDP
    port beside it: C{""} (all IPv4 interfaces) unless it names one; a Unix
    socket gives the loopback interface.
    """
    if description.isdigit():
        return ""
    kind, _, keywords = _endpointFields(description)
    if kind == "unix":
        return "127.0.0.1"
    return keywords.get("interface", "::" if kind == "tcp6" else "")


def hostAndPort(address: str) -> Tuple[str, int]:
    """
    The host and port of a client address (C{host:port}, a bare port, or a
    C{tcp:}/C{tls:}/C{ssl:} endpoint string).

    @raise ValueError: the address has no host and port (a Unix socket).
    """
    if address.isdigit():
        return "localhost", int(address)
    kind, positional, keywords = _endpointFields(address)
    if kind in ("tcp", "tcp4", "tcp6", "tls", "ssl"):
        host = keywords.get("host") or (positional[0] if positional else "")
        port = keywords.get("port") or (positional[1] if len(positional) > 1 else "")
    else:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
    if not host or not port.isdigit():
        raise ValueError("cannot use UDP with {!r}: it needs a HOST:PORT address".format(address))
    return host, int(port)


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
