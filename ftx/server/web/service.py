"""
L{WebService}: the web view listening on an endpoint while the server runs.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from ftx._io import tls
from ftx._io.endpoints import isTLS
from ftx.server.starting import listenOrExit

__all__ = ["WebService"]


class WebService(Service):
    """
    Listens on C{description} (an endpoint string, like C{--port}) with
    C{site}, and logs the port it got so that a server started on port 0
    tells which it has. With accounts over plain HTTP it logs a warning:
    Basic authentication sends the password in every request, readable by
    anyone on the path.
    """

    _log = Logger()

    def __init__(self, description: str, site, reactor, accounts: bool = False) -> None:
        self.description = description
        self.site = site
        self.reactor = reactor
        self.accounts = accounts
        self.port = None
        self._listening = None

    def privilegedStartService(self) -> None:
        endpoint = tls.serverEndpoint(self.reactor, self.description)
        # A port it cannot have ends the start (ftx.server.starting).
        self._listening = listenOrExit(endpoint, self.site, "ftx web view", self.description, self._listened, self.reactor)

    def startService(self) -> None:
        Service.startService(self)
        if self._listening is None:
            self.privilegedStartService()

    def _listened(self, port) -> None:
        self.port = port
        shown = getattr(port.getHost(), "port", None)
        self._log.info("ftx web view on {description} (http port {port})", description=self.description, port=shown)
        if self.accounts and not isTLS(self.description):
            self._log.warn(
                "ftx web view: HTTP Basic logins on {description} are not encrypted; "
                "passwords can be read on the network (use an ssl: --http-port)",
                description=self.description,
            )

    def stopService(self):
        Service.stopService(self)
        if self.port is None:
            return None
        port, self.port = self.port, None
        return maybeDeferred(port.stopListening)
