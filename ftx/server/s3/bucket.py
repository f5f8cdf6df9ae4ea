"""
The bucket as the backend sees it: one boto3 client (thread-safe) and the
name of the bucket, the few error tests every module needs, and a
dedicated Twisted thread pool for the reads that run ahead of a download
and the part copies of a finishing upload.

Credentials come from boto3's standard chain only (the environment,
C{~/.aws/credentials}, an instance role): never from ftx's command line,
where they would show in C{ps}.
"""

from __future__ import annotations

import threading
from typing import Callable, List, Optional

from twisted.python.threadpool import ThreadPool

from ftx.errors import Unavailable

__all__ = ["Bucket", "errorCode", "isNotFound", "isPreconditionFailed"]


def errorCode(error: BaseException) -> str:
    """
    The S3 error code of a botocore C{ClientError} (C{"404"},
    C{"NoSuchKey"}, C{"PreconditionFailed"}...), or C{""} for anything else.
    """
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def isNotFound(error: BaseException) -> bool:
    return errorCode(error) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def isPreconditionFailed(error: BaseException) -> bool:
    # 409 ConditionalRequestConflict: AWS's answer to a write that raced
    # another conditional write of the same key.
    return errorCode(error) in ("412", "PreconditionFailed", "ConditionalRequestConflict")


class ReadAheadBudget:
    """
    The bytes all downloads of a process read ahead of their readers
    (L{ftx.server.s3.reads}), so that many downloads at once cannot hold
    a window each for every one they may run ahead.
    """

    def __init__(self) -> None:
        self.held = 0
        self._lock = threading.Lock()

    def take(self, count: int, limit: int, first: bool) -> bool:
        """
        Count C{count} more bytes if that keeps the total within
        C{limit}, or in any case when C{first} (a download's only window,
        which it always gets); whether they were counted.
        """
        with self._lock:
            if not first and self.held + count > limit:
                return False
            self.held += count
            return True

    def give(self, count: int) -> None:
        with self._lock:
            self.held -= count


class Bucket:
    """
    One bucket of an S3 engine, shared by a storage and all its views.

    @ivar client: a boto3 S3 client (its calls are thread-safe).
    @ivar name: the bucket's name.
    """

    #: Threads of the dedicated pool: read-ahead of downloads in progress
    #: and part copies of a finish. Storage calls themselves run in the
    #: reactor's pool, as for every backend.
    POOL_SIZE = 16

    def __init__(self, client, name: str) -> None:
        self.client = client
        self.name = name
        self._pool: Optional[ThreadPool] = None
        self._lock = threading.Lock()
        self.readAhead = ReadAheadBudget()

    @property
    def pool(self) -> ThreadPool:
        """
        The dedicated thread pool, started on first use.
        """
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPool(0, self.POOL_SIZE, "ftx-s3")
                self._pool.start()
            return self._pool

    def close(self) -> None:
        """
        Stop the thread pool (waits for its threads); using the bucket
        again starts a new one.
        """
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def inParallel(self, calls: List[Callable[[], object]]) -> List[object]:
        """
        Run C{calls} in the pool and wait for all of them; returns their
        results in order, or raises the first failure once all are done.
        Called from a worker thread, never from a pool thread (it would
        wait for itself).
        """
        results: List[object] = [None] * len(calls)
        failures: List[BaseException] = []
        done = threading.Semaphore(0)
        pool = self.pool

        def run(index: int, call: Callable[[], object]) -> None:
            try:
                results[index] = call()
            except BaseException as e:
                failures.append(e)
            finally:
                done.release()

        for index, call in enumerate(calls):
            pool.callInThread(run, index, call)
        for _ in calls:
            done.acquire()
        if failures:
            raise failures[0]
        return results

    def listKeys(self, prefix: str):
        """
        Every object whose key starts with C{prefix}, as the dicts
        C{ListObjectsV2} gives (C{Key}, C{Size}, C{LastModified}, C{ETag}),
        in key order, a page of up to 1,000 at a time.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield item

    def anyKey(self, prefix: str) -> bool:
        """
        Whether any object's key starts with C{prefix} (one request).
        """
        response = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, MaxKeys=1)
        return bool(response.get("Contents"))

    def head(self, key: str) -> Optional[dict]:
        """
        The C{HeadObject} answer for C{key}, or L{None} if there is none.
        """
        try:
            return self.client.head_object(Bucket=self.name, Key=key)
        except Exception as e:
            if isNotFound(e):
                return None
            raise

    def deleteQuietly(self, key: str) -> None:
        """
        Remove C{key}; one already gone is fine (a sweep on another front
        end may have got there first).
        """
        try:
            self.client.delete_object(Bucket=self.name, Key=key)
        except Exception as e:
            if not isNotFound(e):
                raise


def unavailable(error: BaseException) -> Unavailable:
    """
    The error a client sees when the engine fails in a way it cannot fix.
    """
    return Unavailable("the storage engine failed: {}".format(errorCode(error) or type(error).__name__))
