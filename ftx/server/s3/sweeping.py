"""
The sweep of a bucket: partial uploads left longer than the time to live
by uploads no front end holds are removed, multipart uploads left by a
front end that died while finishing are aborted, and the bytes held are
counted. Safe from any number of front ends at once: it takes a partial
upload's lease before removing it, and removing what is gone already is
not an error.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Set

from ftx.errors import Conflict
from ftx.protocol.names import PARTIAL_SUFFIX
from ftx.server.s3.bucket import Bucket
from ftx.server.s3.leases import Lease
from ftx.server.s3.partials import HIDDEN, dropArea, readState
from ftx.server.storage import SweepResult

__all__ = ["sweepBucket"]

_AREA_END = PARTIAL_SUFFIX.decode() + "/"


def sweepBucket(bucket: Bucket, root: str, ttl: float, now: float, leaseSeconds: float, clock: Callable[[], float]) -> SweepResult:
    hidden = root + HIDDEN + "/"
    used = files = 0
    folders: Set[str] = set()
    areas: Dict[str, List[dict]] = {}
    for item in bucket.listKeys(root):
        key = item["Key"]
        if key.startswith(hidden):
            end = key.find(_AREA_END, len(hidden))
            if end >= 0:
                areas.setdefault(key[: end + len(_AREA_END)], []).append(item)
            continue
        _addFolders(folders, key[len(root) :])
        if not key.endswith("/"):
            used += int(item["Size"])
            files += 1
    expired = 0
    for area, items in areas.items():
        state = readState(bucket, area)
        if state is not None:
            updated = state.updated
        else:
            updated = max(item["LastModified"].timestamp() for item in items)
        chunks = sum(int(i["Size"]) for i in items if "/chunk-" in i["Key"][len(area) - 1 :])
        kept = state is not None
        if updated >= now - ttl:
            used, files = used + chunks, files + kept
            continue
        lease = Lease(bucket, area + "lease", area.encode(), leaseSeconds, clock)
        try:
            lease.acquire()
        except Conflict:
            used, files = used + chunks, files + kept  # an upload holds it
            continue
        try:
            dropArea(bucket, [i["Key"] for i in items if not i["Key"].endswith("/lease")])
        finally:
            lease.release()
        if state is not None:
            expired += 1
    _abortOldMultiparts(bucket, root, now - ttl)
    return SweepResult(expired, used)


def _addFolders(folders: Set[str], name: str) -> None:
    """
    Add the folders that hold C{name} (a key from the root; a folder
    marker ends in C{/} and is a folder itself).
    """
    parts = name.split("/")
    for depth in range(1, len(parts)):
        folders.add("/".join(parts[:depth]))


def _abortOldMultiparts(bucket: Bucket, root: str, before: float) -> None:
    try:
        response = bucket.client.list_multipart_uploads(Bucket=bucket.name, Prefix=root)
    except Exception:
        return  # not every engine lists them; the engine's own lifecycle rules can
    for upload in response.get("Uploads", ()):
        if upload["Initiated"].timestamp() < before:
            try:
                bucket.client.abort_multipart_upload(Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"])
            except Exception:
                pass
