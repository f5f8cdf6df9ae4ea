"""
L{S3Upload}, one file being received into a bucket. Bytes are kept in
memory up to a chunk, then written as a hidden chunk object and listed in
the partial upload's state with the SHA-1 up to its end; the final object
appears only in L{S3Upload.finish}, after the digest matched, by one
atomic S3 call: a single PUT for a file of one chunk or less, or a
CompleteMultipartUpload whose parts are copied server-side from the chunks
(UploadPartCopy). Never a copy and a delete: no reader ever sees a
half-made file under the final name.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import Callable, Deque, List, Optional, Tuple

import xxhash
from zope.interface import implementer

from ftx.errors import AlreadyExists, BadOffset, FtxError, IntegrityError
from ftx.protocol import checksums
from ftx.protocol.checksums import SHA1, XXH128
from ftx.protocol.wire import nameText
from ftx.server.logsafe import SafeLogger
from ftx.server.s3.bucket import Bucket, isPreconditionFailed, unavailable
from ftx.server.s3.leases import Lease
from ftx.server.s3.partials import (
    Chunk,
    PartialState,
    chunkSizeFor,
    dropArea,
    newChunkKey,
    readChunks,
    readState,
    splitHeld,
    writeState,
)
from ftx.server.storage import PUT_NEW, PUT_REPLACE, IUpload, checkComplete, renamedLeaves

__all__ = ["S3Upload", "SHA1_META", "XXH128_META", "MTIME_META"]

#: The object metadata holding the whole file's digests, written at finish.
SHA1_META = "ftx-sha1"
XXH128_META = "ftx-xxh128"
#: The modification time the client gave (the mtime feature), in seconds.
MTIME_META = "ftx-mtime"

#: Chunk PUTs of one upload on their way to the engine at once, while the
#: next chunk fills: the connection goes on receiving while the engine
#: writes (one at a time, receiving stopped for each PUT). Memory per
#: upload: this many chunks, the one filling, and the writer's backlog.
CHUNKS_IN_FLIGHT = 2


class _Held:
    """
    The bytes received past the last chunk, kept as the pieces that came
    (bytes objects are held, not copied) until a chunk's worth is taken,
    which joins them once. A bytearray grown piece by piece and sliced
    into chunks copied every byte two or three times.
    """

    def __init__(self) -> None:
        self.pieces: Deque[bytes] = deque()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, data) -> None:
        # Anything but bytes may be a buffer its owner fills again.
        if not isinstance(data, bytes):
            data = bytes(data)
        if data:
            self.pieces.append(data)
            self.size += len(data)

    def take(self, count: int) -> bytes:
        """
        The first C{count} bytes, no longer held.
        """
        taken: List[bytes] = []
        need = count
        while need:
            piece = self.pieces.popleft()
            if len(piece) > need:
                self.pieces.appendleft(piece[need:])
                piece = piece[:need]
            taken.append(piece)
            need -= len(piece)
        self.size -= count
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def value(self) -> bytes:
        """
        All the bytes held, which stay held.
        """
        whole = b"".join(self.pieces)
        self.pieces = deque([whole]) if whole else deque()
        return whole


class _Put:
    """
    One chunk PUT, run as a job of the bucket's pool (which never waits
    for another job); C{then} runs in the same thread once it is done.
    """

    def __init__(self, bucket: Bucket, call: Callable[[], object], then: Callable[[], None]) -> None:
        self.error: Optional[BaseException] = None
        self._done = threading.Event()
        bucket.pool.callInThread(self._run, call, then)

    def _run(self, call: Callable[[], object], then: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as e:
            self.error = e
        finally:
            self._done.set()
        then()

    @property
    def written(self) -> bool:
        return self._done.is_set() and self.error is None

    def wait(self) -> None:
        self._done.wait()
        if self.error is not None:
            raise self.error


@implementer(IUpload)
class S3Upload:
    """
    A file being received into a bucket; holds the name's lease and the
    quota reservation until it finishes or aborts.
    """

    # Names are the client's text (ftx.server.logsafe).
    _log = SafeLogger()

    #: L{finish} composes the object with network calls whose number grows
    #: with the file: the server runs it in a worker thread, not the
    #: reactor's (a 64 MiB compose took 2.9 s on SeaweedFS here).
    finishesInThread = True

    #: What finish does when the name is taken (set by the storage).
    mode = PUT_REPLACE

    def __init__(self, bucket: Bucket, key: str, area: str, name: bytes, size: int, lease: Lease, reservation, checksum: str, shared) -> None:
        self.name = name
        self.size = size
        self.offset = 0
        self.received = 0
        self.checksum = checksum
        self.hasher = checksums.new(checksum)
        self._bucket = bucket
        self._key = key
        self._area = area
        self._lease = lease
        self._reservation = reservation
        self._shared = shared
        self._chunkSize = chunkSizeFor(size)
        self._chunks: List[Chunk] = []
        #: Chunks whose PUT is on its way, oldest first: listed in the
        #: state once written, in order.
        self._writing: Deque[Tuple[Chunk, _Put]] = deque()
        #: Held while the chunks and the state are updated (by the
        #: receiving thread, or the pool thread whose PUT just ended).
        self._listing = threading.Lock()
        #: Whether the state object lists fewer chunks than L{_chunks}.
        self._stateBehind = False
        #: Whether a chunk failed to be written: then what is buffered no
        #: longer follows the listed chunks, and is never kept.
        self._broken = False
        self._buffer = _Held()
        #: Chunk keys a resume took into memory: removed once no state lists them.
        self._superseded: List[str] = []
        # The SHA-1 up to the end of the written chunks; the XXH3-128 of
        # everything stored. Both end in the object's metadata.
        self._sha1 = hashlib.sha1()
        self._xxh128 = xxhash.xxh3_128()
        #: With XXH3-128 as the body's checksum, L{hasher} is that digest
        #: of everything stored (its caller feeds it after each L{store}):
        #: no second pass here, and the metadata holds the digest checked.
        self._ownXxh128 = checksum != XXH128
        self._closed = False

    # -- starting -------------------------------------------------------

    def start(self, offset: int, prefixSha1: Optional[str]) -> None:
        """
        Take over what an earlier upload kept: the first C{offset} bytes,
        which must have the SHA-1 C{prefixSha1}; with no offset, drop
        anything kept. Reads the kept bytes (to feed the hashers), so a
        worker thread calls it for a resume.
        """
        state = readState(self._bucket, self._area)
        held = state.held if state is not None else 0
        if not offset:
            if state is not None:
                # The kept upload is truncated, not removed: it stays the
                # one partial file the quota charges for this name.
                dropArea(self._bucket, [chunk.key for chunk in state.chunks] + [self._area + "state"])
                self._reservation.freed(held)
            else:
                self._reservation.fileCreated()
            return
        if held < offset:
            raise BadOffset("the server holds {} bytes of {}, fewer than {}".format(held, nameText(self.name), offset))
        differs = IntegrityError("the part the server holds differs from yours; upload it again from the start")
        # A boundary the state knows the SHA-1 of is checked before reading.
        if any(end == offset and chunk.sha1 != prefixSha1 for end, chunk in _ends(state.chunks)):
            raise differs
        if state.chunkSize == self._chunkSize:
            kept, base = splitHeld(state, offset)
        else:
            kept, base = [], 0
        other = None if self.checksum in (SHA1, XXH128) else checksums.new(self.checksum)
        position = 0
        for piece in readChunks(self._bucket, state.chunks, offset):
            self._sha1.update(piece[: max(0, base - position)])
            self._xxh128.update(piece)
            if other is not None:
                other.update(piece)
            if position + len(piece) > base:
                self._buffer.add(piece[max(0, base - position) :])
            position += len(piece)
        whole = self._sha1.copy()
        for piece in self._buffer.pieces:
            whole.update(piece)
        if whole.hexdigest() != prefixSha1:
            raise differs
        self._chunks = kept
        self._superseded = [chunk.key for chunk in state.chunks[len(kept) :]]
        self.offset = self.received = offset
        self.hasher = whole if self.checksum == SHA1 else self._xxh128.copy() if other is None else other
        if held > offset:
            # What lies past the offset is gone from now on: the state
            # lists the kept chunks and the start of the next one (its
            # object is longer; readers take only the listed size).
            tail = [Chunk(state.chunks[len(kept)].key, offset - base, prefixSha1)] if offset > base else []
            writeState(self._bucket, self._area, PartialState(state.chunkSize, self._shared.now(), kept + tail))
            self._reservation.freed(held - offset)

    # -- receiving ------------------------------------------------------

    def store(self, data) -> None:
        try:
            self._buffer.add(data)
            if self._ownXxh128:
                self._xxh128.update(data)
            while len(self._buffer) >= self._chunkSize:
                self._writeChunk(self._chunkSize, wait=False)
            self._lease.renewIfDue()
        except FtxError:
            raise
        except Exception as e:
            raise unavailable(e)
        count = len(data)
        self.received += count
        self._reservation.wrote(count)

    def _writeChunk(self, count: int, wait: bool = True) -> None:
        """
        Write the first C{count} buffered bytes as a chunk, in the bucket's
        pool; it is listed in the state as soon as it and the chunks
        before it are written. Waits for the oldest chunks on their way
        until fewer than L{CHUNKS_IN_FLIGHT} are (none with C{wait}).
        """
        self._lease.renewIfDue()
        piece = self._buffer.take(count)
        bucket = self._bucket
        with self._listing:
            key = newChunkKey(self._area, len(self._chunks) + len(self._writing))
            self._sha1.update(piece)
            chunk = Chunk(key, len(piece), self._sha1.hexdigest())
            put = _Put(bucket, lambda: bucket.client.put_object(Bucket=bucket.name, Key=key, Body=piece), self._listQuietly)
            self._writing.append((chunk, put))
        self._listWritten(0 if wait else CHUNKS_IN_FLIGHT - 1)

    def _listWritten(self, left: int) -> None:
        """
        Wait for the chunks on their way, oldest first, until C{left} are,
        and list them. If one failed, the others are waited for and
        removed (no state lists them) and the error raised.
        """
        while True:
            with self._listing:
                if len(self._writing) <= left:
                    break
                chunk, put = self._writing[0]
            try:
                put.wait()
            except BaseException:
                self._broken = True
                try:
                    self._forgetWriting()
                except Exception:
                    pass  # the sweep removes what stays
                raise
            self._list()
        self._list()

    def _list(self) -> None:
        """
        List in the state the chunks written so far, in order: the
        written ones at the head of L{_writing}.
        """
        with self._listing:
            while self._writing and self._writing[0][1].written:
                self._chunks.append(self._writing.popleft()[0])
                self._stateBehind = True
            if self._stateBehind:
                writeState(self._bucket, self._area, PartialState(self._chunkSize, self._shared.now(), self._chunks))
                self._stateBehind = False
                superseded, self._superseded = self._superseded, []
                for old in superseded:
                    self._bucket.deleteQuietly(old)

    def _listQuietly(self) -> None:
        # In the pool thread of a PUT that ended: list it now, so that a
        # front end that dies next loses no written chunk. A failure here
        # shows in the receiving thread's next listing.
        try:
            self._list()
        except Exception:
            pass

    def _forgetWriting(self) -> None:
        """
        Wait for the chunks on their way and remove them, unlisted.
        """
        with self._listing:
            writing, self._writing = list(self._writing), deque()
        for chunk, put in writing:
            try:
                put.wait()
            except BaseException:
                pass
            self._bucket.deleteQuietly(chunk.key)

    # -- ending ---------------------------------------------------------

    def finish(self, digest: str, mtime: Optional[int] = None) -> bytes:
        checkComplete(self, digest)
        try:
            self._listWritten(0)
            self._lease.renew()
            sha1 = self._sha1.copy()
            for piece in self._buffer.pieces:
                sha1.update(piece)
            metadata = {SHA1_META: sha1.hexdigest(), XXH128_META: (self._xxh128 if self._ownXxh128 else self.hasher).hexdigest()}
            if mtime is not None:
                metadata[MTIME_META] = str(mtime)
            old = self._bucket.head(self._key)
            if old is not None and self.mode != PUT_REPLACE:
                # Checked by HEAD just before the write: between front ends
                # this is not the atomic step the filesystem's hard link is.
                old = self._takeFreeName()
            # The HEAD above is no lock between front ends: the write itself
            # is conditional (If-None-Match: *) unless replacing is asked for.
            condition = {} if self.mode == PUT_REPLACE else {"IfNoneMatch": "*"}
            for attempt in range(3):
                try:
                    if self._chunks:
                        written = self._compose(metadata, condition)
                    else:
                        written = self._bucket.client.put_object(
                            Bucket=self._bucket.name, Key=self._key, Body=self._buffer.value(), Metadata=metadata, **condition
                        )
                    break
                except Exception as e:
                    if not condition or not isPreconditionFailed(e) or attempt == 2:
                        raise
                    old = self._takeFreeName()  # another front end took the name meanwhile
        except BaseException as e:
            if self._lease.held:
                self.abort(keep=False)
            else:
                self._end()
            if isinstance(e, FtxError):
                raise
            raise unavailable(e)
        if mtime is not None and written.get("ETag"):
            self._shared.rememberMtime(self._key, written["ETag"], mtime)
        replaced = old["ContentLength"] if old is not None else 0
        self._shared.wrote(self.size - replaced)
        if old is not None:
            self._reservation.fileRemoved(replaced)
        self._buffer = _Held()
        try:
            dropArea(self._bucket, [c.key for c in self._chunks] + self._superseded + [self._area + "state"])
        except Exception:
            self._log.failure("leftovers of the upload of {name} stay for the sweep", name=nameText(self.name))
        self._end()
        return self.name

    def _takeFreeName(self) -> None:
        """
        For C{new} and C{rename} when the name is taken: refuse, or move
        this upload's key and name to the first free C{name (N).ext}.
        """
        if self.mode == PUT_NEW:
            raise AlreadyExists("{} already exists on the server; nothing was changed".format(nameText(self.name)))
        folder, slash, leaf = self._key.rpartition("/")
        nameFolder, nameSlash, _ = self.name.rpartition(b"/")
        for other in renamedLeaves(leaf.encode("utf-8")):
            key = folder + slash + other.decode("utf-8")
            if self._bucket.head(key) is None and not self._bucket.anyKey(key + "/"):
                self._key, self.name = key, nameFolder + nameSlash + other
                return None
        raise AlreadyExists("no free name like {} on the server".format(nameText(self.name)))

    def _compose(self, metadata: dict, condition: dict) -> dict:
        """
        Make the final object from the chunks and what is buffered: the
        parts are copied by the engine (in parallel, from the bucket's
        pool), and the object appears only on CompleteMultipartUpload.
        """
        client, bucket = self._bucket.client, self._bucket.name
        uploadId = client.create_multipart_upload(Bucket=bucket, Key=self._key, Metadata=metadata)["UploadId"]
        try:
            def copy(number: int, chunk: Chunk):
                return lambda: client.upload_part_copy(
                    Bucket=bucket, Key=self._key, UploadId=uploadId, PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": chunk.key},
                )["CopyPartResult"]["ETag"]

            calls = [copy(number, chunk) for number, chunk in enumerate(self._chunks, 1)]
            etags = self._bucket.inParallel(calls)
            if self._buffer:
                last = len(self._chunks) + 1
                etags.append(client.upload_part(Bucket=bucket, Key=self._key, UploadId=uploadId, PartNumber=last, Body=self._buffer.value())["ETag"])
            parts = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, 1)]
            return client.complete_multipart_upload(
                Bucket=bucket, Key=self._key, UploadId=uploadId, MultipartUpload={"Parts": parts}, **condition
            )
        except BaseException:
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=self._key, UploadId=uploadId)
            except Exception:
                pass
            raise

    def abort(self, keep: bool) -> None:
        if self._closed:
            return
        try:
            if not self._lease.held:
                # Another front end holds the partial upload now: what this
                # one was writing is listed nowhere (fresh keys) and goes.
                self._forgetWriting()
            elif keep and self.received:
                if self._buffer and not self._broken:
                    self._writeChunk(len(self._buffer))
                else:
                    self._listWritten(0)
            else:
                self._forgetWriting()
                dropArea(self._bucket, [c.key for c in self._chunks] + self._superseded + [self._area + "state"])
                self._reservation.fileRemoved(self.received)
        except Exception:
            self._log.failure("ending the upload of {name}", name=nameText(self.name))
        self._end()

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            self._buffer = _Held()
            self._reservation.settle()
            self._lease.release()


def _ends(chunks: List[Chunk]):
    end = 0
    for chunk in chunks:
        end += chunk.size
        yield end, chunk
