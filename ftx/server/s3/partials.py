"""
Partial uploads on an object store. An object cannot be appended to, so
a partial upload is kept as hidden chunk objects (each at least
L{MIN_CHUNK}, at most L{MAX_PARTS} of them) plus a small state object that
lists them with the SHA-1 of everything up to the end of each: C{partial}
answers from the state object alone, without reading the data, and any
front end can resume what another began.

Everything of one name lives under one hidden folder,
C{PREFIX.ftx-uploads/NAME.ftx-partial/}: C{state}, C{lease} and the
C{chunk-*} objects. No file name can reach it (names are refused under
C{.ftx-uploads/} at the root, and no name ends in C{.ftx-partial}).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import List, NamedTuple, Optional, Tuple

from ftx.protocol.names import PARTIAL_SUFFIX
from ftx.protocol.wire import EMPTY_SHA1
from ftx.server.s3.bucket import Bucket, isNotFound

__all__ = ["HIDDEN", "MIN_CHUNK", "MAX_PARTS", "Chunk", "PartialState", "chunkSizeFor", "areaOf", "readState", "writePartial"]

#: The first segment of the hidden folder, at the bucket prefix's root.
HIDDEN = ".ftx-uploads"

#: The smallest chunk: S3 wants parts of 5 MiB or more (but the last) for
#: a multipart compose; 8 MiB keeps the chunk count and requests down.
MIN_CHUNK = 8 << 20

#: The chunk of a big file (L{BIG_FILE} or more). Every chunk costs a
#: front end three requests (its PUT, a state update, its part copy at
#: the finish) of about 4 ms of CPU each: 16 MiB chunks saved it about
#: 0.5 CPU s per GiB uploaded against 8 MiB, for 24 MiB more memory per
#: upload. Smaller files keep small chunks (less memory, finer resumes).
BIG_CHUNK = 16 << 20
BIG_FILE = 256 << 20

#: S3's limit on the parts of one multipart upload.
MAX_PARTS = 10_000


def chunkSizeFor(size: int) -> int:
    """
    The chunk size for a file of C{size} bytes: L{MIN_CHUNK}, L{BIG_CHUNK}
    for a big file, or more in whole MiB so that the file fits in
    L{MAX_PARTS} chunks.
    """
    needed = -(-size // MAX_PARTS)
    smallest = BIG_CHUNK if size >= BIG_FILE else MIN_CHUNK
    return max(smallest, -(-needed // (1 << 20)) << 20)


def areaOf(root: str, full: bytes) -> str:
    """
    The hidden folder of the partial upload to C{full} (a name from the
    root of the storage), for a bucket prefix C{root}.
    """
    return "{}{}/{}/".format(root, HIDDEN, (full + PARTIAL_SUFFIX).decode("utf-8"))


class Chunk(NamedTuple):
    key: str
    size: int
    #: The SHA-1 of the whole partial upload up to the end of this chunk.
    sha1: str


class PartialState(NamedTuple):
    chunkSize: int
    updated: float
    chunks: List[Chunk]

    @property
    def held(self) -> int:
        return sum(chunk.size for chunk in self.chunks)

    @property
    def sha1(self) -> str:
        return self.chunks[-1].sha1 if self.chunks else EMPTY_SHA1

    def encode(self) -> bytes:
        return json.dumps({"chunkSize": self.chunkSize, "updated": self.updated, "chunks": [list(c) for c in self.chunks]}).encode()


def readState(bucket: Bucket, area: str) -> Optional[PartialState]:
    """
    The state of the partial upload in C{area}, or L{None} if there is
    none (or it cannot be read: then it is treated as gone, and a sweep
    removes it).
    """
    try:
        response = bucket.client.get_object(Bucket=bucket.name, Key=area + "state")
    except Exception as e:
        if isNotFound(e):
            return None
        raise
    try:
        raw = json.loads(response["Body"].read())
        return PartialState(int(raw["chunkSize"]), float(raw["updated"]), [Chunk(str(k), int(s), str(h)) for k, s, h in raw["chunks"]])
    except (ValueError, KeyError, TypeError):
        return None


def writeState(bucket: Bucket, area: str, state: PartialState) -> None:
    bucket.client.put_object(Bucket=bucket.name, Key=area + "state", Body=state.encode())


def newChunkKey(area: str, index: int) -> str:
    # A fresh name for every chunk written: a front end that lost its lease
    # can never overwrite a chunk the new holder lists.
    return "{}chunk-{}-{:05d}".format(area, uuid.uuid4().hex[:12], index)


def writePartial(bucket: Bucket, area: str, data: bytes, updated: float, chunkSize: int = MIN_CHUNK) -> PartialState:
    """
    Store C{data} as a partial upload in C{area}, as an interrupted upload
    would have left it (for tests and tools).
    """
    chunks: List[Chunk] = []
    sha1 = hashlib.sha1()
    for index, start in enumerate(range(0, len(data), chunkSize)):
        piece = data[start : start + chunkSize]
        sha1.update(piece)
        key = newChunkKey(area, index)
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=piece)
        chunks.append(Chunk(key, len(piece), sha1.hexdigest()))
    state = PartialState(chunkSize, updated, chunks)
    writeState(bucket, area, state)
    return state


def readChunks(bucket: Bucket, chunks: List[Chunk], upTo: int):
    """
    The bytes of C{chunks} up to C{upTo}, in pieces, read in order.
    """
    position = 0
    for chunk in chunks:
        if position >= upTo:
            return
        count = min(chunk.size, upTo - position)
        response = bucket.client.get_object(Bucket=bucket.name, Key=chunk.key, Range="bytes=0-{}".format(count - 1))
        body = response["Body"]
        try:
            while True:
                piece = body.read(1 << 20)
                if not piece:
                    break
                yield piece
        finally:
            body.close()
        position += count


def partialContent(bucket: Bucket, area: str) -> Optional[bytes]:
    """
    The bytes a partial upload holds, or L{None} (for tests and tools).
    """
    state = readState(bucket, area)
    if state is None:
        return None
    return b"".join(readChunks(bucket, state.chunks, state.held))


def dropArea(bucket: Bucket, keys: List[str]) -> None:
    """
    Remove the objects of a partial upload: chunks first, the state last,
    so that a state never lists a chunk that is gone.
    """
    for key in sorted(keys, key=lambda k: k.endswith("/state")):
        bucket.deleteQuietly(key)


def splitHeld(state: PartialState, offset: int) -> Tuple[List[Chunk], int]:
    """
    Which chunks a resume at C{offset} keeps as they are (whole chunks of
    the full size before C{offset}), and where the bytes it must hold in
    memory start (the end of those chunks).
    """
    kept: List[Chunk] = []
    end = 0
    for chunk in state.chunks:
        if chunk.size != state.chunkSize or end + chunk.size > offset:
            break
        kept.append(chunk)
        end += chunk.size
    return kept, end
