"""
The "upload in progress" lock across front ends: a lease object next to
the partial upload, created with C{If-None-Match: *} (atomic on the
engine: of two front ends writing it at once exactly one succeeds) and
holding an expiry, so that a front end that dies mid-upload (SIGKILL, a
lost machine) blocks the name only until its lease runs out. A live
upload renews its lease as it stores bytes, with C{If-Match} on the ETag
it holds, so it notices when it has lost the lease to another front end.

Expiries are wall-clock times: front ends must keep their clocks in step
(NTP) to well within the lease's length.
"""

from __future__ import annotations

import json
import uuid
from typing import Callable, Optional, Tuple

from ftx.errors import Conflict
from ftx.protocol.wire import nameText
from ftx.server.s3.bucket import Bucket, isNotFound, isPreconditionFailed

__all__ = ["Lease", "leaseHeld", "OWNER"]

#: Who holds a lease, for people reading the bucket: one per process.
OWNER = uuid.uuid4().hex


def _inProgress(name: bytes) -> Conflict:
    return Conflict("an upload to {} is already in progress".format(nameText(name)))


def _read(bucket: Bucket, key: str) -> Optional[Tuple[float, str]]:
    """
    A lease's expiry and ETag, or L{None} if there is no lease. An
    unreadable lease counts as expired.
    """
    try:
        response = bucket.client.get_object(Bucket=bucket.name, Key=key)
    except Exception as e:
        if isNotFound(e):
            return None
        raise
    try:
        expires = float(json.loads(response["Body"].read())["expires"])
    except (ValueError, KeyError, TypeError):
        expires = 0.0
    return expires, response["ETag"]


def leaseHeld(bucket: Bucket, key: str, now: float) -> bool:
    """
    Whether a lease at C{key} is held at the time C{now}.
    """
    found = _read(bucket, key)
    return found is not None and found[0] > now


class Lease:
    """
    A lease this process holds. L{renewIfDue} from the thread that stores;
    L{release} once the upload has ended.
    """

    def __init__(self, bucket: Bucket, key: str, name: bytes, ttl: float, now: Callable[[], float]) -> None:
        self._bucket = bucket
        self._key = key
        self._name = name
        self._ttl = ttl
        self._now = now
        self._etag: Optional[str] = None
        self._renewed = 0.0

    def _body(self) -> bytes:
        self._renewed = self._now()
        return json.dumps({"owner": OWNER, "expires": self._renewed + self._ttl}).encode()

    def acquire(self) -> None:
        """
        Take the lease: create it, or take over one that has expired.

        @raise Conflict: another upload holds it.
        """
        client, bucket = self._bucket.client, self._bucket.name
        for _ in range(3):
            try:
                self._etag = client.put_object(Bucket=bucket, Key=self._key, Body=self._body(), IfNoneMatch="*")["ETag"]
                return
            except Exception as e:
                if not isPreconditionFailed(e):
                    raise
            found = _read(self._bucket, self._key)
            if found is None:
                continue  # released meanwhile: try to create it again
            expires, etag = found
            if expires > self._now():
                raise _inProgress(self._name)
            try:
                self._etag = client.put_object(Bucket=bucket, Key=self._key, Body=self._body(), IfMatch=etag)["ETag"]
                return
            except Exception as e:
                if not isPreconditionFailed(e) and not isNotFound(e):
                    raise
        raise _inProgress(self._name)

    def renew(self) -> None:
        """
        Push the expiry back.

        @raise Conflict: the lease was lost (it expired and another front
            end took it).
        """
        try:
            self._etag = self._bucket.client.put_object(
                Bucket=self._bucket.name, Key=self._key, Body=self._body(), IfMatch=self._etag
            )["ETag"]
        except Exception as e:
            if isPreconditionFailed(e) or isNotFound(e):
                self._etag = None
                raise Conflict("the upload of {} was taken over by another server after a stall".format(nameText(self._name)))
            raise

    def renewIfDue(self) -> None:
        """
        Renew when a third of the lease has gone by.
        """
        if self._now() - self._renewed > self._ttl / 3:
            self.renew()

    @property
    def held(self) -> bool:
        return self._etag is not None

    def release(self) -> None:
        """
        Give the lease back, unless another front end holds it now. Never
        raises: a lease left behind expires.
        """
        etag, self._etag = self._etag, None
        if etag is None:
            return
        try:
            self._bucket.client.delete_object(Bucket=self._bucket.name, Key=self._key, IfMatch=etag)
        except Exception:
            pass
