"""
The ftx server: a line protocol with length-framed bodies.

One L{FtxServerProtocol} serves one connection and runs one command at a
time. While a command waits on a thread (listing, hashing) or streams a
body, the protocol stops reading from its transport, so a client that
sends ahead cannot make the server buffer without bound.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Deque, Optional

from twisted.internet import interfaces
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx._io import bodyreads, internals
from ftx._io.background import BackgroundWriter
from ftx._io.filebody import BodySender
from ftx.errors import (
    BadRequest,
    FtxError,
    LoginFailed,
    LoginRequired,
    PermissionDenied,
    ServerError,
    Unavailable,
)
from ftx.protocol import checksums, wire
from ftx.protocol.wire import decodeName, encodeName, nameText
from ftx.server.accounts import AccessControl, Account
from ftx.server.downloads import DownloadCommands
from ftx.server.limits import Admission, ConnectionLimits, WriteBackpressure
from ftx.server.logins import LoginAttempts
from ftx.server.storage import IStorage
from ftx.server.uploads import UploadCommands

FEATURES = ("list", "sget", "mget", "hash", "cget", "put", "resume", "delete", "df", "quit")
# Each checksum besides SHA-1 is a feature of its own: the client may ask
# for it with "checksum NAME".
CHECKSUM_FEATURES = tuple(name for name in checksums.available() if name != checksums.SHA1)

RECEIVE_SIZE = 1 << 20


class ServerPolicy:
    """
    What the server allows, set from the twistd options.
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
    ) -> None:
        self.readOnly = readOnly
        self.maxUploadSize = maxUploadSize
        # Limits and lifetimes (docs/operations.rst); None or 0: no limit.
        self.maxConnections = maxConnections
        self.maxPerAddress = maxPerAddress
        self.idleTimeout = idleTimeout or None
        #: Seconds an abandoned partial upload is kept; 0 keeps none,
        #: L{None} keeps them until deleted by hand.
        self.partialTTL = partialTTL
        self.shutdownGrace = shutdownGrace


