"""
The ftx client: a protocol, a facade whose methods return Deferreds, and
L{connect}.

Requests run one at a time over one connection, in the order they were
made; the server answers them in that order anyway, and an upload body must
not interleave with anything. Every method returns a fresh Deferred. If the
connection drops, every pending request fails with L{ConnectionLost}.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable, Deque, List, Optional

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from ftx._io import internals
from ftx._io.fileio import hashPrefix
from ftx.client import localfiles
from ftx.client.exchanges import DownloadRequest, ListRequest, Request, UploadRequest
from ftx.client.replies import ReplyStream
from ftx.client.results import DiskSpace, Entry, Transfer
from ftx.errors import ConnectionLost, FtxError, errorFromReply
from ftx.protocol import checksums, wire
from ftx.protocol.wire import encodeName, nameText

__all__ = [
    "connect",
    "endpointFromAddress",
    "FtxClient",
    "FtxClientProtocol",
    "Entry",
    "DiskSpace",
    "Transfer",
    "Progress",
]

#: C{progress(name, bytesDone, bytesTotal)}; bytesDone counts a resumed
#: prefix as done.
Progress = Callable[[str, int, int], None]

# The read size of the client's socket. Twisted reads 64 KiB at a time by
# default; a 1 MiB read lets one dataReceived carry 16 times as much and
# lifted a 1 GiB download from ~600 to ~950 MB/s on a 2-core machine.
READ_SIZE = 1 << 20


def endpointFromAddress(reactor, address: str):
    """
    A client endpoint for C{host:port}, a bare port, or any Twisted client
    endpoint string (C{tcp:host=...:port=...}, C{tls:...}, C{unix:path=...}).
    """
    if ":" not in address and address.isdigit():
        address = "localhost:" + address
    head = address.split(":", 1)[0]
    if head in ("ssl", "tls"):
        # Twisted's own ssl: client checks no certificate unless given
        # caCertsDir; ftx always verifies the server (ftx._io.tls).
        from ftx._io import tls

        try:
            return tls.clientEndpoint(reactor, address)[0]
        except FtxError as e:
            raise ValueError(str(e))
    if head in ("tcp", "tcp6", "unix", "tor", "tcp4"):
        return clientFromString(reactor, address)
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ValueError("not an address: {!r} (expected HOST:PORT or an endpoint string)".format(address))
    from twisted.internet.endpoints import HostnameEndpoint

    return HostnameEndpoint(reactor, host, int(port))


class FtxClientProtocol(ReplyStream, LineReceiver):
    """
    The client side of one connection. Most code wants L{FtxClient}.
    """

    _log = Logger()
    MAX_LENGTH = wire.MAX_LINE_LENGTH
    delimiter = b"\r\n"
    #: The checksum to ask for (L{ftx.protocol.checksums}); L{None} takes the
    #: fastest one both ends have.
    preferredChecksum: Optional[str] = None

    def __init__(self, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        #: Whose thread pool writes received files; L{FtxClient} sets it.
        self.reactor = reactor
        self.greeted: Deferred = Deferred()
        self.features: List[str] = []
        self.version: Optional[str] = None
        #: What body trailers carry on this connection, agreed on after
        #: the greeting: SHA-1 unless both ends have a faster checksum.
        self.checksum = checksums.SHA1
        self._queue: Deque[Request] = deque()
        self._active: Optional[Request] = None
        ReplyStream.__init__(self)
        self._lost = False

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):
            try:
                self.transport.setTcpNoDelay(True)
            except Exception:
                pass
        internals.setReadSize(self.transport, READ_SIZE)

    def lineReceived(self, line: bytes) -> None:
        try:
            reply = wire.parseReply(line)
        except FtxError as e:
            self._protocolError(e)
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
            if checksum == checksums.SHA1:
                greeted.callback(self)
            else:
                self._agreeOn(checksum, greeted)
            return
        if self._active is None:
            self._log.warn("unexpected reply from server: {line}", line=reply.text[:200])
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

    def _agreeOn(self, checksum: str, greeted: Deferred) -> None:
        """
        Ask the server to end bodies with C{checksum}; only then is the
        connection ready. A server that refuses leaves SHA-1 in place.
        """

        def agreed(_):
            self.checksum = checksum
            greeted.callback(self)

        def refused(failure):
            if isinstance(failure.value, ConnectionLost):
                greeted.errback(failure)
            else:
                self._log.warn("the server refused checksum {checksum}: {error}", checksum=checksum, error=failure.value)
                greeted.callback(self)

        self.request(Request(wire.formatCommand("checksum", checksum))).addCallbacks(agreed, refused)

    def _protocolError(self, error: FtxError) -> None:
        self._log.error("protocol error: {error}", error=error)
        self.transport.abortConnection()

    def request(self, request: Request) -> Deferred:
        if self._lost:
            return _failure(ConnectionLost("not connected to the server"))
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
        if self._directBody is not None:
            self._directBody.uninstall()
        pending = ([self._active] if self._active else []) + list(self._queue)
        self._active = None
        self._queue.clear()
        error = ConnectionLost("connection to the server lost")
        if self.greeted is not None:
            greeted, self.greeted = self.greeted, None
            greeted.errback(ConnectionLost("the server closed the connection before greeting"))
        for request in pending:
            request.connectionLost()
            if not request.deferred.called:
                request.deferred.errback(ConnectionLost(str(error)))


def _failure(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d


class FtxClient:
    """
    A connection to an ftx server. Every method returns a new Deferred
    that fires with the documented result or fails with an
    L{ftx.errors.FtxError} subclass (L{ftx.errors.NotFound},
    L{ftx.errors.PermissionDenied}, ...).
    """

    def __init__(self, protocol: FtxClientProtocol, reactor=None) -> None:
        self.protocol = protocol
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._reactor = reactor
        protocol.reactor = reactor

    def _threaded(self, f, *args) -> Deferred:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), f, *args)

    def list(self, mask: Optional[str] = None) -> "Deferred[List[Entry]]":
        """
        Files on the server matching C{mask} (all files when L{None}).
        """
        fields = [encodeName(mask)] if mask else []
        return self.protocol.request(ListRequest(wire.formatCommand("list", *fields)))

    def sget(self, name: str, path: Optional[str] = None, progress: Optional[Progress] = None) -> "Deferred[Transfer]":
        """
        Download C{name} to C{path} (default: its base name in the current
        folder). The file appears at C{path} only once complete and checked;
        if the transfer is cut off, the part received is kept for L{cget}.
        """
        target = path if path is not None else os.path.basename(name)
        request = DownloadRequest(wire.formatCommand("sget", encodeName(name)), lambda n, s: target, progress)
        return self.protocol.request(request)

    def cget(self, name: str, path: Optional[str] = None, progress: Optional[Progress] = None) -> "Deferred[Transfer]":
        """
        Continue a download of C{name} into C{path}: from the partial file an
        interrupted L{sget} left, or else from a shorter file at C{path}.
        The server first checks that its prefix matches; a mismatch fails
        with L{IntegrityError} and leaves local files as they were.
        """
        target = path if path is not None else os.path.basename(name)
        partial = localfiles.partialPath(target)
        if not os.path.exists(partial) and os.path.exists(target):
            os.replace(target, partial)
            restore = True
        else:
            restore = False

        def hashed(result):
            offset, prefix, whole = result
            request = DownloadRequest(
                wire.formatCommand("cget", encodeName(name), offset, prefix.hexdigest()),
                lambda n, s: target, progress, offset=offset, hasher=whole.copy(),
            )
            return self.protocol.request(request)

        def failed(failure):
            if restore and os.path.exists(partial) and not os.path.exists(target):
                os.replace(partial, target)
            return failure

        return self._threaded(_hashLocal, partial, self.protocol.checksum).addCallback(hashed).addErrback(failed)

    def mget(
        self,
        mask: str,
        directory: str = ".",
        progress: Optional[Progress] = None,
        accept: Optional[Callable[[str, int], "bool | str"]] = None,
        received: Optional[Callable[[Transfer], None]] = None,
    ) -> "Deferred[List[Transfer]]":
        """
        Download every file matching C{mask} into C{directory}, keeping the
        server's relative names, over one request. C{accept(name, size)}
        may decline a file (L{False}: its body is read and dropped) or name
        another local path for it (a string). C{received(transfer)} is
        called as each file is in place. Fires with the transfers made; if
        a file fails its check, the rest of the batch is still received and
        the Deferred fails at the end with the first error.
        """

        def destination(name: bytes, size: int):
            path = localfiles.localPath(directory, name)
            if accept is None:
                return path
            verdict = accept(nameText(name), size)
            if isinstance(verdict, str):
                return verdict
            return path if verdict else None

        request = DownloadRequest(
            wire.formatCommand("mget", encodeName(mask)), destination, progress, batch=True, received=received
        )
        return self.protocol.request(request)

    def hash(self, name: str, length: Optional[int] = None) -> "Deferred[str]":
        """
        The SHA-1 hex digest of C{name}, or of its first C{length} bytes.
        """
        fields = [encodeName(name)] + ([length] if length is not None else [])
        request = Request(wire.formatCommand("hash", *fields))
        request.parse = lambda reply: reply.fields[0]
        return self.protocol.request(request)

    def put(
        self, path: str, name: Optional[str] = None, progress: Optional[Progress] = None, resume: bool = False
    ) -> "Deferred[Transfer]":
        """
        Upload the local file C{path} as C{name} (default: its base name).
        The server keeps it under C{name} only once every byte arrived and
        the digest matches. With C{resume}, first ask the server how much of
        an interrupted upload it holds and send only the rest if that part
        matches the local file.
        """
        name = name if name is not None else os.path.basename(path)
        try:
            f = open(path, "rb", buffering=0)
            size = os.fstat(f.fileno()).st_size
        except OSError as e:
            return _failure(localfiles.localError(e, path))
        checksum = self.protocol.checksum
        if not resume:
            request = UploadRequest(
                wire.formatCommand("put", encodeName(name), size), name, f, size, 0, checksums.new(checksum), progress
            )
            return self.protocol.request(request)

        def held(reply):
            offset, digest = int(reply.fields[0]), reply.fields[1]
            fresh = (0, None, checksums.new(checksum))
            if offset == 0 or offset > size:
                return fresh
            return self._threaded(_hashPrefix, path, offset, checksum).addCallback(
                lambda hashers: (offset,) + hashers if hashers[0].hexdigest() == digest else fresh
            )

        def send(result):
            offset, prefix, whole = result
            fields = [encodeName(name), size] + ([offset, prefix.hexdigest()] if offset else [])
            request = UploadRequest(wire.formatCommand("put", *fields), name, f, size, offset, whole, progress)
            return self.protocol.request(request)

        def closeOnError(failure):
            f.close()
            return failure

        ask = Request(wire.formatCommand("partial", encodeName(name)))
        return self.protocol.request(ask).addCallback(held).addCallback(send).addErrback(closeOnError)

    def partial(self, name: str) -> "Deferred[tuple]":
        """
        How many bytes of an interrupted upload of C{name} the server holds,
        and their SHA-1.
        """
        request = Request(wire.formatCommand("partial", encodeName(name)))
        request.parse = lambda reply: (int(reply.fields[0]), reply.fields[1])
        return self.protocol.request(request)

    def delete(self, name: str) -> "Deferred[None]":
        """
        Remove C{name} on the server.
        """
        request = Request(wire.formatCommand("delete", encodeName(name)))
        request.parse = lambda reply: None
        return self.protocol.request(request)

    def df(self) -> "Deferred[DiskSpace]":
        """
        Total and free bytes of the disk that holds the server's files.
        """
        request = Request(wire.formatCommand("df"))
        request.parse = lambda reply: DiskSpace(int(reply.fields[0]), int(reply.fields[1]))
        return self.protocol.request(request)

    def login(self, user: str, password: str) -> "Deferred[str]":
        """
        Log in; fails with L{ftx.errors.LoginFailed}.
        """
        request = Request(wire.formatCommand("login", encodeName(user), encodeName(password)))
        request.parse = lambda reply: user
        return self.protocol.request(request)

    def quit(self) -> "Deferred[None]":
        """
        Say goodbye and close the connection; fires once it is closed.
        """
        request = Request(wire.formatCommand("quit"))
        request.parse = lambda reply: None
        d = self.protocol.request(request)

        def close(_):
            self.protocol.transport.loseConnection()

        return d.addCallback(close)


def _hashLocal(path: str, checksum: str):
    """
    Size of a local partial file, its SHA-1 hasher (for C{cget}) and a
    hasher of C{checksum} over the same bytes (to go on with); run in a
    thread.
    """
    size = localfiles.existingSize(path) or 0
    if not size:
        return (0, checksums.new(checksums.SHA1), checksums.new(checksum))
    return (size,) + _hashPrefix(path, size, checksum)


def _hashPrefix(path: str, count: int, checksum: str):
    """
    SHA-1 hasher and C{checksum} hasher over the first C{count} bytes of a
    local file, in one pass (run in a thread); the same chunked loop the
    server uses. With SHA-1 as the checksum both are the same object.
    """
    whole = checksums.new(checksum) if checksum != checksums.SHA1 else None
    with open(path, "rb", buffering=0) as f:
        prefix = hashPrefix(f, count, os.fsencode(path), whole)
    return prefix, whole or prefix


class _ClientFactory(Factory):
    protocol = FtxClientProtocol
    noisy = False
    checksum: Optional[str] = None

    def buildProtocol(self, addr):
        protocol = Factory.buildProtocol(self, addr)
        protocol.preferredChecksum = self.checksum
        return protocol


def connect(reactor, endpoint, checksum: Optional[str] = None) -> "Deferred[FtxClient]":
    """
    Connect to an ftx server and wait for its greeting. C{endpoint} is an
    C{IStreamClientEndpoint} or an address string (see
    L{endpointFromAddress}). Fires with an L{FtxClient}.

    C{checksum} chooses what guards each transfer: L{None} for the fastest
    both ends have (XXH3-128 where available), C{"sha1"} to keep SHA-1.
    """
    if isinstance(endpoint, str):
        endpoint = endpointFromAddress(reactor, endpoint)
    factory = _ClientFactory()
    factory.checksum = checksum

    def connected(protocol: FtxClientProtocol):
        return protocol.greeted.addCallback(lambda _: FtxClient(protocol, reactor))

    return endpoint.connect(factory).addCallback(connected)
