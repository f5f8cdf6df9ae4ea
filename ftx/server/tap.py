"""
The twistd plugin's options and service: ``twistd -n ftx --port 1234 --root files/``.
"""

from __future__ import annotations

import os

from twisted.application.service import MultiService, Service
from twisted.cred import strcred
from twisted.cred.credentials import IUsernamePassword
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.python import usage

from ftx._io import tls, units
from ftx._io.endpoints import isTLS, parseServerAddress
from ftx._io.ratelimit import parseRate
from ftx.errors import FtxError
from ftx.protocol.names import MAX_ROOT
from ftx.server import accounts as auth
from ftx.server.filesystem import FilesystemStorage
from ftx.server.lifecycle import SweepService, drain
from ftx.server.limits import Quota
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from ftx.server.s3 import options as storageOptions
from ftx.server.starting import listenOrExit


def parseDuration(text: str) -> float:
    """
    Seconds from C{90}, C{90s}, C{15m}, C{24h}, C{7d} or C{1h30m}
    (L{ftx._io.units.parseDuration}, as the C{ftx} command reads them).
    """
    try:
        return units.parseDuration(text)
    except ValueError as e:
        raise usage.UsageError(str(e))


def parseSize(text: str) -> int:
    """
    A byte count: C{1000}, C{64K}, C{10G}, C{1.5GiB} (powers of 1024;
    L{ftx._io.units.parseSize}, as the C{ftx} command reads them).
    """
    try:
        return units.parseSize(text)
    except ValueError as e:
        raise usage.UsageError(str(e))


class TLSNotInstalled(usage.UsageError):
    """
    A TLS port was asked for, but the C{tls} extra is not installed.
    """


def _checkTLSInstalled(option: str, endpoint: str) -> None:
    """
    A TLS port needs pyOpenSSL and service_identity, which come with the
    C{tls} extra: say so in one line rather than fail in the reactor.
    """
    try:
        import OpenSSL  # noqa: F401
        import service_identity  # noqa: F401
    except ImportError:
        raise TLSNotInstalled(
            "{} {} needs TLS support, which is not installed: pip install 'ftx[tls]'".format(option, endpoint)
        )


