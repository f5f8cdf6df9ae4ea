"""
Answering disk-space questions over UDP (``ftx df --udp``), from the same
storage object as the TCP ``df`` command, so both give the same figures.
The datagram format is L{ftx.protocol.diskspace}.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ftx._io.endpoints import parseServerAddress
from ftx.protocol.diskspace import formatAnswer, parseRequest

__all__ = ["DiskSpaceProtocol", "DiskSpaceService", "interfaceOf"]


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
        self.transport.write(formatAnswer(total, free, token), addr)


class DiskSpaceService(Service):
    """
    Listens for disk-space datagrams while running; logs the port it got so
    that a server started with C{--udp-port 0} tells which port it has.
    """

    _log = Logger()

    def __init__(self, port: int, interface: str, storage, reactor) -> None:
        self.portNumber = port
        self.interface = interface
        self.storage = storage
        self.reactor = reactor
        self.port = None

    def privilegedStartService(self) -> None:
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


def interfaceOf(description: str) -> str:
    """
    The interface a server endpoint string listens on, for binding the UDP
    port beside it: C{""} (all IPv4 interfaces) unless it names one; a Unix
    socket gives the loopback interface.
    """
    address = parseServerAddress(description)
    if address.kind == "unix":
        return "127.0.0.1"
    return address.params.get("interface", "::" if address.kind == "tcp6" else "")
