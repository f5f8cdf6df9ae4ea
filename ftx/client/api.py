"""
Connecting to an ftx server: L{connect}, the factory it uses, the TLS
settings it takes, and the endpoint it builds from an address.

There is one way to connect, for programs and for the C{ftx} command
alike: L{connect} waits for the server's greeting (and gives up after
L{GREETING_TIMEOUT} seconds), reports a failed TLS handshake as
L{ftx.errors.CertificateError} or L{ftx.errors.TLSError}, and logs in
when given credentials.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory

from ftx._io import endpoints, tcpclient
from ftx.client import compresschoice
from ftx.client.client import FtxClient
from ftx.client.protocol import TLS_PROBE_DELAY, FtxClientProtocol
from ftx.errors import ConnectionLost, FtxError, LoginFailed

__all__ = ["connect", "ClientTLS", "FtxClientFactory", "endpointFromAddress", "GREETING_TIMEOUT"]

#: Seconds L{connect} waits for the server's greeting once connected. A
#: plain client talking to a TLS server (or the reverse, with some servers)
#: would otherwise wait in silence: each side waits for the other. A plain
#: client probes after L{ftx.client.protocol.TLS_PROBE_DELAY} seconds and so
#: learns of a TLS server long before this.
GREETING_TIMEOUT = 15.0


class ClientTLS:
    """
    How a client connection uses TLS. Passing one to L{connect} turns TLS
    on, even for a C{HOST:PORT} address; an C{ssl:} or C{tls:} address
    turns it on with these defaults.

    The server's certificate is always checked, against C{cafile} or else
    the system's trust store, and so is its host name, unless C{insecure}.

    @ivar cafile: a PEM file, or a folder of them, holding the authorities
        that may sign the server's certificate; L{None} for the system's
        trust store (or the address's C{caCertsDir=}).
    @ivar insecure: encrypt without checking who answers: for tests and
        labs only. Cannot be combined with C{cafile}.
    @ivar certificate: a PEM file holding a client certificate and its
        private key, for servers that ask for one.
    """

    def __init__(self, cafile: Optional[str] = None, insecure: bool = False, certificate: Optional[str] = None) -> None:
        self.cafile = cafile
        self.insecure = insecure
        self.certificate = certificate

    def __repr__(self) -> str:
        return "ClientTLS(cafile={!r}, insecure={!r}, certificate={!r})".format(self.cafile, self.insecure, self.certificate)


class FtxClientFactory(Factory):
    """
    Builds the client protocol of each connection: an instance of the
    class named by C{protocol} (L{FtxClientProtocol}, or a subclass a
    program sets by subclassing this factory), given the reactor, the
    checksum to ask for and the name errors call the server by.
    """

    protocol = FtxClientProtocol
    noisy = False

    def __init__(
        self, reactor, checksum: Optional[str] = None, serverName: str = "the server",
        limitRate: Optional[int] = None, compress: str = "none",
    ) -> None:
        """
        @param reactor: the reactor the protocols use (its thread pool
            writes received files).
        @param checksum: what guards each transfer: L{None} for the fastest
            both ends have, C{"sha1"} to keep SHA-1 (L{ftx.protocol.checksums}).
        @param serverName: how TLS errors name the server: the host name
            its certificate is checked against.
        @param limitRate: bytes a second each way per connection (uploads
            and downloads, L{ftx._io.ratelimit}); L{None}: no limit.
        @param compress: C{"auto"}, C{"zstd"} or C{"none"}: whether bodies
            travel compressed (L{ftx.client.compressed}).
        """
        self.reactor = reactor
        self.checksum = checksum
        self.serverName = serverName
        self.limitRate = limitRate or None
        self.compress = compress

    def buildProtocol(self, addr) -> FtxClientProtocol:
        protocol = self.protocol(self.reactor)
        protocol.factory = self
        protocol.preferredChecksum = self.checksum
        protocol.serverName = self.serverName
        protocol.limitRate = self.limitRate
        protocol.compressMode = self.compress
        return protocol


def _endpoint(reactor, address: str, tls: Optional[ClientTLS]) -> Tuple[IStreamClientEndpoint, Optional[str]]:
    """
    The endpoint for C{address} and, when it speaks TLS, the host name its
    certificate is checked against (else L{None}).

    @raise ValueError: the address cannot be understood.
    @raise TLSError: the address cannot carry TLS, or a file is unusable.
    """
    parsed = endpoints.parseAddress(address)
    if tls is not None or parsed.isTLS:
        # Twisted's own ssl: client checks no certificate unless given
        # caCertsDir; ftx always verifies the server (ftx._io.tls).
        from ftx._io import tls as _tls

        settings = tls or ClientTLS()
        return _tls.clientEndpoint(
            reactor, address, cafile=settings.cafile, insecure=settings.insecure, certificate=settings.certificate
        )
    if parsed.kind is None and tcpclient.isAddressLiteral(parsed.host):
        return tcpclient.AddressEndpoint(reactor, parsed.host, parsed.port), None
    if parsed.kind is None and tcpclient.isLoopbackName(parsed.host):
        return tcpclient.LoopbackEndpoint(reactor, parsed.port), None
    # Imported here: this module (with the plugin system and idna) is a
    # tenth of a small command's start-up, and an address literal or
    # localhost has no use for it (ftx._io.tcpclient).
    from twisted.internet.endpoints import HostnameEndpoint, clientFromString

    if parsed.kind is None:
        return HostnameEndpoint(reactor, parsed.host, parsed.port), None
    try:
        return clientFromString(reactor, address), None
    except (TypeError, ValueError) as e:
        # Twisted's word on the types ftx has always handed it; for any
        # other, the address was most likely not meant as an endpoint.
        if parsed.kind in ("tcp", "tcp4", "tcp6", "unix", "tor") and isinstance(e, ValueError):
            raise
        raise ValueError("not an address: {!r} (expected HOST:PORT or an endpoint string)".format(address))


def endpointFromAddress(reactor, address: str, tls: Optional[ClientTLS] = None) -> IStreamClientEndpoint:
    """
    The client endpoint L{connect} uses for C{address}: C{HOST:PORT}, a
    bare port (on localhost), C{[IPV6]:PORT}, or a Twisted client endpoint
    string (C{tcp:host=...:port=...}, C{ssl:...}, C{tls:...},
    C{unix:path=...}). C{ssl:} and C{tls:} addresses, and any address
    given C{tls} settings, verify the server (L{ClientTLS}).

    @raise ValueError: the address cannot be understood, or cannot be used
        as asked (a TLS file that cannot be read, TLS over a Unix socket).
    """
    try:
        return _endpoint(reactor, address, tls)[0]
    except FtxError as e:
        raise ValueError(str(e))


def connect(
    reactor,
    endpointOrAddress: Union[str, IStreamClientEndpoint],
    *,
    checksum: Optional[str] = None,
    credentials: Optional[Tuple[str, str]] = None,
    tls: Optional[ClientTLS] = None,
    timeout: Optional[float] = GREETING_TIMEOUT,
    factory: Optional[FtxClientFactory] = None,
    limitRate: Optional[int] = None,
    compress: str = "none",
) -> "Deferred[FtxClient]":
    """
    Connect to an ftx server, wait for its greeting and, given
    C{credentials}, log in. Fires with an L{FtxClient} ready for commands.

    @param endpointOrAddress: an address (see L{endpointFromAddress}) or
        any C{IStreamClientEndpoint}.
    @param checksum: what guards each transfer: L{None} for the fastest
        both ends have (XXH3-128 where available), C{"sha1"} to keep SHA-1.
    @param credentials: C{(user, password)} to log in with.
    @param tls: L{ClientTLS} settings, which also turn TLS on for a
        C{HOST:PORT} address; L{None} connects in the clear unless the
        address is C{ssl:} or C{tls:}. Not for an endpoint object, which
        carries its own.
    @param timeout: seconds to wait for the greeting once connected;
        L{None} waits as long as the connection lasts.
    @param factory: the L{FtxClientFactory} (or a subclass, for a protocol
        of your own) to build the connection's protocol; its own checksum
        then applies, so C{checksum} must not be given too.
    @param limitRate: bytes a second each way (uploads and downloads);
        L{None} for no limit. L{ftx._io.ratelimit.parseRate} reads the
        forms people write (C{"500K"}, C{"12.5MB/s"}, C{"100Mbit/s"}).
        Give it to the factory instead when passing one.
    @param compress: C{"zstd"} to have bodies travel as zstd blocks when
        the server offers it, C{"auto"} to do so on links slower than zstd
        and for uploads that compress well (L{ftx.client.compressed}),
        C{"none"} (the default) to send them as they are.

    Fails with L{ValueError} for an address that cannot be understood,
    L{ftx.errors.CertificateError} when the server cannot be verified,
    L{ftx.errors.TLSError} when TLS cannot be set up, or when a plain
    connection reached a TLS server (found by a probe after
    L{ftx.client.protocol.TLS_PROBE_DELAY} seconds without a greeting),
    L{ftx.errors.ConnectionLost} when no greeting came (with a hint when a
    plain client may have reached a TLS server),
    L{ftx.errors.LoginFailed} for a refused login (the connection is then
    closed), or the error the server gave.
    """
    if factory is not None and (checksum is not None or limitRate is not None):
        raise TypeError("give the checksum and rate limit to the factory, not to connect, when passing a factory")
    if compress not in compresschoice.MODES:
        raise ValueError("compress must be one of {}, not {!r}".format(", ".join(compresschoice.MODES), compress))
    if credentials is not None and credentials[1] is None:
        return fail(LoginFailed("a password is needed to log in as {}".format(credentials[0])))
    serverName = None
    if isinstance(endpointOrAddress, str):
        try:
            endpoint, serverName = _endpoint(reactor, endpointOrAddress, tls)
        except (ValueError, FtxError) as e:
            return fail(e)
    elif tls is not None:
        raise TypeError("TLS settings go with an address; an endpoint object carries its own")
    else:
        endpoint = endpointOrAddress
    if factory is None:
        factory = FtxClientFactory(
            reactor, checksum, serverName or FtxClientProtocol.serverName, limitRate, compress=compress
        )
    d = endpoint.connect(factory).addCallback(_greeted, reactor, timeout, secure=serverName is not None)
    if credentials is not None:
        d.addCallback(_logIn, *credentials)
    return d


def _greeted(protocol: FtxClientProtocol, reactor, timeout: Optional[float], secure: bool) -> "Deferred[FtxClient]":
    """
    Wait for C{protocol}'s greeting, at most C{timeout} seconds, and wrap
    it in an L{FtxClient}.
    """
    greeted = protocol.greeted.addCallback(compresschoice.negotiate)
    if timeout is None:
        return greeted.addCallback(lambda _: FtxClient(protocol, reactor))
    timer = reactor.callLater(timeout, protocol.abandonGreeting)
    probe = reactor.callLater(TLS_PROBE_DELAY, protocol.probeForTLS) if TLS_PROBE_DELAY < timeout else None

    def done(result):
        if probe is not None and probe.active():
            probe.cancel()
        if timer.active():
            timer.cancel()
        elif isinstance(getattr(result, "value", None), ConnectionLost):
            hint = "" if secure else "; if it is a TLS server, connect with --tls or an ssl: address"
            return fail(ConnectionLost("no greeting from the server within {:g} s{}".format(timeout, hint)))
        return result

    return greeted.addBoth(done).addCallback(lambda _: FtxClient(protocol, reactor))


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

    def explain(failure):
        # After too many failures the server answers and hangs up at once;
        # the answer is what the user needs to see.
        failure.trap(FtxError)
        if isinstance(failure.value, ConnectionLost):
            return fail(LoginFailed("the server closed the connection during login"))
        return failure

    return client.login(user, password).addCallbacks(lambda _: client, explain).addErrback(close)
