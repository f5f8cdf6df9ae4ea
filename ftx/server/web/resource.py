"""
L{StorageView}, the web resource of one account's storage: a listing page
for a folder, the file's bytes (whole or one range) for a file.

Everything goes through L{ftx.server.storage.IStorage}, as the protocol
does, so the web view has the protocol's confinement: the storage checks
every name (L{ftx.protocol.names.splitName}) and refuses a file whose real
location is outside the root (symbolic links included), and never lists
partial uploads.
"""

from __future__ import annotations

import io
import mimetypes
import os
from typing import Optional

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ftx.errors import Conflict, FtxError, NotFound, PermissionDenied
from ftx.protocol.wire import nameText
from ftx.server.logsafe import SafeLogger
from ftx.server.web.listing import entriesBelow, renderListing
from ftx.server.web.paths import WebPath, linkTo, parseRequestPath
from ftx.server.web.ranges import RangeProducer, Unsatisfiable, parseRange

__all__ = ["StorageView", "Forbidden"]

_WILDCARDS = b"*?["

#: The listing page runs no script and loads nothing but its own styles.
_PAGE_POLICY = b"default-src 'none'; style-src 'unsafe-inline'"
#: A served file is opened as in a sandbox: an uploaded HTML page cannot
#: run scripts with the view's origin.
_FILE_POLICY = b"sandbox"


