"""
Opening a client session from user-level settings: the address, TLS
options and credentials the command line gathers. The command line and
embedding programs that want the same behaviour call L{openSession}.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred, fail

from ftx._io import tls as _tls
from ftx.client.api import (
    FtxClient,
    FtxClientProtocol,
    _ClientFactory,
    endpointFromAddress,
)
from ftx.errors import ConnectionLost, FtxError, LoginFailed

__all__ = ["openSession"]

#: Seconds to wait for the server's greeting once connected. A plain
#: client talking to a TLS server (or the reverse, with some servers)
#: would otherwise wait in silence: each side waits for the other.
GREETING_TIMEOUT = 15.0


class _TLSClientProtocol(FtxClientProtocol):
    """
    A client protocol that reports why a TLS connection died before the
    greeting (untrusted certificate, wrong host name, ...) instead of a bare
    "connection lost".
    """

    hostname = "the server"

    def connectionLost(self, reason=None) -> None:
        if self.greeted is not None and reason is not None:
            error = _tls.errorFromFailure(reason, self.hostname)
            if error is not None:
                greeted, self.greeted = self.greeted, None
                greeted.errback(error)
        FtxClientProtocol.connectionLost(self, reason)


class _TLSClientFactory(_ClientFactory):
    protocol = _TLSClientProtocol

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname

    def buildProtocol(self, addr):
        protocol = _ClientFactory.buildProtocol(self, addr)
        protocol.hostname = self.hostname
        return protocol


def _wantsTLS(address: str, tls: bool, cafile, insecure: bool, certificate) -> bool:
    head = address.split(":", 1)[0]
    return bool(tls or cafile or insecure or certificate or head in ("ssl", "tls"))


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
    checksum: Optional[str] = None,
) -> "Deferred[FtxClient]":
    """
    Connect to C{address} and, when C{user} is given, log in. Fires with an
    L{FtxClient} ready for commands.

    C{address} is C{HOST:PORT}, a bare port, or a Twisted client endpoint
    string. TLS is used when C{tls} is set, when the address is an C{ssl:}
    or C{tls:} string, or when any of C{cafile}, C{insecure} or
    C{certificate} is given. The server's certificate is then verified
    against C{cafile} (a PEM file or folder; default: the system's trust
    store) and the host name, unless C{insecure}. C{certificate} is a PEM
    file holding a client certificate and its private key. C{checksum}
    picks what guards transfers (see L{ftx.client.api.connect}).

    Fails with L{ftx.errors.CertificateError} when the server cannot be
    verified, L{ftx.errors.TLSError} when TLS cannot be set up,
    L{ftx.errors.LoginFailed} for a refused login (the connection is then
    closed), or the error the server gave.
    """
    if user is not None and password is None:
        return fail(LoginFailed("a password is needed to log in as {}".format(user)))
    try:
        if _wantsTLS(address, tls, cafile, insecure, certificate):
            endpoint, hostname = _tls.clientEndpoint(
                reactor, address, cafile=cafile, insecure=insecure, certificate=certificate
            )
            factory = _TLSClientFactory(hostname)
        else:
            endpoint, factory = endpointFromAddress(reactor, address), _ClientFactory()
    except FtxError as e:
        return fail(e)
    except ValueError as e:
        return fail(FtxError(str(e)))

    factory.checksum = checksum
    secure = isinstance(factory, _TLSClientFactory)

    def connected(protocol: FtxClientProtocol):
        greeted = protocol.greeted
        timer = reactor.callLater(GREETING_TIMEOUT, protocol.transport.abortConnection)

        def done(result):
            if timer.active():
                timer.cancel()
            elif isinstance(getattr(result, "value", None), ConnectionLost):
                hint = "" if secure else "; if it is a TLS server, connect with --tls or an ssl: address"
                return fail(ConnectionLost("no greeting from the server within {:g} s{}".format(GREETING_TIMEOUT, hint)))
            return result

        return greeted.addBoth(done).addCallback(lambda _: FtxClient(protocol, reactor))

    d = endpoint.connect(factory).addCallback(connected)
    if user is not None:
        d.addCallback(_logIn, user, password)
    return d


def _logIn(client: FtxClient, user: str, password: str) -> "Deferred[FtxClient]":
    """
    Log in on a fresh connection; on any failure, close it before passing
    the error on, so a refused session leaves nothing open.
    """

    def close(failure):
        transport = client.protocol.transport
        if transport is not None:
            transport.loseConnection()
        return failure

    if "login" not in client.protocol.features:
        return fail(LoginFailed("the server has no accounts; connect without a user name")).addErrback(close)
    d = client.login(user, password)

    def loggedIn(_):
        return client

    def explain(failure):
        # After too many failures the server answers and hangs up at once;
        # the answer is what the user needs to see.
        failure.trap(FtxError)
        if isinstance(failure.value, ConnectionLost):
            return fail(LoginFailed("the server closed the connection during login"))
        return failure

    return d.addCallbacks(loggedIn, explain).addErrback(close)
