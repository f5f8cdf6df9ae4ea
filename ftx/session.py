"""
Opening a client session from user-level settings: the address, TLS
options and credentials the command line gathers. The command line and
embedding programs that want the same behaviour call L{openSession}.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred

from ftx.client import FtxClient, connect


def openSession(
    reactor,
    address: str,
    *,
    tls: bool = False,
    cafile: Optional[str] = None,
    insecure: bool = False,
    certificate: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
) -> "Deferred[FtxClient]":
    """
    Connect to C{address} (C{host:port} or a client endpoint string) and,
    when C{user} is given, log in. Fires with an L{FtxClient}.

    TLS and login are not implemented yet: asking for them fails clearly
    rather than silently connecting in the clear.
    """
    if tls or cafile or insecure or certificate or user:
        from ftx.errors import FtxError

        d: Deferred = Deferred()
        d.errback(FtxError("TLS and login are not supported by this version of ftx yet"))
        return d
    return connect(reactor, address)