def _plainError(request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return (message + "\n").encode("utf-8", "replace")


class Forbidden(Resource):
    """
    What an account without the read right sees: 403 on every path.
    """

    isLeaf = True

    def __init__(self, who: str) -> None:
        super().__init__()
        self.who = who

    def render(self, request) -> bytes:
        return _plainError(request, http.FORBIDDEN, "{} may not read on this server".format(self.who))


def _modified(f) -> Optional[int]:
    """
    The modification time of an open file, whole seconds (HTTP dates have
    no finer grain), or L{None} when the backend does not say.
    """
    try:
        return int(os.fstat(f.fileno()).st_mtime)
    except (AttributeError, OSError, io.UnsupportedOperation):
        mtime = getattr(f, "mtime", None)
        return int(mtime) if mtime is not None else None


def _etagMatches(header: bytes, etag: Optional[bytes]) -> bool:
    """
    Whether an C{If-None-Match} list names C{etag} (weak comparison).
    """
    if etag is None:
        return False
    tags = [t.strip() for t in header.split(b",")]
    return b"*" in tags or any(t.removeprefix(b"W/") == etag for t in tags)


class StorageView(Resource):
    """
    The files of one storage, read-only, for the account named C{who}.

    @param storage: an L{ftx.server.storage.IStorage}.
    @param reactor: runs the storage's worker-thread calls (listing,
        hashing) in its thread pool, and paces the downloads.
    @param throttleFor: gives the sending L{ftx._io.ratelimit.Throttle} of
        a download's request (L{ftx.server.web.rates.WebRates.throttleFor}
        bound to the account); L{None}: no rate limit.
    """

    isLeaf = True
    # Names in log lines are the client's text (ftx.server.logsafe).
    _log = SafeLogger()

    def __init__(self, storage, reactor, who: str, throttleFor=None) -> None:
        super().__init__()
        self.storage = storage
        self.reactor = reactor
        self.who = who
        self.throttleFor = throttleFor

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _plainError(request, http.NOT_ALLOWED, "the web view is read-only: GET and HEAD only")
        return Resource.render(self, request)

    def render_GET(self, request):
        return self._render(request, head=False)

    def render_HEAD(self, request):
        return self._render(request, head=True)

    def _render(self, request, head: bool):
        request.setHeader(b"x-content-type-options", b"nosniff")
        try:
            path = parseRequestPath(request.path)
        except PermissionDenied as e:
            return _plainError(request, http.FORBIDDEN, str(e))
        gone = []
        request.notifyFinish().addBoth(gone.append)
        d = self._serve(request, path, head, gone)
        d.addErrback(self._failed, request, gone)
        return NOT_DONE_YET

    def _inThread(self, f, *args):
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args)

    @inlineCallbacks
    def _serve(self, request, path: WebPath, head: bool, gone: list):
        if not path.name:
            yield self._listing(request, path, head, gone)
            return
        try:
            f, size = self.storage.openForRead(path.name)
        except Conflict:
            if not path.folder:
                # Relative links on the page need the trailing slash.
                request.redirect(linkTo(path.segments, folder=True).encode("ascii"))
                request.finish()
                return
            yield self._listing(request, path, head, gone)
            return
        if path.folder:
            f.close()
            raise NotFound("not a folder: {}".format(nameText(path.name)))
        yield self._file(request, path, f, size, head, gone)

    @inlineCallbacks
    def _listing(self, request, path: WebPath, head: bool, gone: list):
        # A name with wildcards would be read as a mask by listFiles: list
        # from the root and keep what is below the folder instead. Both
        # the walk and the sorting out grow with the tree: in a thread.
        mask = None if any(c in path.name for c in _WILDCARDS) else path.name or None
        entries = yield self._inThread(lambda: entriesBelow(self.storage.listFiles(mask), path.name))
        page = yield renderListing(path.segments, entries, self.who)
        if gone:
            return
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", _PAGE_POLICY)
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-length", b"%d" % len(page))
        if not head:
            request.write(page)
        request.finish()

    @inlineCallbacks
    def _etag(self, f, name: bytes):
        """
        The file's SHA-1 from the digest cache, hashing it (once, in a
        thread) when the cache has none; L{None} when the open file's
        version is not the one hashed (replaced meanwhile, or changed too
        recently for the cache to trust it).
        """
        digest = self.storage.cachedDigest(f)
        if digest is None:
            try:
                yield self._inThread(self.storage.digest, name)
            except FtxError:
                return None
            digest = self.storage.cachedDigest(f)
        return b'"' + digest.encode("ascii") + b'"' if digest else None

    @inlineCallbacks
    def _file(self, request, path: WebPath, f, size: int, head: bool, gone: list):
        try:
            etag = yield self._etag(f, path.name)
        except BaseException:
            f.close()
            raise
        if gone:
            f.close()
            return
        mtime = _modified(f)
        request.setHeader(b"accept-ranges", b"bytes")
        if etag is not None:
            request.setHeader(b"etag", etag)
        if mtime is not None:
            request.setHeader(b"last-modified", http.datetimeToString(mtime))
        if self._notModified(request, etag, mtime):
            f.close()
            request.setResponseCode(http.NOT_MODIFIED)
            request.finish()
            return
        kind, encoding = mimetypes.guess_type(os.fsdecode(path.segments[-1]))
        request.setHeader(b"content-type", (kind if kind and not encoding else "application/octet-stream").encode("ascii"))
        request.setHeader(b"content-security-policy", _FILE_POLICY)
        try:
            wanted = parseRange(request.getHeader(b"range"), size) if self._rangeStillValid(request, etag, mtime) else None
        except Unsatisfiable:
            f.close()
            request.setResponseCode(http.REQUESTED_RANGE_NOT_SATISFIABLE)
            request.setHeader(b"content-range", b"bytes */%d" % size)
            request.setHeader(b"content-length", b"0")
            request.finish()
            return
        first, last = wanted if wanted is not None else (0, size - 1)
        if wanted is not None:
            request.setResponseCode(http.PARTIAL_CONTENT)
            request.setHeader(b"content-range", b"bytes %d-%d/%d" % (first, last, size))
        count = last - first + 1
        request.setHeader(b"content-length", b"%d" % count)
        if head:
            f.close()
            request.finish()
            return
        self._log.info("{who} web get {name} {first}+{count}", who=self.who, name=nameText(path.name), first=first, count=count)
        throttle = self.throttleFor(request) if self.throttleFor is not None else None
        RangeProducer(request, f, first, count, self.reactor, throttle).start()

    @staticmethod
    def _notModified(request, etag: Optional[bytes], mtime: Optional[int]) -> bool:
        match = request.getHeader(b"if-none-match")
        if match is not None:
            return _etagMatches(match, etag)
        since = request.getHeader(b"if-modified-since")
        if since is None or mtime is None:
            return False
        try:
            return mtime <= http.stringToDatetime(since)
        except ValueError:
            return False

    @staticmethod
    def _rangeStillValid(request, etag: Optional[bytes], mtime: Optional[int]) -> bool:
        """
        C{If-Range}: the range applies only while the file is the one the
        client has the start of (same strong ETag, or same date); else the
        whole file is sent.
        """
        condition = request.getHeader(b"if-range")
        if condition is None:
            return True
        condition = condition.strip()
        if condition.startswith(b'"') or condition.startswith(b"W/"):
            return etag is not None and condition == etag
        try:
            return mtime is not None and http.stringToDatetime(condition) == mtime
        except ValueError:
            return False

    def _failed(self, failure, request, gone: list) -> None:
        if gone:
            return
        error = failure.value
        if isinstance(error, NotFound):
            code = http.NOT_FOUND
        elif isinstance(error, PermissionDenied):
            code = http.FORBIDDEN
        elif isinstance(error, FtxError):
            code = http.BAD_REQUEST if error.code == 400 else http.INTERNAL_SERVER_ERROR
        else:
            self._log.failure("web view: {path!r} failed", failure=failure, path=request.path)
            error, code = "server error", http.INTERNAL_SERVER_ERROR
        if request.startedWriting:
            request.loseConnection()
            return
        request.write(_plainError(request, code, str(error)))
        request.finish()
