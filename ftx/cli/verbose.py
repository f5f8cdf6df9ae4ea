"""
C{-v/--verbose}: where the command connects, what was agreed on, and how
long each step took, on stderr (stdout stays the command's own).
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, Optional

from ftx.cli.reactorthread import Connection

__all__ = ["connectionFor"]


class _QuietConnection(Connection):
    @contextlib.contextmanager
    def timed(self, command: str) -> Iterator[None]:
        yield


class _VerboseConnection(Connection):
    """
    A L{Connection} that tells the reporter when it connects and what the
    server agreed to.
    """

    def __init__(self, runner, address: str, reporter, **options) -> None:
        Connection.__init__(self, runner, address, **options)
        self.reporter = reporter
        self._known = None

    @property
    def client(self):
        if self._known is None:
            tls = "TLS" if "tls" in self.options or self.address.lower().startswith(("ssl:", "tls:")) else "plain TCP"
            credentials = self.options.get("credentials")
            who = "as {}".format(credentials[0]) if credentials else "anonymously"
            self.reporter.note("ftx: connecting to {} ({}, {})".format(self.address, tls, who))
        started = time.monotonic()
        client = Connection.client.fget(self)
        if client is not self._known:
            self._known = client
            protocol = client.protocol
            self.reporter.note("ftx: connected in {:.3f} s; server {}; checksum {}; compression {}".format(
                time.monotonic() - started, protocol.version or "(no version)", protocol.checksum,
                getattr(protocol, "compression", "none")))
        return client

    @contextlib.contextmanager
    def timed(self, command: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.reporter.note("ftx: {} took {:.3f} s".format(command, time.monotonic() - started))


def connectionFor(runner, address: str, options: dict, reporter: Optional[object]) -> Connection:
    """
    The session's L{Connection}; with a C{reporter}, one that says what it
    does (C{--verbose}). Either has C{timed(command)} around a command.
    """
    if reporter is None:
        return _QuietConnection(runner, address, **options)
    return _VerboseConnection(runner, address, reporter, **options)
