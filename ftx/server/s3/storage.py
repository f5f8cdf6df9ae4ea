"""
L{S3Storage}: the synchronous L{ftx.server.storage.IStorage} over one
bucket of an S3 engine, so that N front ends over the same bucket are
interchangeable. What the filesystem keeps per process becomes an object
in the bucket: the digests (object metadata written at finish), partial
uploads (hidden chunk objects, L{ftx.server.s3.partials}) and the lock on
a name being uploaded (a lease object, L{ftx.server.s3.leases}). What
stays per process: connection limits, the quota's reservations between
two sweeps, and a cache of digests computed while sending.

Threads: the calls the contract makes in the reactor thread are one or a
few small requests each (HEAD, a lease PUT, a DELETE: about a
millisecond each on a LAN); what grows with a file's size runs in worker
threads or in the bucket's own pool (the read-ahead of a download, the
part copies of a finish).
"""

from __future__ import annotations

import errno
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from zope.interface import implementer

from ftx.errors import AlreadyExists, BadOffset, Conflict, FtxError, NotFound, PermissionDenied
from ftx.protocol import checksums
from ftx.protocol.checksums import SHA1, XXH128
from ftx.protocol.names import matches, splitName
from ftx.protocol.wire import EMPTY_SHA1, nameText
from ftx.server.s3.bucket import Bucket, errorCode, isNotFound, unavailable
from ftx.server.s3.integrity import clientConfig, installWriteHooks
from ftx.server.s3.leases import Lease
from ftx.server.s3.partials import HIDDEN, areaOf, readState
from ftx.server.s3.reads import WHOLE_AT_OPEN, S3File
from ftx.server.s3.sweeping import sweepBucket
from ftx.server.s3.upload import MTIME_META, SHA1_META, XXH128_META, S3Upload
from ftx.server.storage import PUT_NEW, PUT_REPLACE, IStorage, QuotaReservation, StoredFile, SweepResult

__all__ = ["S3Storage", "openBucket", "DEFAULT_CAPACITY", "LEASE_SECONDS"]

#: What C{df} reports as the total when no capacity is configured: an S3
#: engine has no standard way to tell its free space.
DEFAULT_CAPACITY = 1 << 40

#: How long a lease outlives the last sign of life of its upload.
LEASE_SECONDS = 60.0

#: Whole-file digests computed while sending, kept per process.
_DIGESTS_KEPT = 4096

_METADATA = {SHA1: SHA1_META, XXH128: XXH128_META}


def openBucket(endpoint: str, bucket: str, region: Optional[str] = None) -> Bucket:
    """
    Connect to C{bucket} at C{endpoint}, with credentials from boto3's
    standard chain, and check that the bucket exists.

    @raise ValueError: boto3 is missing, or the bucket cannot be reached
        (the message says which and why).
    """
    try:
        import boto3
        import google_crc32c  # noqa: F401 (the checksums of ftx.server.s3.integrity)
    except ImportError:
        raise ValueError("--storage s3 needs boto3 and google-crc32c: pip install 'ftx[s3]'")
    # A session of its own: credentials are looked up now, from the chain
    # as it is, not from what boto3's default session cached earlier.
    # Connections: more than the bucket's pool has threads, so that the
    # storage calls of worker threads never wait for one; kept alive by
    # TCP between the bursts of a download. (parameter_validation=False
    # saved no measurable CPU: a request costs botocore ~4 ms regardless.)
    # Payloads go unsigned, guarded by a CRC32C the engine checks
    # (ftx.server.s3.integrity).
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region or "us-east-1",
        config=clientConfig(
            max_pool_connections=64, tcp_keepalive=True,
            retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"},
        ),
    )
    installWriteHooks(client)
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as e:
        code = errorCode(e)
        if code in ("404", "NoSuchBucket"):
            raise ValueError("the bucket {} does not exist at {}; create it first".format(bucket, endpoint))
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise ValueError("access to the bucket {} at {} was refused: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials".format(bucket, endpoint))
        raise ValueError("cannot reach the bucket {} at {}: {}".format(bucket, endpoint, code or e))
    return Bucket(client, bucket)


