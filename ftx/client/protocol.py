"""
The client side of one ftx connection: the greeting, the checksum both
ends agree on, and requests run one at a time in the order they were made
(the server answers in that order anyway, and an upload body must not
interleave with anything). Most code wants L{ftx.client.FtxClient}, which
L{ftx.client.connect} builds around this protocol.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from ftx._io import bodyreads, internals, threadedbody, tls
from ftx._io.ratelimit import ReadPacer, Throttle, TokenBucket
from ftx.client.exchanges import Request
from ftx.client.replies import ReplyStream
from ftx.errors import ConnectionLost, FtxError, TLSError, errorFromReply
from ftx.protocol import checksums, compression, wire

__all__ = ["FtxClientProtocol", "READ_SIZE", "THREAD_MIN"]

# The read size of the client's socket. Twisted reads 64 KiB at a time by
# default; a 1 MiB read lets one dataReceived carry 16 times as much and
# lifted a 1 GiB download from ~600 to ~950 MB/s on a 2-core machine.
READ_SIZE = 1 << 20
#: The least body read by a thread of its own when C{bodyThreads} is left
#: to decide (L{FtxClientProtocol.bodyThreads}): starting a thread and its
#: buffers costs about what the reactor spends on a few megabytes.
THREAD_MIN = 8 << 20
#: Seconds a plain connection waits for the greeting before it probes for
#: a TLS server (L{FtxClientProtocol.probeForTLS}). An ftx server greets
#: as soon as it accepts, so a second of silence is already unusual.
TLS_PROBE_DELAY = 1.0
#: What the probe sends: a command any ftx server answers with exactly one
#: line (C{200}, or C{401} before a login), and at least the five bytes a
#: TLS server reads as a record header before it refuses the connection.
_PROBE = b"noop\r\n"
#: The first bytes of a TLS record: an alert (21) or a handshake (22), then
#: the major version 3.
_TLS_RECORDS = (b"\x15\x03", b"\x16\x03")
_TLS_HINT = (
    "{} answered in TLS, or not at all, instead of greeting: if it is a TLS server, "
    "connect with --tls (or an ssl: address)"
)


class FtxClientProtocol(ReplyStream, LineReceiver):
    """
    The client side of one connection. Most code wants L{FtxClient}.

    L{ftx.client.FtxClientFactory} builds these; a program that needs to
    watch or extend the connection may subclass this class and name the
    subclass as its factory's C{protocol}.

    @ivar greeted: fires with this protocol once the server has greeted
        (the checksum is asked for then; its answer is not waited for);
        fails with the server's error, with L{TLSError} or
        L{CertificateError} when a TLS connection died in its handshake,
        or with L{ConnectionLost}. L{None} once fired.
    """

    _log = Logger()
    MAX_LENGTH = wire.MAX_LINE_LENGTH
    delimiter = b"\r\n"
    #: The checksum to ask for (L{ftx.protocol.checksums}); L{None} takes the
    #: fastest one both ends have.
    preferredChecksum: Optional[str] = None
    #: How errors name the server: the host name its TLS certificate is
    #: checked against, when there is one.
    serverName = "the server"
    #: Bytes a second each way (L{ftx._io.ratelimit}); L{None}: no limit.
    #: Set by the factory before the connection is made.
    limitRate: Optional[int] = None
    #: Whether a large body may be read by a thread of its own
    #: (L{ftx._io.threadedbody}) rather than by the reactor. L{True}:
    #: whenever it qualifies (L{readsBodyInThread}), right for a process
    #: that holds this one connection and does nothing else meanwhile (the
    #: C{ftx} command sets it). L{None}, the default: only when it would be
    #: the one large body the process receives at that moment, and at
    #: least L{THREAD_MIN} long; the reactor goes on serving every other
    #: connection meanwhile (the thread only reads this socket, and hands
    #: back to the reactor with C{callFromThread}), but a hundred bodies at
    #: once stay on the reactor rather than take two hundred threads that
    #: fight over the GIL. L{False}: never.
    bodyThreads: Optional[bool] = None

    def __init__(self, reactor=None) -> None:
        #: Whose thread pool writes received files and whose clock paces
        #: them; given by the factory, or by L{FtxClient} for a protocol
        #: built by hand.
        self.reactor = reactor
        self.greeted: Deferred = Deferred()
        self.features: List[str] = []
        self.version: Optional[str] = None
        #: What body trailers carry on this connection, agreed on after
        #: the greeting: SHA-1 unless both ends have a faster checksum.
        self.checksum = checksums.SHA1
        #: How bodies travel: C{none}, or C{zstd} once the server agreed
        #: (L{ftx.client.compressed}); C{compressMode} is what was asked for
        #: (C{auto}, C{zstd}, C{none}) and C{autoCompress} what it came to.
        self.compression = "none"
        #: The most file bytes one raw block may hold, both ways: a MiB, or
        #: L{ftx.protocol.compression.MAX_RUN} once the server agreed to
        #: C{raw-runs}.
        self.rawRun = compression.MAX_BLOCK
        self.compressMode = "none"
        self.autoCompress = False
        self._queue: Deque[Request] = deque()
        self._active: Optional[Request] = None
        ReplyStream.__init__(self)
        self._lost = False
        #: Set once the TLS probe was sent: its one reply follows the greeting.
        self._probeReplies = 0
        #: The checksum asked for and not yet answered (L{_agreeOn}).
        self._agreeing: Optional[str] = None
        #: What uploads obey (L{ftx._io.filebody.BodySender}'s throttle).
        self.sending = Throttle()
        self._pacer: Optional[ReadPacer] = None

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):
            try:
                self.transport.setTcpNoDelay(True)
            except Exception:
                pass
        internals.setReadSize(self.transport, READ_SIZE)
        if self.limitRate:
            self.sending = Throttle([TokenBucket(self.limitRate, self.reactor)])
            receiving = Throttle([TokenBucket(self.limitRate, self.reactor)])
            self._pacer = ReadPacer(receiving, self.transport, lambda: not self.paused and not self._lost)
            # Read a step at a time, so that one read cannot overshoot much.
            internals.setReadSize(self.transport, receiving.step)

    def probeForTLS(self) -> None:
        """
        No greeting yet: the server may be a TLS one, silently waiting for
        a handshake that will not come. On a plain connection, send one
        harmless command: a TLS server refuses it at once (an alert, or a
        close), and L{greeted} fails with L{TLSError} saying to use TLS; an
        ftx server that is merely slow greets first and then answers it,
        and that answer is dropped. L{ftx.client.connect} calls this after
        L{TLS_PROBE_DELAY} seconds without a greeting.
        """
        if self.greeted is None or self._lost or self._probeReplies or ISSLTransport.providedBy(self.transport):
            return
        self._probeReplies = 1
        self.transport.write(_PROBE)

    def abandonGreeting(self) -> None:
        """
        Give up waiting for the greeting: L{greeted} fails with
        L{ConnectionLost} (whatever the probe may have provoked).
        """
        self._probeReplies = 0
        self.transport.abortConnection()

    def resumeProducing(self) -> None:
        if self._pacer is not None and self._pacer.holding:
            # The rate holds the transport: only parse what is here.
            self.paused = False
            self.dataReceived(b"")
            return
        LineReceiver.resumeProducing(self)

    def _readDirectly(self) -> None:
        # Paced bodies are read through dataReceived, a step at a time.
        if self._pacer is None:
            ReplyStream._readDirectly(self)

    def dataReceived(self, data: bytes) -> None:
        if self._pacer is not None:
            self._pacer.received(len(data))
        if self.greeted is not None and (self._unparsed + data)[:2] in _TLS_RECORDS:
            greeted, self.greeted = self.greeted, None
            greeted.errback(TLSError(_TLS_HINT.format(self.serverName)))
            self.transport.abortConnection()
            return
        ReplyStream.dataReceived(self, data)

    def lineReceived(self, line: bytes) -> None:
        # A listing's entries, straight from the bytes (ListRequest.fastLine).
        fast = getattr(self._active, "fastLine", None)
        if fast is not None and self.greeted is None and self._agreeing is None and not self._probeReplies and fast(line):
            return
        try:
            reply = wire.parseReply(line)
        except FtxError as e:
            self._protocolError(e)
            return
        if self.greeted is None and self._probeReplies:
            # The answer to the TLS probe, which came after the greeting.
            self._probeReplies -= 1
            return
        if self.greeted is not None:
            greeted, self.greeted = self.greeted, None
            if reply.code != wire.GREETING:
                greeted.errback(errorFromReply(reply.code, reply.errorMessage()))
                self.transport.loseConnection()
                return
            self.version = reply.fields[0] if reply.fields else None
            self.features = reply.fields[1].split(",") if len(reply.fields) > 1 else []
            checksum = self._chooseChecksum()
            if checksum != checksums.SHA1:
                self._agreeOn(checksum)
            greeted.callback(self)
            return
        if self._agreeing is not None:
            self._agreed(reply)
            return
        if self._active is None:
            self._log.warn("unexpected reply from server: {line!r}", line=reply.text[:200])
            return
        try:
            self._active.replyReceived(reply)
        except FtxError as e:
            self._protocolError(e)

    def _chooseChecksum(self) -> str:
        wanted = self.preferredChecksum
        candidates = checksums.available() if wanted is None else (wanted,)
        for name in candidates:
            if name == checksums.SHA1 or (name in self.features and name in checksums.available()):
                return name
        return checksums.SHA1

    def _agreeOn(self, checksum: str) -> None:
        """
        Ask the server to end bodies with C{checksum}, and take it as agreed
        without waiting for the answer: the connection is ready at once, and
        the first command goes out right behind this one, saving a round
        trip (docs/protocol.rst, Commands). The server answers in order, so
        the answer comes before any reply to a later command, and before
        any body whose trailer it concerns; L{_agreed} reads it.
        """
        self.checksum = self._agreeing = checksum
        self.sendLine(wire.formatCommand("checksum", checksum))

    def _agreed(self, reply: wire.Reply) -> None:
        """
        The answer to L{_agreeOn}. A server that refuses (it offered the
        checksum, so only a broken one would) leaves SHA-1 in place.
        """
        checksum, self._agreeing = self._agreeing, None
        if reply.code // 100 != 2:
            self.checksum = checksums.SHA1
            self._log.warn("the server refused checksum {checksum}: {error}", checksum=checksum, error=reply.text[:200])

    def readsBodyInThread(self, length: int, checksum: str) -> bool:
        """
        Whether a body of C{length} bytes ending with a C{checksum} trailer
        is to be read by a thread (L{bodyThreads}): a large one, on a plain
        socket, with a checksum cheap enough to compute on that thread.
        """
        if self.bodyThreads is False:
            return False
        if self.bodyThreads is None and (
            length < THREAD_MIN or threadedbody.busy() or bodyreads.sharedPool.active
        ):
            # Another large body is being received in this process (by a
            # thread or by the reactor): this one stays on the reactor.
            return False
        return (
            # A rate-limited body is read through dataReceived, paced.
            self._pacer is None
            and length >= bodyreads.DIRECT_MIN
            and checksums.cheap(checksum)
            and internals.socketOf(self.transport) is not None
        )

    def _protocolError(self, error: FtxError) -> None:
        self._log.error("protocol error: {error}", error=error)
        self.transport.abortConnection()

    def request(self, request: Request) -> Deferred:
        if self._lost:
            return fail(ConnectionLost("not connected to the server"))
        self._queue.append(request)
        self._next()
        return request.deferred

    def _next(self) -> None:
        if self._active is None and self._queue:
            self._active = self._queue.popleft()
            self._active.start(self)

    def _requestDone(self, request: Request) -> None:
        if self._active is request:
            self._active = None
            self._next()

    def connectionLost(self, reason=None) -> None:
        self._lost = True
        self.sending.cancel()
        if self._pacer is not None:
            self._pacer.cancel()
        if self._directBody is not None:
            self._directBody.uninstall()
        if self._threadedBody is not None:
            self._threadedBody.stop()
        pending = ([self._active] if self._active else []) + list(self._queue)
        self._active = None
        self._queue.clear()
        error = ConnectionLost("connection to the server lost")
        if self.greeted is not None:
            # A TLS connection that dies before the greeting died in its
            # handshake; the reason (untrusted certificate, wrong host name,
            # a plain server) is what the user needs to see.
            greeted, self.greeted = self.greeted, None
            tlsError = tls.errorFromFailure(reason, self.serverName) if reason is not None else None
            if tlsError is None and self._probeReplies:
                # The server closed on the probe without a greeting: what
                # TLS servers do.
                tlsError = TLSError(_TLS_HINT.format(self.serverName))
            greeted.errback(tlsError or ConnectionLost("the server closed the connection before greeting"))
        for request in pending:
            request.connectionLost()
            if not request.deferred.called:
                request.deferred.errback(ConnectionLost(str(error)))