@implementer(interfaces.IHandshakeListener)
class FtxServerProtocol(DownloadCommands, UploadCommands, ConnectionLimits, LineReceiver, TimeoutMixin):
    """
    One client connection.

    Reading from the client stops while a command runs, while the disk is
    behind an upload, and while the client leaves too many replies unread
    (L{WriteBackpressure}); so what one connection holds in memory is
    bounded whatever the client does.
    """

    _log = Logger()
    MAX_LENGTH = wire.MAX_LINE_LENGTH
    delimiter = b"\r\n"
    #: Who the client is (L{ftx.server.accounts}); L{None} until it logs in when
    #: anonymous use is off.
    account: Optional[Account] = None
    _logins: Optional[LoginAttempts] = None

    def __init__(self) -> None:
        self.peer = "?"
        self._busy = False
        self._upload = None
        self._uploadRemaining = 0
        self._writer: Optional[BackgroundWriter] = None
        self._awaitingTrailer = False
        self._uploadDone: Optional[Deferred] = None
        self._sender: Optional[BodySender] = None
        self.disconnected = False
        self._address = "?"
        self._refused = False
        self._closing = False
        self._writeBlocked = False
        self._backpressure = WriteBackpressure(self)
        self._abortLater = None
        self._pending: Deque[memoryview] = deque()
        self._bodyBuffers = bodyreads.sharedPool
        self._directBody: Optional[bodyreads.DirectBody] = None
        self._pendingSize = 0
        self._feeding = False
        #: What body trailers on this connection carry (L{do_checksum}).
        self.checksum = checksums.SHA1

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
        self._address = str(getattr(peer, "host", peer))
        refusal = self.factory.admission.admit(self, self._address)
        if refusal is not None:
            self._refused = True
            self._log.info("{peer} refused: {reason}", peer=self.peer, reason=refusal)
            self.transport.write(wire.formatError(Unavailable(refusal)) + self.delimiter)
            self.transport.loseConnection()
            self._closeSoon()
            return
        self._log.info("{peer} connected", peer=self.peer)
        self.setTimeout(self.factory.policy.idleTimeout)
        if not interfaces.ISSLTransport.providedBy(self.transport):
            self._backpressure.attach()
        access = self.factory.access
        self.account = access.anonymous
        self._logins = LoginAttempts(
            access, self.peer, self._address,
            interfaces.ISSLTransport.providedBy(self.transport) or not hasattr(peer, "port"),
        )
        self.sendLine(wire.formatLine(wire.GREETING, wire.PROTOCOL_VERSION, ",".join(FEATURES + CHECKSUM_FEATURES + access.features())))

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done. Only now may write backpressure pause
        reading: the greeting is buffered until the handshake ends, and
        pausing then would also stop the handshake from being read, for good.
        """
        if self.disconnected:
            return
        self._backpressure.attach()
        certificate = self.transport.getPeerCertificate()
        if certificate is not None:
            subject = certificate.to_cryptography().subject.rfc4514_string()
            self._log.info("{peer} TLS client certificate {subject}", peer=self.peer, subject=subject)

    def connectionLost(self, reason=None) -> None:
        self.disconnected = True
        if self._directBody is not None:
            self._directBody.uninstall()
        self.setTimeout(None)
        if self._abortLater is not None and self._abortLater.active():
            self._abortLater.cancel()
        self._backpressure.attached = False
        self._backpressure._wake()
        if self._refused:
            return
        self.factory.admission.release(self, self._address)
        if self._uploadDone is not None:
            # do_put waits on this; it drains the writer and keeps the
            # partial file for a resume.
            d, self._uploadDone = self._uploadDone, None
            d.errback(ConnectionError("connection lost during upload"))
        if self._sender is not None and self._sender.transport is not None:
            self._sender.stopProducing()
        self._log.info("{peer} disconnected", peer=self.peer)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._log.warn("{peer} sent a line longer than {limit} bytes; closing", peer=self.peer, limit=self.MAX_LENGTH)
        self.transport.write(wire.formatError(BadRequest("line too long")) + self.delimiter)
        self.transport.loseConnection()

    # -- dispatch -------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self._awaitingTrailer:
            self._trailerReceived(line)
            return
        if self._closing:
            self._sayGoodbye()
            return
        try:
            verb, args = wire.parseCommand(line)
        except FtxError as e:
            self._reply(wire.formatError(e))
            return
        handler = getattr(self, "do_" + verb, None) if verb.isalpha() else None
        if handler is None:
            self._reply(wire.formatError(BadRequest("unknown command: {}".format(verb[:40]))))
            return
        if self.account is None and verb not in ("login", "quit", "checksum"):
            self._reply(wire.formatError(LoginRequired("log in first: login USER PASSWORD")))
            return
        self._busy = True
        self.pauseProducing()
        started = time.monotonic()
        d = self._runHandler(handler, args)
        d.addBoth(self._commandDone, verb, started)

    def _runHandler(self, handler, args) -> Deferred:
        try:
            result = handler(args)
        except Exception:
            return _failed()
        if isinstance(result, Deferred):
            return result
        d: Deferred = Deferred()
        d.callback(result)
        return d

    def _commandDone(self, result, verb: str, started: float) -> None:
        elapsed = time.monotonic() - started
        if isinstance(result, Failure):
            error = result.value
            if not isinstance(error, FtxError):
                if self.disconnected:
                    self._log.info("{peer} {verb} abandoned: connection lost", peer=self.peer, verb=verb)
                    return
                self._log.failure("{peer} {verb} failed", failure=result, peer=self.peer, verb=verb)
                error = ServerError("internal error while running {}".format(verb))
            else:
                self._log.info(
                    "{peer} {verb} refused: {code} {error} ({duration:.3f}s)",
                    peer=self.peer, verb=verb, code=error.code, error=error.message, duration=elapsed,
                )
            self._reply(wire.formatError(error))
        self._busy = False
        if self._closing and not self.disconnected:
            self._sayGoodbye()
        if not self.disconnected and not self.transport.disconnecting:
            self.resumeProducing()

    def _reply(self, line: bytes) -> None:
        if not self.disconnected:
            self.sendLine(line)

    def _threaded(self, f, *args) -> Deferred:
        reactor = self.factory.reactor
        # Work in a thread is the server being busy, not the client idle.
        self.setTimeout(None)
        d = deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
        return d.addBoth(self._threadDone)

    def _threadDone(self, result):
        if not self.disconnected:
            self.setTimeout(self.factory.policy.idleTimeout)
        return result

    @property
    def storage(self) -> IStorage:
        account = self.account
        if account is not None and account.storage is not None:
            return account.storage
        return self.factory.storage

    def _permit(self, action: str, name: Optional[bytes]) -> None:
        """
        Refuse C{action} (read, write, delete) to this client: not logged
        in, lacking the right, or a read-only server. The one place where
        access rules are checked, before any storage call.
        """
        self.factory.access.check(self.account, action, name)
        if action in ("write", "delete") and self.factory.policy.readOnly:
            raise PermissionDenied("the server is read-only")

    def _logged(self, verb: str, name: bytes, size: int, started: float, outcome: str = "ok") -> None:
        self._log.info(
            "{peer} {verb} {path} {size} bytes in {duration:.3f}s: {outcome}",
            peer=self.peer, verb=verb, path=nameText(name), size=size,
            duration=time.monotonic() - started, outcome=outcome,
        )

    # -- commands -------------------------------------------------------

    @staticmethod
    def _arity(args, least: int, most: int, usage: str) -> None:
        if not least <= len(args) <= most:
            raise BadRequest("usage: {}".format(usage))

    @inlineCallbacks
    def do_list(self, args):
        self._arity(args, 0, 1, "list [MASK]")
        mask = decodeName(args[0]) if args else None
        self._permit("read", mask)
        entries = yield self._threaded(self.storage.listFiles, mask)
        lines = [wire.formatLine(wire.LIST_ENTRY, encodeName(e.name), e.size, e.mtime) for e in entries]
        lines.append(wire.formatLine(wire.LIST_END, len(entries)))
        if not self.disconnected:
            # One write for the whole listing rather than a syscall a line.
            self.transport.write(self.delimiter.join(lines) + self.delimiter)
        self._log.info("{peer} list {mask}: {count} entries", peer=self.peer, mask=nameText(mask or b"*"), count=len(entries))

    @inlineCallbacks
    def do_hash(self, args):
        self._arity(args, 1, 2, "hash NAME [LENGTH]")
        name = decodeName(args[0])
        length = wire.optionalInt(args, 1, "length")
        self._permit("read", name)
        started = time.monotonic()
        digest, count = yield self._threaded(self.storage.digest, name, length)
        self._reply(wire.formatLine(wire.DIGEST, digest, count))
        self._logged("hash", name, count, started)

    def do_delete(self, args):
        self._arity(args, 1, 1, "delete NAME")
        name = decodeName(args[0])
        self._permit("delete", name)
        self.storage.delete(name)
        self._reply(wire.formatLine(wire.OK, "deleted", encodeName(name)))
        self._logged("delete", name, 0, time.monotonic())

    def do_df(self, args):
        self._arity(args, 0, 0, "df")
        total, free = self.storage.diskSpace()
        self._reply(wire.formatLine(wire.DISK_SPACE, total, free))

    @inlineCallbacks
    def do_login(self, args):
        self._arity(args, 2, 2, "login USER PASSWORD")
        logins = self._logins
        try:
            account = yield logins.attempt(decodeName(args[0]), decodeName(args[1]))
        except (LoginFailed, Unavailable) as e:
            if not logins.exhausted:
                raise
            # Out of tries: answer, then hang up (docs/protocol.rst).
            self._reply(wire.formatError(e))
            self.transport.loseConnection()
            return
        self.account = account
        self._reply(wire.formatLine(wire.LOGGED_IN, encodeName(account.name)))

    def do_checksum(self, args):
        self._arity(args, 1, 1, "checksum NAME")
        if args[0] != checksums.SHA1 and args[0] not in CHECKSUM_FEATURES:
            raise BadRequest(
                "unknown checksum {!r}; this server offers {}".format(args[0][:40], ", ".join((checksums.SHA1,) + CHECKSUM_FEATURES))
            )
        self.checksum = args[0]
        self._reply(wire.formatLine(wire.OK, "checksum", self.checksum))

    def do_quit(self, args):
        self._reply(wire.formatLine(wire.BYE, "bye"))
        self.transport.loseConnection()

    def do_noop(self, args):
        self._reply(wire.formatLine(wire.OK, "ok"))


def _failed() -> Deferred:
    d: Deferred = Deferred()
    d.errback(Failure())
    return d


class FtxServerFactory(Factory):
    """
    Makes one L{FtxServerProtocol} per connection, sharing storage, policy
    and the reactor (whose thread pool runs the slow storage calls).
    """

    protocol = FtxServerProtocol
    noisy = False

    def __init__(
        self, storage: IStorage, reactor=None, policy: Optional[ServerPolicy] = None, access: Optional[AccessControl] = None
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.storage = storage
        self.reactor = reactor
        self.policy = policy or ServerPolicy()
        self.admission = Admission(self.policy.maxConnections, self.policy.maxPerAddress)
        #: Accounts and permissions; without one, everyone is anonymous with full rights.
        self.access = access or AccessControl(reactor=reactor)