class Options(usage.Options, strcred.AuthOptionMixin):
    synopsis = "[options]"
    # The login command carries a user name and password, nothing else.
    supportedInterfaces = (IUsernamePassword,)
    longdesc = (
        "Serve the files under --root over the ftx protocol. --port takes a "
        "Twisted endpoint string: 1234, tcp:1234:interface=127.0.0.1, "
        "ssl:1234:privateKey=key.pem:certKey=cert.pem, unix:/run/ftx.sock."
    )
    optParameters = [
        ["port", "p", "tcp:1234", "Endpoint to listen on (a bare number means tcp:NUMBER)."],
        ["root", "r", ".", "Folder whose files are served; must exist."],
        ["max-upload-size", None, None, "Refuse uploads larger than this (e.g. 10G)."],
        ["quota", None, None, "Bytes the root may hold in all (e.g. 50G); uploads beyond it get 507 no-space."],
        ["max-connections", None, "512", "Connections served at once; more get 503 unavailable (0: no limit)."],
        ["max-per-address", None, "32", "Connections served at once from one client address (0: no limit)."],
        ["idle-timeout", None, "300", "Close a connection after this long without a byte moving (e.g. 90, 5m; 0: never)."],
        ["line-timeout", None, "30", "Close a connection that takes longer than this to send one command line (0: never)."],
        ["login-timeout", None, "60", "With --auth, close a connection not logged in within this time (0: never)."],
        ["partial-ttl", None, "24h", "Remove interrupted uploads not resumed within this time (e.g. 24h, 7d; 0: keep none)."],
        ["shutdown-grace", None, "30", "On stop, seconds running transfers get to finish before they are cut."],
        ["upload-takeover", None, "10", "Seconds an upload may stall before a new connection of the same user takes it over (0: never)."],
        ["limit-rate", None, None, "Bytes a second each way per connection (e.g. 500K, 12.5MB/s, 100Mbit/s; 0: no limit)."],
        ["limit-total", None, None, "Bytes a second each way for all connections together, shared in turn (same units)."],
        ["udp-port", None, None, "Also answer disk-space queries over UDP on this port, same interface as --port."],
        ["http-port", None, None, "Also serve the root read-only over HTTP on this endpoint (e.g. tcp:8080, ssl:8443:...)."],
        # Accounts, access and TLS: docs/security.rst.
        ["access", None, None, "Access file: lines 'NAME RIGHTS [home=FOLDER] [rate=SIZE/s]', RIGHTS from rwd or none."],
        ["anonymous", None, None, "What clients that do not log in may do: none, read or full (default: full; read with --auth)."],
        ["client-ca", None, None, "With an ssl: --port, require client certificates signed by a CA in this PEM file."],
        ["login-delay", None, "1", "Seconds before the reply to a failed login; doubles with each failure on a connection."],
        ["max-login-failures", None, "3", "Failed logins after which a connection is closed."],
        ["max-address-failures", None, "10", "Failed logins from one address in 10 minutes before its logins get 503 (0: no limit)."],
    ]
    optFlags = [
        ["read-only", None, "Refuse put and delete."],
    ]
    optParameters += storageOptions.OPTIONS

    def postOptions(self) -> None:
        port = self["port"]
        if port.isdigit():
            port = "tcp:" + port
        self["port"] = port
        if isTLS(port) or self["client-ca"] is not None:
            _checkTLSInstalled("--port", port)
        if isTLS(self["http-port"] or ""):
            _checkTLSInstalled("--http-port", self["http-port"])
        storageOptions.checkStorage(self, parseSize, parseDuration)
        root = self["root"]
        if self["storage"] == "local" and not os.path.isdir(root):
            raise usage.UsageError("--root must be an existing directory: {!r}".format(root))
        self["root"] = os.path.abspath(root)
        if len(os.fsencode(os.path.realpath(root))) > MAX_ROOT:
            # Names up to MAX_NAME bytes must fit under it (docs/protocol.rst).
            raise usage.UsageError("--root must be a path of at most {} bytes".format(MAX_ROOT))
        if self["max-upload-size"] is not None:
            self["max-upload-size"] = parseSize(self["max-upload-size"])
        if self["quota"] is not None:
            self["quota"] = parseSize(self["quota"])
        for key in ("limit-rate", "limit-total"):
            if self[key] is not None:
                try:
                    self[key] = parseRate(self[key]) or None
                except ValueError as e:
                    raise usage.UsageError("--{}: {}".format(key, e))
        for key in ("max-connections", "max-per-address"):
            if not str(self[key]).isdigit():
                raise usage.UsageError("--{} must be a whole number: {!r}".format(key, self[key]))
            self[key] = int(self[key])
        for key in ("idle-timeout", "line-timeout", "login-timeout", "partial-ttl", "shutdown-grace", "upload-takeover"):
            self[key] = parseDuration(str(self[key]))
        if self["udp-port"] is not None:
            udp = self["udp-port"]
            if not udp.isdigit() or int(udp) > 65535:
                raise usage.UsageError("--udp-port must be a port number (0-65535): {!r}".format(udp))
            self["udp-port"] = int(udp)
        if self["http-port"] is not None and self["http-port"].isdigit():
            self["http-port"] = "tcp:" + self["http-port"]
        try:
            auth.checkOptions(self)
            if self["client-ca"] is not None:
                # Builds (without binding) the endpoint, so files are checked now.
                tls.serverEndpoint(None, self["port"], self["client-ca"])
        except (ValueError, FtxError) as e:
            raise usage.UsageError(str(e))


