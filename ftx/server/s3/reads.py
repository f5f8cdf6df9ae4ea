"""
Objects opened for reading: L{S3File}, the file object L{S3Storage}
hands the server. A small object's bytes are fetched whole when it is
opened (one GET, as cheap as the HEAD it replaces), so it keeps them
whatever happens to the object later, as an open file on disk does. A
larger one streams a ranged GET with C{If-Match} on the ETag it was opened
with, run ahead in the bucket's thread pool: a download or a resume never
stitches bytes of two versions of an object; an object replaced while it
is read fails the read with a clear error instead.

The server reads files in its event loop, where waiting for the engine
would stall every connection: L{S3File.whenReadable} tells the body
sender (L{ftx._io.filebody.BodySender}) when C{read} would wait, and when
it no longer would, so a download steps aside while its next window is on
its way instead of blocking the reactor.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from typing import Callable, Optional

from twisted.internet.defer import Deferred

from ftx.errors import Conflict, Unavailable
from ftx.protocol.wire import nameText
from ftx.server.s3.bucket import Bucket, isPreconditionFailed, unavailable

__all__ = ["S3File", "WHOLE_AT_OPEN", "ChangedWhileRead", "ReadFailed"]

#: Objects up to this size are fetched whole when opened. At least
#: L{ftx.protocol.wire.SMALL_BODY}: readSmall must not touch the network.
WHOLE_AT_OPEN = 1 << 20

#: The read-ahead: ranged GETs of WINDOW bytes, at most AHEAD of them
#: fetched or on their way per download, plus the one being sent: 32 MiB
#: per download at most. Each GET costs the engine and botocore a few
#: milliseconds of CPU whatever its size: 4 MiB windows cost both about
#: 40% more CPU per GiB than 8 MiB ones here, 16 MiB ones little less.
WINDOW = 8 << 20
AHEAD = 3

#: All downloads of a process together: beyond the first window of each
#: (which every download may always fetch, so none ever starves), windows
#: are read ahead only while fewer than this many bytes are.
PROCESS_AHEAD = 128 << 20

# How long a read waits for the engine before it gives up.
READ_TIMEOUT = 120.0


class ChangedWhileRead(Conflict, OSError):
    """
    The object was replaced while it was read. An L{OSError} too, so that
    the server's body sender, which ends a transfer on one, ends the
    download cleanly instead of stalling on an unexpected error.
    """


class ReadFailed(Unavailable, OSError):
    """
    The engine failed while an object was read (an L{OSError} too, as
    L{ChangedWhileRead}).
    """


class _Window:
    """
    One ranged GET, run as one job of the bucket's pool. A job never waits
    for the reader, so that any number of downloads share a bounded pool:
    a window that waits for a thread only waits for other windows to
    arrive, never for their readers (which may be the very thread waiting).
    """

    def __init__(self, bucket: Bucket, key: str, etag: str, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.data = b""
        self.error: Optional[BaseException] = None
        self.cancelled = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._notify: Optional[Callable[[], None]] = None
        bucket.pool.callInThread(self._run, bucket, key, etag)

    def _run(self, bucket: Bucket, key: str, etag: str) -> None:
        try:
            if not self.cancelled:
                response = bucket.client.get_object(
                    Bucket=bucket.name, Key=key, Range="bytes={}-{}".format(self.start, self.end - 1), IfMatch=etag
                )
                self.data = response["Body"].read()
        except BaseException as e:
            self.error = e
        finally:
            with self._lock:
                self._done.set()
                notify, self._notify = self._notify, None
            if notify is not None:
                notify()

    @property
    def ready(self) -> bool:
        """
        Whether L{wait} would return at once.
        """
        return self._done.is_set()

    def whenReady(self, notify: Callable[[], None]) -> bool:
        """
        Have C{notify} called (in the pool thread) once the window has
        arrived or failed; C{False}, and no call, if it already has.
        """
        with self._lock:
            if self._done.is_set():
                return False
            self._notify = notify
            return True

    def wait(self) -> bytes:
        if not self._done.wait(READ_TIMEOUT):
            raise TimeoutError("the engine did not answer a read in {} s".format(READ_TIMEOUT))
        if self.error is not None:
            raise self.error
        if len(self.data) != self.end - self.start:
            raise EOFError("the object is shorter than it was")
        return self.data


class _ReadAhead:
    """
    The bytes of an object from C{start} to its end, fetched ahead in
    windows.
    """

    def __init__(self, bucket: Bucket, key: str, etag: str, start: int, size: int) -> None:
        self._bucket = bucket
        self._key = key
        self._etag = etag
        self._size = size
        self._next = start
        self._windows: "deque[_Window]" = deque()
        self._data = b""
        self._offset = 0
        self._fill()

    def _fill(self) -> None:
        while len(self._windows) < AHEAD and self._next < self._size:
            end = min(self._size, self._next + WINDOW)
            if not self._bucket.readAhead.take(end - self._next, PROCESS_AHEAD, first=not self._windows):
                break
            self._windows.append(_Window(self._bucket, self._key, self._etag, self._next, end))
            self._next = end

    def pending(self) -> Optional[_Window]:
        """
        The window L{read} would wait for, or L{None} if it would not wait.
        """
        if self._offset < len(self._data) or not self._windows:
            return None
        window = self._windows[0]
        return None if window.ready else window

    def read(self, n: int) -> bytes:
        if self._offset >= len(self._data):
            if not self._windows:
                return b""
            window = self._windows.popleft()
            self._bucket.readAhead.give(window.end - window.start)
            self._data = window.wait()
            self._offset = 0
            self._fill()
        if self._offset == 0 and n >= len(self._data):
            data = self._data  # the whole window, without a copy
        else:
            data = self._data[self._offset : self._offset + n]
        self._offset += len(data)
        return data

    def cancel(self) -> None:
        for window in self._windows:
            window.cancelled = True
            self._bucket.readAhead.give(window.end - window.start)
        self._windows.clear()


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
            except Exception as e:
                self._stopReading()
                if isPreconditionFailed(e):
                    raise ChangedWhileRead("{} changed while it was read; read it again".format(nameText(self.name)))
                raise ReadFailed(unavailable(e).message)
        self._position += len(data)
        return data

    def whenReadable(self, reactor) -> Optional[Deferred]:
        """
        L{None} if L{read} would return without waiting for the engine;
        otherwise a L{Deferred} that fires (in the reactor thread, through
        C{reactor.callFromThread}) once it would. Starts the read-ahead,
        so the caller in the event loop never waits for the first window
        either.
        """
        if self._data is not None or self._position >= self.size:
            return None
        if self._ahead is None:
            self._ahead = _ReadAhead(self._bucket, self.key, self.etag, self._position, self.size)
        window = self._ahead.pending()
        if window is None:
            return None
        ready: Deferred = Deferred()
        if not window.whenReady(lambda: reactor.callFromThread(ready.callback, None)):
            return None
        return ready

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
