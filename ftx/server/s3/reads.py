"""
Objects opened for reading: L{S3File}, the file object L{S3Storage}
hands the server. A small object's bytes are fetched whole when it is
opened (one GET, as cheap as the HEAD it replaces), so it keeps them
whatever happens to the object later, as an open file on disk does. A
larger one streams a ranged GET with C{If-Match} on the ETag it was opened
with, run ahead in the bucket's thread pool: a download or a resume never
stitches bytes of two versions of an object; an object replaced while it
is read fails the read with a clear error instead.
"""

from __future__ import annotations

import io
import queue
import threading
from typing import Optional

from ftx.errors import Conflict
from ftx.protocol.wire import nameText
from ftx.server.s3.bucket import Bucket, isPreconditionFailed, unavailable

__all__ = ["S3File", "WHOLE_AT_OPEN"]

#: Objects up to this size are fetched whole when opened. At least
#: L{ftx.protocol.wire.SMALL_BODY}: readSmall must not touch the network.
WHOLE_AT_OPEN = 1 << 20

#: The read-ahead: pieces of this size, at most AHEAD of them waiting
#: (16 MiB). The size of the server's reads of a body (SEND_CHUNK), so that
#: a piece usually goes out as it came, without a copy.
PIECE = 256 << 10
AHEAD = 64

# How long a read waits for the engine before it gives up.
READ_TIMEOUT = 120.0

_END = object()


class _ReadAhead:
    """
    One ranged GET from C{start} to the end of the object, read in a pool
    thread into a bounded queue that L{read} takes from.
    """

    def __init__(self, bucket: Bucket, key: str, etag: str, start: int, size: int) -> None:
        self._queue: "queue.Queue" = queue.Queue(AHEAD)
        self._cancelled = threading.Event()
        self._left = memoryview(b"")
        self._bucket = bucket
        bucket.pool.callInThread(self._run, key, etag, start, size)

    def _run(self, key: str, etag: str, start: int, size: int) -> None:
        try:
            response = self._bucket.client.get_object(
                Bucket=self._bucket.name, Key=key, Range="bytes={}-{}".format(start, size - 1), IfMatch=etag
            )
            body = response["Body"]
            try:
                while not self._cancelled.is_set():
                    piece = body.read(PIECE)
                    if not piece:
                        break
                    self._put(piece)
            finally:
                body.close()
            self._put(_END)
        except BaseException as e:
            self._put(e)

    def _put(self, item) -> None:
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def read(self, n: int) -> bytes:
        if not self._left:
            item = self._queue.get(timeout=READ_TIMEOUT)
            if item is _END:
                return b""
            if isinstance(item, BaseException):
                raise item
            if len(item) <= n:
                return item
            self._left = memoryview(item)
        data, self._left = self._left[:n], self._left[n:]
        return bytes(data)

    def cancel(self) -> None:
        self._cancelled.set()


class S3File:
    """
    An object opened by L{ftx.server.s3.S3Storage.openForRead}: C{read},
    C{seek}, C{tell}, C{close}, a context manager; no C{fileno()}, so the
    server sends it by copying.

    @ivar name: the name the client asked for (bytes), for messages.
    @ivar key: the object's key.
    @ivar etag: the ETag it was opened with, its version.
    @ivar size: its size in bytes.
    @ivar metadata: its user metadata (the digests an upload stored).
    """

    def __init__(self, bucket: Bucket, name: bytes, key: str, etag: str, size: int, metadata: dict, data: Optional[bytes] = None) -> None:
        self._bucket = bucket
        self.name = name
        self.key = key
        self.etag = etag
        self.size = size
        self.metadata = metadata
        self._data = data
        self._position = 0
        self._ahead: Optional[_ReadAhead] = None
        self.closed = False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("an object in a bucket has no file descriptor")

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self._position
        elif whence == 2:
            offset += self.size
        if offset != self._position:
            self._stopReading()
            self._position = max(0, offset)
        return self._position

    def read(self, n: Optional[int] = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self._position
        n = min(n, self.size - self._position)
        if n <= 0:
            return b""
        if self._data is not None:
            data = self._data[self._position : self._position + n]
        else:
            if self._ahead is None:
                self._ahead = _ReadAhead(self._bucket, self.key, self.etag, self._position, self.size)
            try:
                data = self._ahead.read(n)
            except queue.Empty:
                raise unavailable(TimeoutError())
            except Exception as e:
                self._stopReading()
                if isPreconditionFailed(e):
                    raise Conflict("{} changed while it was read; read it again".format(nameText(self.name)))
                raise unavailable(e)
        self._position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _stopReading(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead = None

    def close(self) -> None:
        self._stopReading()
        self.closed = True

    def __enter__(self) -> "S3File":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