def makeFactory(options: Options, reactor) -> FtxServerFactory:
    """
    The server factory that checked options describe: a
    L{FilesystemStorage} of C{--root} (with a L{Quota} when asked for),
    the policy and the access rules.
    """
    policy = ServerPolicy(
        readOnly=bool(options["read-only"]),
        maxUploadSize=options["max-upload-size"],
        maxConnections=options["max-connections"],
        maxPerAddress=options["max-per-address"],
        idleTimeout=options["idle-timeout"],
        partialTTL=options["partial-ttl"],
        shutdownGrace=options["shutdown-grace"],
        lineTimeout=options["line-timeout"],
        loginTimeout=options["login-timeout"],
        uploadTakeover=options["upload-takeover"] or None,
        limitRate=options["limit-rate"],
        limitTotal=options["limit-total"],
    )
    quota = Quota(options["quota"]) if options["quota"] is not None else None
    if options["storage"] == "s3":
        storage = storageOptions.makeStorage(options, quota, reactor)
    else:
        storage = FilesystemStorage(options["root"], quota)
    return FtxServerFactory(storage, reactor, policy, auth.fromOptions(options, storage, reactor))


#: Connections the kernel may queue before the server accepts them.
#: Twisted's default of 50 drops the SYNs of a burst of clients beyond
#: that, and each dropped one retries only after a second: 100 clients
#: connecting at once took 1.02 s instead of 0.02 s.
LISTEN_BACKLOG = 1024


def withBacklog(description: str) -> str:
    """
    C{description} with a C{backlog} of L{LISTEN_BACKLOG} where the
    endpoint takes one and the description does not set it.
    """
    address = parseServerAddress(description)
    if address.kind in ("tcp", "tcp6", "ssl", "unix") and "backlog" not in address.params:
        return description + ":backlog={}".format(LISTEN_BACKLOG)
    return description


class ListeningService(Service):
    """
    Listens on an endpoint string while running, and logs the address it
    got, so that a server started on port 0 tells which port it has.
    """

    _log = Logger()

    def __init__(self, description: str, factory, reactor, clientCA=None) -> None:
        self.description = description
        self.clientCA = clientCA
        self.factory = factory
        self.reactor = reactor
        self.port = None

    def privilegedStartService(self) -> None:
        """
        Bind before twistd drops privileges, like strports does. A port
        that cannot be had (taken, not allowed) ends the start: a server
        that cannot listen must not look, to its supervisor, like one
        that serves (L{listenOrExit}).
        """
        endpoint = tls.serverEndpoint(self.reactor, withBacklog(self.description), self.clientCA)
        self._listening = listenOrExit(endpoint, self.factory, "ftx", self.description, self._listened, self.reactor)

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
            description=self.description, port=shown, root=self.factory.storage.location,
        )

    def stopService(self):
        """
        Stop listening, then drain the connections (L{ftx.server.lifecycle.drain});
        twistd waits for the Deferred before it exits.
        """
        Service.stopService(self)
        if self.port is None:
            return None
        port, self.port = self.port, None
        d = maybeDeferred(port.stopListening)
        d.addCallback(lambda _: drain(self.factory, self.factory.policy.shutdownGrace, self.reactor))
        return d


def makeService(options: Options):
    """
    The twistd entry point: the listening port, the partial-upload sweep
    and the UDP responder, all on the global reactor (imported here, the
    one place the server takes it).
    """
    from twisted.internet import reactor

    service = MultiService()
    factory = makeFactory(options, reactor)
    ListeningService(options["port"], factory, reactor, clientCA=options["client-ca"]).setServiceParent(service)
    SweepService(factory.storage, factory.policy.partialTTL, reactor).setServiceParent(service)
    if options["udp-port"] is not None:
        from ftx.server.udp import DiskSpaceService, interfaceOf

        udp = DiskSpaceService(options["udp-port"], interfaceOf(options["port"]), factory.storage, reactor)
        udp.setServiceParent(service)
    if options["http-port"] is not None:
        from ftx.server.web import WebService, webSite

        site = webSite(factory.access, factory.storage, reactor, factory.rates)
        WebService(options["http-port"], site, reactor, factory.access.portal is not None).setServiceParent(service)
    return service