class _Shared:
    """
    What a storage and its L{S3Storage.child} views have in common.
    """

    def __init__(self, bucket: Bucket, root: str, quota, capacity: int, leaseSeconds: float, now: Callable[[], float]) -> None:
        self.bucket = bucket
        self.root = root
        self.quota = quota
        self.capacity = capacity
        self.leaseSeconds = leaseSeconds
        self.now = now
        #: Bytes held, as the last sweep counted them plus what this
        #: process wrote and deleted since.
        self.used = 0
        self._lock = threading.Lock()
        self._digests: Dict[Tuple[str, int, str], str] = {}
        #: Upload times asked for (the mtime feature), by key: (ETag, mtime).
        #: A listing carries no metadata, so only objects this process wrote
        #: or opened list with it; others with their LastModified.
        self._mtimes: Dict[str, Tuple[str, int]] = {}

    def wrote(self, count: int) -> None:
        with self._lock:
            self.used += count

    def knownDigest(self, f: S3File, checksum: str) -> Optional[str]:
        stored = f.metadata.get(_METADATA.get(checksum, ""))
        if stored:
            return stored
        with self._lock:
            return self._digests.get((f.etag, f.size, checksum))

    def rememberMtime(self, key: str, etag: str, mtime) -> None:
        with self._lock:
            if len(self._mtimes) >= _DIGESTS_KEPT:
                self._mtimes.pop(next(iter(self._mtimes)))
            self._mtimes[key] = (etag, int(mtime))

    def listedMtime(self, item: dict) -> int:
        known = self._mtimes.get(item["Key"])
        return known[1] if known is not None and known[0] == item.get("ETag") else int(item["LastModified"].timestamp())

    def remember(self, f: S3File, checksum: str, hexdigest: str) -> None:
        # An ETag names content, whatever the key: the key is left out so
        # that copies of a file share their digests.
        with self._lock:
            if len(self._digests) >= _DIGESTS_KEPT:
                self._digests.pop(next(iter(self._digests)))
            self._digests[(f.etag, f.size, checksum)] = hexdigest


