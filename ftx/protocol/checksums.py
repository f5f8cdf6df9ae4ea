"""
The checksums that guard a transfer end to end.

A body's trailer carries a digest of the whole file, so the receiver keeps
only what the sender had. SHA-1 is the protocol's default and what C{hash},
C{cget} and C{partial} always use (people compare it with C{sha1sum}). But
one core hashes SHA-1 at about 1.2-1.6 GB/s, slower than loopback moves
the bytes, and both ends of a transfer must hash every byte: it was the
largest single cost of a download. A connection may therefore switch its
trailers to XXH3-128 (C{checksum xxh128}), the whole-file check rsync also
negotiates by default. It detects corruption as well as SHA-1 does; it
gives no protection against a peer that forges data on purpose, which
neither does a digest chosen by that same peer. TLS covers tampering on
the way.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Dict, Tuple

from ftx.errors import BadRequest

__all__ = ["SHA1", "XXH128", "available", "new", "cheap", "parseDigest", "label"]

SHA1 = "sha1"
XXH128 = "xxh128"

_makers: Dict[str, Callable[[], object]] = {SHA1: hashlib.sha1}
try:
    import xxhash
except ImportError:  # pragma: no cover - xxhash is a dependency
    xxhash = None
else:
    _makers[XXH128] = xxhash.xxh3_128

_DIGESTS = {SHA1: re.compile(r"\A[0-9a-f]{40}\Z"), XXH128: re.compile(r"\A[0-9a-f]{32}\Z")}
_LABELS = {SHA1: "SHA-1", XXH128: "XXH3-128"}

_PREFERENCE: Tuple[str, ...] = tuple(name for name in (XXH128, SHA1) if name in _makers)


def available() -> Tuple[str, ...]:
    """
    The checksums this process can compute, the fastest first.
    """
    return _PREFERENCE


def new(name: str):
    """
    A fresh hasher (C{update}, C{hexdigest}, C{copy}) for checksum C{name}.
    """
    try:
        return _makers[name]()
    except KeyError:
        raise BadRequest("unknown checksum {!r}; this side knows {}".format(name, ", ".join(_PREFERENCE))) from None


def cheap(name: str) -> bool:
    """
    Whether hashing with C{name} costs so little (tens of GB/s) that doing
    it on the thread that receives is cheaper than handing the bytes to a
    worker thread.
    """
    return name == XXH128


def parseDigest(field: str, name: str = SHA1) -> str:
    """
    Check a hex digest of checksum C{name}; the protocol uses lower case,
    upper case is accepted.
    """
    value = field.lower()
    if not _DIGESTS[name].match(value):
        raise BadRequest("not a {} hex digest: {!r}".format(label(name), field[:60]))
    return value


def label(name: str) -> str:
    """
    How people read the checksum's name: C{SHA-1}, C{XXH3-128}.
    """
    return _LABELS.get(name, name)
