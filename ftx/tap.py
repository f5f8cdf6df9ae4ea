"""
The twistd plugin's options and service: ``twistd -n ftx --port 1234 --root files/``.
"""

from __future__ import annotations

import os

from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage

from ftx.server import FtxServerFactory, ServerPolicy
from ftx.storage import FilesystemStorage


def parseSize(text: str) -> int:
    """
    A byte count with an optional K, M, G or T suffix (powers of 1024).
    """
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = text.strip().upper().rstrip("B").rstrip("I")
    suffix = value[-1:] if value[-1:] in units and value[-1:] else ""
    number = value[: -1] if suffix else value
    if not number.isdigit():
        raise usage.UsageError("not a size: {!r} (examples: 1000, 64K, 10M, 2G)".format(text))
    return int(number) * units[suffix]


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve the files under --root over the ftx protocol. --port takes a "
        "Twisted endpoint string: 1234, tcp:1234:interface=127.0.0.1, "
        "ssl:1234:privateKey=key.pem:certKey=cert.pem, unix:/run/ftx.sock."
    )
    optParameters = [
        ["port", "p", "tcp:1234", "Endpoint to listen on (a bare number means tcp:NUMBER)."],
        ["root", "r", ".", "Folder whose files are served; must exist."],
        ["max-upload-size", None, None, "Refuse uploads larger than this (e.g. 10G)."],
    ]
    optFlags = [
        ["read-only", None, "Refuse put and delete."],
    ]

    def postOptions(self) -> None:
        port = self["port"]
        if port.isdigit():
            port = "tcp:" + port
        self["port"] = port
        root = self["root"]
        if not os.path.isdir(root):
            raise usage.UsageError("--root must be an existing directory: {!r}".format(root))
        self["root"] = os.path.abspath(root)
        if self["max-upload-size"] is not None:
            self["max-upload-size"] = parseSize(self["max-upload-size"])


def makeFactory(options: Options, reactor=None) -> FtxServerFactory:
    policy = ServerPolicy(readOnly=bool(options["read-only"]), maxUploadSize=options["max-upload-size"])
    return FtxServerFactory(FilesystemStorage(options["root"]), reactor, policy)


class ListeningService(Service):
    """
    Listens on an endpoint string while running, and logs the address it
    got, so that a server started on port 0 tells which port it has.
    """

    _log = Logger()

    def __init__(self, description: str, factory, reactor=None) -> None:
        self.description = description
        self.factory = factory
        self.reactor = reactor
        self.port = None

    def privilegedStartService(self) -> None:
        # Bind before twistd drops privileges, like strports does.
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        self._listening = serverFromString(self.reactor, self.description).listen(self.factory)
        self._listening.addCallbacks(self._listened, self._failed)

    def startService(self) -> None:
        Service.startService(self)
        if getattr(self, "_listening", None) is None:
            self.privilegedStartService()

    def _listened(self, port) -> None:
        self.port = port
        address = port.getHost()
        shown = getattr(address, "port", None) or getattr(address, "name", address)
        self._log.info(
            "ftx listening on {description} (port {port}), serving {root}",
            description=self.description, port=shown, root=os.fsdecode(self.factory.storage.root),
        )

    def _failed(self, failure) -> None:
        self._log.failure("ftx cannot listen on {description}", failure=failure, description=self.description)
        self.reactor.stop()

    def stopService(self):
        Service.stopService(self)
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


def makeService(options: Options):
    service = MultiService()
    ListeningService(options["port"], makeFactory(options)).setServiceParent(service)
    return service