@implementer(IStorage)
class S3Storage:
    """
    Files as objects of one bucket, under a key prefix; answered as
    L{ftx.server.filesystem.FilesystemStorage} answers (the same name
    rules, errors and messages). A folder exists while some key lies below
    it, or a folder marker (a key ending in C{/}, made by L{child}).

    @param bucket: a L{Bucket} (see L{openBucket}).
    @param prefix: the key prefix of the files (C{""}, or ending in C{/}).
    @param capacity: the total C{df} reports, in bytes.
    @param leaseSeconds: how long a dead front end's lease blocks a name.
    @param now: the wall clock (C{time.time}); leases compare it across
        front ends.
    """

    #: Opening a file is a GET: the server opens files for downloads in a
    #: worker thread (ftx/server/downloads.py), not in its event loop,
    #: where 20 downloads starting at once stalled every connection for
    #: seconds on a loaded engine.
    opensInThread = True

    def __init__(self, bucket: Bucket, prefix: str = "", quota=None, *, capacity: int = DEFAULT_CAPACITY,
                 leaseSeconds: float = LEASE_SECONDS, now: Optional[Callable[[], float]] = None,
                 _shared: Optional[_Shared] = None, _home: bytes = b"") -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if _shared is None:
            _shared = _Shared(bucket, prefix, quota, capacity, leaseSeconds, now or time.time)
        self._shared = _shared
        self._bucket = _shared.bucket
        self._home = _home

    @property
    def quota(self):
        return self._shared.quota

    @quota.setter
    def quota(self, quota) -> None:
        self._shared.quota = quota

    @property
    def location(self) -> str:
        return "s3://{}/{}{}".format(self._bucket.name, self._shared.root, nameText(self._home))

    def close(self) -> None:
        """
        Stop the bucket's thread pool (the server's shutdown calls it).
        """
        self._bucket.close()

    # -- names ----------------------------------------------------------

    def _full(self, name: bytes) -> bytes:
        """
        The name from the root of a checked name from the wire.
        """
        splitName(name)
        full = self._home + name
        if full.split(b"/", 1)[0] == HIDDEN.encode():
            raise PermissionDenied("{} is reserved for the server's own use".format(HIDDEN))
        try:
            full.decode("utf-8")
        except UnicodeDecodeError:
            raise PermissionDenied("names in this storage must be UTF-8: {}".format(nameText(name)))
        return full

    def _key(self, full: bytes) -> str:
        return self._shared.root + full.decode("utf-8")

    def _missing(self, name: bytes, full: bytes) -> FtxError:
        """
        The error for a name with no object: a folder, or nothing.
        """
        if self._bucket.anyKey(self._key(full) + "/"):
            return Conflict("is a directory: {}".format(nameText(name)))
        return NotFound("no such file: {}".format(nameText(name)))

    def _engine(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except FtxError:
            raise
        except Exception as e:
            raise unavailable(e)

    # -- listing --------------------------------------------------------

    def listFiles(self, mask: Optional[bytes] = None) -> List[StoredFile]:
        return self._engine(self._listFiles, mask)

    def _listFiles(self, mask: Optional[bytes]) -> List[StoredFile]:
        maskSegments = splitName(mask) if mask else None
        literal = b""
        below = None
        if mask:
            wild = min((mask.index(c) for c in (b"*", b"?", b"[") if c in mask), default=None)
            if wild is None:
                literal = mask
                if self._bucket.anyKey(self._key(self._home + mask) + "/"):
                    below, maskSegments, literal = mask + b"/", None, mask + b"/"
            else:
                literal = mask[:wild]
        try:
            literalText = literal.decode("utf-8")
        except UnicodeDecodeError:
            return []
        start = self._key(self._home) + literalText
        skip = len(self._key(self._home))
        hidden = self._shared.root + HIDDEN + "/"
        entries = []
        for item in self._bucket.listKeys(start):
            key = item["Key"]
            if key.endswith("/") or key.startswith(hidden):
                continue
            name = key[skip:].encode("utf-8")
            try:
                segments = splitName(name)
            except FtxError:
                continue  # a key no ftx name could make (written by other tools)
            if below is not None and not name.startswith(below):
                continue
            if maskSegments is not None and not matches(maskSegments, segments):
                continue
            entries.append(StoredFile(name, int(item["Size"]), self._shared.listedMtime(item)))
        entries.sort(key=lambda e: e.name)
        return entries

    # -- reading --------------------------------------------------------

    def openForRead(self, name: bytes) -> Tuple[S3File, int]:
        full = self._full(name)
        return self._engine(self._open, name, full)

    def _open(self, name: bytes, full: bytes) -> Tuple[S3File, int]:
        key = self._key(full)
        client, bucket = self._bucket.client, self._bucket.name
        try:
            # A small object is fetched whole: one request, as a HEAD would
            # be, and the open file keeps its bytes (see reads.py).
            response = client.get_object(Bucket=bucket, Key=key, Range="bytes=0-{}".format(WHOLE_AT_OPEN - 1))
        except Exception as e:
            if isNotFound(e):
                raise self._missing(name, full)
            if errorCode(e) != "InvalidRange":
                raise
            # An empty object: no byte is in any range.
            response = client.get_object(Bucket=bucket, Key=key)
        size = _totalSize(response)
        data = None
        body = response["Body"]
        try:
            if size <= WHOLE_AT_OPEN:
                data = body.read()
        finally:
            body.close()
        metadata = response.get("Metadata", {})
        if metadata.get(MTIME_META, "").isdigit():
            self._shared.rememberMtime(key, response["ETag"], metadata[MTIME_META])
        return S3File(self._bucket, name, key, response["ETag"], size, metadata, data), size

    def digest(self, name: bytes, length: Optional[int] = None) -> Tuple[str, int]:
        f, size = self.openForRead(name)
        with f:
            if length is not None and length > size:
                raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), size, length))
            if length is None or length == size:
                known = self._shared.knownDigest(f, SHA1)
                if known is not None:
                    return known, size
            count = size if length is None else length
            hasher = checksums.new(SHA1)
            self._feed(f, count, hasher)
            digest = hasher.hexdigest()
            if count == size:
                self._shared.remember(f, SHA1, digest)
            return digest, count

    def _feed(self, f: S3File, count: int, *hashers) -> None:
        left = count
        while left > 0:
            piece = f.read(min(left, 1 << 20))
            if not piece:
                raise NotFound("{} shrank while it was read".format(nameText(f.name)))
            for hasher in hashers:
                hasher.update(piece)
            left -= len(piece)

    def prefixHasher(self, name: bytes, length: int, also=None) -> Tuple[S3File, object, int]:
        f, size = self.openForRead(name)
        try:
            if length > size:
                raise BadOffset("{} has {} bytes, fewer than {}".format(nameText(name), size, length))
            hasher = checksums.new(SHA1)
            self._feed(f, length, *([hasher] if also is None else [hasher, also]))
        except BaseException:
            f.close()
            raise
        return f, hasher, size

    def readSmall(self, f: S3File, size: int, checksum: str = SHA1) -> Tuple[bytes, str]:
        data = f.read(size)
        known = self._shared.knownDigest(f, checksum) if len(data) == f.size else None
        if known is not None:
            return data, known
        hasher = checksums.new(checksum)
        hasher.update(data)
        digest = hasher.hexdigest()
        if len(data) == f.size:
            self._shared.remember(f, checksum, digest)
        return data, digest

    def cachedDigest(self, f: S3File, checksum: str = SHA1) -> Optional[str]:
        return self._shared.knownDigest(f, checksum)

    def fileVersion(self, f: S3File) -> str:
        return f.etag

    def rememberDigest(self, f: S3File, hexdigest: str, version: str, checksum: str = SHA1) -> None:
        # An open object never changes under its ETag.
        if f.etag == version:
            self._shared.remember(f, checksum, hexdigest)

    # -- uploads --------------------------------------------------------

    def beginUpload(
        self, name: bytes, size: int, offset: int = 0, prefixSha1: Optional[str] = None, checksum: str = SHA1,
        mode: str = PUT_REPLACE,
    ) -> S3Upload:
        full = self._full(name)
        missing = self._engine(self._foldersToMake, name, full)
        if mode == PUT_NEW and self._engine(self._bucket.head, self._key(full)) is not None:
            raise AlreadyExists("{} already exists on the server; nothing was changed".format(nameText(name)))
        reservation = QuotaReservation(self.quota, size - offset, name, len(missing))
        try:
            upload = self._engine(self._beginUpload, name, full, size, offset, prefixSha1, checksum, reservation, missing)
            upload.mode = mode
            return upload
        except BaseException:
            reservation.settle()
            raise

    def _foldersToMake(self, name: bytes, full: bytes) -> List[str]:
        """
        The folder markers an upload to C{full} must create, outermost
        first (a folder exists once something was put in it and stays, as
        on disk). One LIST when the folder exists already.

        @raise Conflict: the name is a folder.
        @raise NotFound: a file is in the way of a folder.
        """
        bucket = self._bucket
        if bucket.anyKey(self._key(full) + "/"):
            raise Conflict("is a directory: {}".format(nameText(name)))
        segments = full.split(b"/")
        top = len(self._home.split(b"/")) if self._home else 1
        missing: List[str] = []
        for depth in range(len(segments) - 1, top - 1, -1):
            folder = self._key(b"/".join(segments[:depth]))
            if bucket.anyKey(folder + "/"):
                break
            if bucket.head(folder) is not None:
                raise NotFound("no such file: {}".format(nameText(name)))
            missing.insert(0, folder + "/")
        return missing

    def _beginUpload(self, name, full, size, offset, prefixSha1, checksum, reservation, missing) -> S3Upload:
        bucket = self._bucket
        area = areaOf(self._shared.root, full)
        lease = Lease(bucket, area + "lease", name, self._shared.leaseSeconds, self._shared.now)
        lease.acquire()
        try:
            for marker in missing:
                bucket.client.put_object(Bucket=bucket.name, Key=marker, Body=b"")
            reservation.foldersCreated(len(missing))
            upload = S3Upload(bucket, self._key(full), area, name, size, lease, reservation, checksum, self._shared)
            upload.start(offset, prefixSha1)
        except BaseException:
            lease.release()
            raise
        return upload

    def partialUpload(self, name: bytes) -> Tuple[int, str]:
        full = self._full(name)
        state = self._engine(readState, self._bucket, areaOf(self._shared.root, full))
        if state is None or not state.held:
            return 0, EMPTY_SHA1
        return state.held, state.sha1

    # -- delete, space, views, sweep ------------------------------------

    def delete(self, name: bytes) -> None:
        full = self._full(name)
        self._engine(self._delete, name, full)

    def _delete(self, name: bytes, full: bytes) -> None:
        key = self._key(full)
        found = self._bucket.head(key)
        if found is None:
            raise self._missing(name, full)
        self._bucket.client.delete_object(Bucket=self._bucket.name, Key=key)
        self._shared.wrote(-found["ContentLength"])
        if self.quota is not None:
            self.quota.freed(self.quota.charge(found["ContentLength"], 1))

    def diskSpace(self) -> Tuple[int, int]:
        """
        The configured capacity, and what is left of it after the bytes
        held (as the last sweep counted them, with this process's writes
        and deletes since); free is at most what the quota has left.
        """
        total = self._shared.capacity
        free = max(0, total - self._shared.used)
        if self.quota is not None:
            free = min(free, self.quota.available())
        return total, free

    def usedSpace(self) -> int:
        # No blocks are reserved in a bucket: used is total less free.
        return self._shared.used

    def makeFolder(self, name: bytes) -> None:
        full = self._full(name)
        self._engine(self._makeFolder, name, full)

    def _makeFolder(self, name: bytes, full: bytes) -> None:
        segments = full.split(b"/")
        top = len(self._home.split(b"/")) if self._home else 1
        for depth in range(top, len(segments) + 1):
            folder = self._key(b"/".join(segments[:depth]))
            if self._bucket.head(folder) is not None:
                raise AlreadyExists("a file is in the way of the folder {}".format(nameText(name)))
            if not self._bucket.anyKey(folder + "/"):
                self._bucket.client.put_object(Bucket=self._bucket.name, Key=folder + "/", Body=b"")

    def removeFolder(self, name: bytes) -> int:
        full = self._full(name)
        return self._engine(self._removeFolder, name, full)

    def _removeFolder(self, name: bytes, full: bytes) -> int:
        """
        Delete every object under the folder's prefix (partial uploads
        live in their own hidden area and are left to the sweep).
        """
        key = self._key(full)
        if self._bucket.head(key) is not None:
            raise Conflict("not a folder: {}".format(nameText(name)))
        keys = list(self._bucket.listKeys(key + "/"))
        if not keys:
            raise NotFound("no such folder: {}".format(nameText(name)))
        files = [k for k in keys if not k["Key"].endswith("/")]
        freed = sum(k["Size"] for k in files)
        for k in keys:
            self._bucket.client.delete_object(Bucket=self._bucket.name, Key=k["Key"])
        self._shared.wrote(-freed)
        if self.quota is not None:
            self.quota.freed(self.quota.charge(freed, len(files), len(keys) - len(files)))
        return len(files)

    def child(self, path: bytes) -> "S3Storage":
        home = self._full(path) + b"/"
        key = self._key(home)
        if self._bucket.head(key[:-1]) is not None:
            raise OSError(errno.ENOTDIR, "a file is in the way of the home folder", nameText(path))
        self._bucket.client.put_object(Bucket=self._bucket.name, Key=key, Body=b"")
        return S3Storage(self._bucket, _shared=self._shared, _home=home)

    def sweep(self, ttl: float, now: float) -> SweepResult:
        result = self._engine(sweepBucket, self._bucket, self._shared.root, ttl, now, self._shared.leaseSeconds, self._shared.now)
        self._shared.used = result.used
        if self.quota is not None:
            self.quota.recount(self.quota.charge(result.used, result.files, result.folders))
        return result


def _totalSize(response: dict) -> int:
    contentRange = response.get("ContentRange")
    if contentRange and "/" in contentRange:
        return int(contentRange.rsplit("/", 1)[1])
    return int(response["ContentLength"])
