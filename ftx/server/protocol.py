"""
The ftx server: a line protocol with length-framed bodies.

One L{FtxServerProtocol} serves one connection and runs one command at a
time. While a command waits on a thread (listing, hashing) or streams a
body, the protocol stops reading from its transport, so a client that
sends ahead cannot make the server buffer without bound. Sending,
receiving and the connection's limits are parts it owns
(L{ftx.server.downloads}, L{ftx.server.uploads}, L{ftx.server.limits});
what they may ask of it is L{ftx.server.connection.IConnection}.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Callable, Dict, Optional

from twisted.internet import defer, interfaces
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx._io import internals
from ftx.errors import (
    BadRequest,
    FtxError,
    LoginFailed,
    LoginRequired,
    PermissionDenied,
    ServerError,
    Unavailable,
)
from ftx.protocol import checksums, compression, wire
from ftx.protocol.wire import decodeName, encodeName, nameText
from ftx.server.accounts import AccessControl, Account
from ftx.server.connection import IConnection, checkArity
from ftx.server.downloads import Downloads
from ftx.server.folders import Folders
from ftx.server.hashcommand import Hashes
from ftx.server.hashlane import HashLane
from ftx.server.limits import Admission, ConnectionLimits
from ftx.server.listing import listCommand
from ftx.server.logins import LoginAttempts
from ftx.server.logsafe import SafeLogger
from ftx.server.ratelimit import ServerRates
from ftx.server.readgate import COMMAND, ReadGate
from ftx.server.storage import IStorage
from ftx.server.uploads import Uploads

FEATURES = (
    "list", "sget", "mget", "hash", "cget", "put", "resume", "delete", "df", "quit",
    # put's last field chooses replace/new/rename; folders; put's trailer
    # may carry the file's modification time.
    "put-mode", "mkdir", "rmtree", "mtime",
    # Commands may come before the previous answer is complete; they are
    # read one at a time (the read gate) and answered in order.
    "pipeline",
)
# What a --read-only server leaves out of its greeting: it refuses these
# commands to everyone (docs/protocol.rst, Greeting).
WRITE_FEATURES = ("put", "resume", "delete", "put-mode", "mkdir", "rmtree", "mtime")
# Each checksum besides SHA-1 is a feature of its own: the client may ask
# for it with "checksum NAME".
CHECKSUM_FEATURES = tuple(name for name in checksums.available() if name != checksums.SHA1)
# Compressed bodies ("compress zstd"), offered when zstandard is installed.
COMPRESS_FEATURES = compression.available()

RECEIVE_SIZE = 1 << 20
# The commands a client may send before it logs in.
_WITHOUT_LOGIN = ("login", "quit", "checksum", "compress")


class ServerPolicy:
    """
    What the server allows, set from the twistd options.

    The line and login deadlines are on by default (30 s and 60 s, as
    with twistd): without them a client trickling bytes, or never logging
    in, holds a connection for ever (``docs/operations.rst``).
    """

    def __init__(
        self,
        readOnly: bool = False,
        maxUploadSize: Optional[int] = None,
        *,
        maxConnections: Optional[int] = None,
        maxPerAddress: Optional[int] = None,
        idleTimeout: Optional[float] = None,
        partialTTL: Optional[float] = None,
        shutdownGrace: float = 30.0,
        lineTimeout: Optional[float] = 30.0,
        loginTimeout: Optional[float] = 60.0,
        uploadTakeover: Optional[float] = 10.0,
        limitRate: Optional[int] = None,
        limitTotal: Optional[int] = None,
    ) -> None:
        self.readOnly = readOnly
        self.maxUploadSize = maxUploadSize
        # Limits and lifetimes (docs/operations.rst); None or 0: no limit.
        self.maxConnections = maxConnections
        self.maxPerAddress = maxPerAddress
        self.idleTimeout = idleTimeout or None
        #: Seconds from the first byte of a command line to its end, and
        #: from connecting to logging in where a login is needed.
        self.lineTimeout = lineTimeout or None
        self.loginTimeout = loginTimeout or None
        #: Seconds an abandoned partial upload is kept; 0 keeps none,
        #: L{None} keeps them until deleted by hand.
        self.partialTTL = partialTTL
        self.shutdownGrace = shutdownGrace
        #: Seconds without a body byte after which an upload's name may be
        #: taken over by another connection of the same user; None: never.
        self.uploadTakeover = uploadTakeover
        #: Bytes a second each way per connection, and for all connections
        #: together (L{ftx.server.ratelimit}); None: no limit.
        self.limitRate = limitRate or None
        self.limitTotal = limitTotal or None


@implementer(interfaces.IHandshakeListener, IConnection)
class FtxServerProtocol(LineReceiver, TimeoutMixin):
    """
    One client connection.

    It keeps the connection, the dispatch of commands and the small
    commands; sending, receiving and the limits are parts it owns
    (L{downloads}, L{uploads}, L{limits}), each with its own state, which
    reach it through L{IConnection}. Embedders may subclass it and set it
    as L{FtxServerFactory.protocol}.

    Reading from the client stops while a command runs, while the disk is
    behind an upload, and while the client leaves too many replies unread
    (L{ftx.server.limits.WriteBackpressure}): each is a reason held by
    L{gate}, the one place reading is paused and resumed (nothing calls
    C{LineReceiver}'s C{pauseProducing}/C{resumeProducing} but the gate),
    so what one connection holds in memory is bounded whatever the client
    does.

    @ivar gate: the L{ReadGate} of this connection.
    @ivar limits: the L{ConnectionLimits} part.
    @ivar downloads: the L{Downloads} part.
    @ivar uploads: the L{Uploads} part.
    """

    # Client text in log lines is escaped (ftx.server.logsafe).
    _log = SafeLogger()
    # Lines are read up to LF and a CR before it is dropped, so that a
    # bare LF ends a line too (docs/protocol.rst, Lines); every line sent
    # ends in CR LF (sendLine). The CR counts toward LineReceiver's limit,
    # so the limit without it is checked in lineReceived.
    MAX_LENGTH = wire.MAX_LINE_LENGTH + 1
    delimiter = b"\n"
    #: Who the client is (L{ftx.server.accounts}); L{None} until it logs in when
    #: anonymous use is off.
    account: Optional[Account] = None
    _logins: Optional[LoginAttempts] = None

    def __init__(self) -> None:
        self.peer = "?"
        self.disconnected = False
        self._address = "?"
        #: What body trailers on this connection carry (the C{checksum} command).
        self.checksum = checksums.SHA1
        #: How bodies travel on this connection (the C{compress} command),
        #: and the most file bytes one raw block may hold (C{raw-runs}).
        self.compression = compression.NONE
        self.rawRun = compression.MAX_BLOCK
        # From a command's line to its answer, body included.
        self._commandRunning = False
        self.gate = ReadGate(self._stopReading, self._startReading)
        self.limits = ConnectionLimits(self, self.gate)
        #: The L{ftx.server.ratelimit.ConnectionRate}; unlimited until connected.
        self.rate = ServerRates(None).forConnection(self.gate)
        self.downloads = Downloads(self, self.limits.backpressure)
        self.uploads = Uploads(self, self.gate)
        self.folders = Folders(self)
        self.hashes = Hashes(self)
        self._commands = self._commandTable()

    def _commandTable(self) -> Dict[str, Callable]:
        """
        The handler of each verb: C{handler(args)} returns a result or a
        Deferred; an L{FtxError} it raises or fails with is the reply.
        """
        table: Dict[str, Callable] = {
            "list": partial(listCommand, self),
            "delete": self._delete,
            "df": self._df,
            "login": self._login,
            "checksum": self._checksum,
            "compress": self._compress,
            "quit": self._quit,
            "noop": self._noop,
        }
        table.update(self.downloads.commands())
        table.update(self.uploads.commands())
        table.update(self.folders.commands())
        table.update(self.hashes.commands())
        return table

    # -- connection -----------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer = "{}:{}".format(getattr(peer, "host", peer), getattr(peer, "port", ""))
        if hasattr(self.transport, "setTcpNoDelay"):
            # Replies are small and each one is waited for; without this,
            # Nagle's algorithm meets delayed ACKs and adds ~40 ms a reply.
            try:
                self.transport.setTcpNoDelay(True)
            except Exception:
                pass
        # Read uploads 1 MiB at a time instead of Twisted's 64 KiB: far
        # fewer trips through dataReceived per GiB. recv() only holds that
        # much while it runs, so idle connections do not pay for it.
        internals.setReadSize(self.transport, RECEIVE_SIZE)
        self.rate = self.factory.rates.forConnection(self.gate)
        self.rate.started(self.transport)
        self._address = str(getattr(peer, "host", peer))
        refusal = self.factory.admission.admit(self, self._address)
        if refusal is not None:
            self.limits.refuse(refusal)
            return
        self._log.info("{peer} connected", peer=self.peer)
        self.setTimeout(self.factory.policy.idleTimeout)
        if not interfaces.ISSLTransport.providedBy(self.transport):
            self.limits.backpressure.attach()
        access = self.factory.access
        self.account = access.anonymous
        self.rate.loggedIn(self.account, self.transport)
        if self.account is None:
            self.limits.deadlines.expectLogin(self.factory.policy.loginTimeout)
        self._logins = LoginAttempts(
            access, self.peer, self._address,
            interfaces.ISSLTransport.providedBy(self.transport) or not hasattr(peer, "port"),
        )
        self.sendLine(wire.formatLine(wire.GREETING, wire.PROTOCOL_VERSION, ",".join(self.features())))

    def features(self):
        """
        What the greeting offers: the commands this server may run for
        someone, the checksums besides SHA-1, and the login features.
        """
        features = FEATURES
        if self.factory.policy.readOnly:
            features = tuple(f for f in features if f not in WRITE_FEATURES)
        return features + CHECKSUM_FEATURES + COMPRESS_FEATURES + self.factory.access.features()

    def sendLine(self, line: bytes) -> None:
        self.transport.write(line + wire.LINE_END)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done. Only now may write backpressure pause
        reading: the greeting is buffered until the handshake ends, and
        pausing then would also stop the handshake from being read, for good.
        """
        if self.disconnected:
            return
        self.limits.backpressure.attach()
        certificate = self.transport.getPeerCertificate()
        if certificate is not None:
            subject = certificate.to_cryptography().subject.rfc4514_string()
            self._log.info("{peer} TLS client certificate {subject}", peer=self.peer, subject=subject)

    def connectionLost(self, reason=None) -> None:
        self.disconnected = True
        self.setTimeout(None)
        self.rate.connectionLost()
        self.limits.connectionLost()
        if self.limits.refused:
            return
        self.factory.admission.release(self, self._address)
        self.uploads.connectionLost()
        self.downloads.connectionLost()
        self._log.info("{peer} disconnected", peer=self.peer)

    def shutdownRequested(self) -> None:
        """
        The server is stopping (L{ftx.server.lifecycle.drain}): close now
        if idle, else once the running command has finished.
        """
        self.limits.shutdownRequested(idle=not self._commandRunning)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._log.warn("{peer} sent a line longer than {limit} bytes; closing", peer=self.peer, limit=wire.MAX_LINE_LENGTH)
        self.transport.write(wire.formatError(BadRequest("line too long")) + wire.LINE_END)
        self.limits.hangUp()

    def timeoutConnection(self) -> None:
        # TimeoutMixin: idle for --idle-timeout seconds.
        self.limits.closeIdle(self.timeOut, midBody=self.downloads.sending)

    def callLater(self, period, f):
        # TimeoutMixin's timer, on the factory's reactor (a Clock in tests).
        return self.factory.reactor.callLater(period, f)

    # -- reading --------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.rate.received(len(data))
        self.limits.received(data)

    def rawDataReceived(self, data: bytes) -> None:
        self.uploads.rawDataReceived(data)

    def parse(self, data: bytes) -> None:
        LineReceiver.dataReceived(self, data)

    def inputHeld(self) -> int:
        return self.limits.held + internals.lineBuffered(self)

    def _stopReading(self) -> None:
        # Only the gate calls this and _startReading.
        LineReceiver.pauseProducing(self)

    def _startReading(self) -> None:
        if self.disconnected or self.transport is None or self.transport.disconnecting:
            return
        LineReceiver.resumeProducing(self)

    # -- dispatch -------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > wire.MAX_LINE_LENGTH:
            self.lineLengthExceeded(line)
            return
        if self.uploads.awaitingTrailer:
            self.uploads.trailerReceived(line)
            return
        if self.limits.closing:
            self.limits.sayGoodbye()
            return
        try:
            verb, args = wire.parseCommand(line)
        except FtxError as e:
            self.reply(wire.formatError(e))
            return
        handler = self._commands.get(verb)
        if handler is None:
            self._log.info("{peer} unknown command {verb}", peer=self.peer, verb=verb[:40])
            self.reply(wire.formatError(BadRequest("unknown command: {}".format(verb[:40]))))
            return
        if self.account is None and verb not in _WITHOUT_LOGIN:
            self.reply(wire.formatError(LoginRequired("log in first: login USER PASSWORD")))
            return
        self._commandRunning = True
        self.gate.pause(COMMAND)
        started = time.monotonic()
        d = defer.maybeDeferred(handler, args)
        d.addBoth(self._commandDone, verb, started)

    def _commandDone(self, result, verb: str, started: float) -> None:
        elapsed = time.monotonic() - started
        if isinstance(result, Failure):
            error = result.value
            if not isinstance(error, FtxError):
                if self.disconnected or isinstance(error, ConnectionError):
                    # The client went away (closed, reset, killed) while the
                    # command ran: a normal end, not a server fault.
                    self._log.info("{peer} {verb} abandoned: connection lost", peer=self.peer, verb=verb)
                    if not self.disconnected:
                        self.transport.abortConnection()
                    return
                self._log.failure("{peer} {verb} failed", failure=result, peer=self.peer, verb=verb)
                error = ServerError("internal error while running {}".format(verb))
            else:
                self._log.info(
                    "{peer} {verb} refused: {code} {error} ({duration:.3f}s)",
                    peer=self.peer, verb=verb, code=error.code, error=error.message, duration=elapsed,
                )
            self.reply(wire.formatError(error))
        self._commandRunning = False
        if self.limits.closing and not self.disconnected:
            self.limits.sayGoodbye()
        self.gate.resume(COMMAND)

    # -- what the parts may ask (IConnection) -----------------------------

    @property
    def log(self) -> Logger:
        return self._log

    @property
    def reactor(self):
        return self.factory.reactor

    @property
    def policy(self) -> "ServerPolicy":
        return self.factory.policy

    @property
    def storage(self) -> IStorage:
        account = self.account
        if account is not None and account.storage is not None:
            return account.storage
        return self.factory.storage

    def reply(self, line: bytes) -> None:
        if not self.disconnected:
            self.sendLine(line)

    def threaded(self, f, *args) -> Deferred:
        reactor = self.factory.reactor
        # Work in a thread is the server being busy, not the client idle.
        self.setTimeout(None)
        d = deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
        return d.addBoth(self._threadDone)

    def hashed(self, f, *args) -> Deferred:
        """
        Run digest work C{f(*args)} in the server's L{HashLane}, in this
        client address's turn; the idle timer is off meanwhile.
        """
        self.setTimeout(None)
        d = self.factory.hashing.run(self._address, f, *args, wanted=lambda: not self.disconnected)
        return d.addBoth(self._threadDone)

    def _threadDone(self, result):
        if not self.disconnected:
            self.setTimeout(self.factory.policy.idleTimeout)
        return result

    def permit(self, action: str, name: Optional[bytes]) -> None:
        """
        Refuse C{action} (read, write, delete) to this client: not logged
        in, lacking the right, or a read-only server. The one place where
        access rules are checked, before any storage call.
        """
        self.factory.access.check(self.account, action, name)
        if action in ("write", "delete") and self.factory.policy.readOnly:
            raise PermissionDenied("the server is read-only")

    def logged(self, verb: str, name: bytes, size: int, started: float, outcome: str = "ok") -> None:
        self._log.info(
            "{peer} {verb} {path} {size} bytes in {duration:.3f}s: {outcome}",
            peer=self.peer, verb=verb, path=nameText(name), size=size,
            duration=time.monotonic() - started, outcome=outcome,
        )

    # -- the small commands ---------------------------------------------

    def _delete(self, args):
        checkArity(args, 1, 1, "delete NAME")
        name = decodeName(args[0])
        self.permit("delete", name)
        self.storage.delete(name)
        self.reply(wire.formatLine(wire.OK, "deleted", encodeName(name)))
        self.logged("delete", name, 0, time.monotonic())

    def _df(self, args):
        checkArity(args, 0, 0, "df")
        total, free = self.storage.diskSpace()
        self.reply(wire.formatLine(wire.DISK_SPACE, total, free, self.storage.usedSpace()))

    @inlineCallbacks
    def _login(self, args):
        checkArity(args, 2, 2, "login USER PASSWORD")
        logins = self._logins
        try:
            account = yield logins.attempt(decodeName(args[0]), decodeName(args[1]))
        except (LoginFailed, Unavailable) as e:
            if not logins.exhausted:
                raise
            # Out of tries: answer, then hang up (docs/protocol.rst).
            self.reply(wire.formatError(e))
            self.limits.hangUp()
            return
        self.account = account
        self.rate.loggedIn(account, self.transport)
        self.limits.deadlines.loggedIn()
        self.reply(wire.formatLine(wire.LOGGED_IN, encodeName(account.name)))

    def _checksum(self, args):
        checkArity(args, 1, 1, "checksum NAME")
        if args[0] != checksums.SHA1 and args[0] not in CHECKSUM_FEATURES:
            raise BadRequest(
                "unknown checksum {!r}; this server offers {}".format(args[0][:40], ", ".join((checksums.SHA1,) + CHECKSUM_FEATURES))
            )
        self.checksum = args[0]
        self.reply(wire.formatLine(wire.OK, "checksum", self.checksum))

    def _compress(self, args):
        self.compression, self.rawRun = compression.chooseFields(args, COMPRESS_FEATURES)
        self.reply(wire.formatLine(wire.OK, "compress", *args))

    def _quit(self, args):
        self.reply(wire.formatLine(wire.BYE, "bye"))
        self.limits.hangUp()

    def _noop(self, args):
        self.reply(wire.formatLine(wire.OK, "ok"))


class FtxServerFactory(Factory):
    """
    Makes one L{FtxServerProtocol} per connection, sharing storage, policy
    and the reactor (whose thread pool runs the slow storage calls).

    C{storage} may be any L{IStorage}; the reactor is always given (tests
    pass a clock-driven one). To change how connections behave, subclass
    L{FtxServerProtocol} and set it as C{protocol}, the Twisted way.
    """

    protocol = FtxServerProtocol
    noisy = False

    def __init__(
        self, storage: IStorage, reactor, policy: Optional[ServerPolicy] = None, access: Optional[AccessControl] = None
    ) -> None:
        self.storage = storage
        self.reactor = reactor
        self.policy = policy or ServerPolicy()
        self.admission = Admission(self.policy.maxConnections, self.policy.maxPerAddress)
        #: Where digest work (hash, cget, resumes) waits its turn.
        self.hashing = HashLane(reactor)
        #: Accounts and permissions; without one, everyone is anonymous with full rights.
        self.access = access or AccessControl(reactor=reactor)
        self.rates = ServerRates(reactor, self.policy.limitRate, self.policy.limitTotal)
