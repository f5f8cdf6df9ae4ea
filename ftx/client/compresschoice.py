"""
When the client asks for compressed bodies (C{compress zstd},
L{ftx.protocol.compression}); L{ftx.client.compressed} follows them.

When C{--compress auto} turns compression on (docs/protocol.rst,
"Compression"), measured on this project's 2-core test machine:

  - zstd level 1 compresses generated logs at about 490 MB/s a core
    (ratio 0.076) and decodes them at 1.3 GB/s; a loopback or Unix socket
    carries 1 GB/s and more. There compression only costs: C{auto} leaves
    it off for a server on a loopback address or a Unix socket.
  - Any other link is taken as slower than zstd (a 1 Gbit/s link carries
    125 MB/s): C{auto} asks for compression, and the sender's per-block
    check sends incompressible blocks raw, trying again on one block in
    33 at most, so random or already-compressed data costs about 1 %.
  - An upload's first block is sampled first: a file whose first megabyte
    does not shrink below L{UPLOAD_RATIO} goes uncompressed, keeping the
    zero-copy path.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Optional

from twisted.internet.defer import Deferred, succeed

from ftx.client.exchanges import Request
from ftx.errors import ConnectionLost
from ftx.protocol import compression, wire

__all__ = ["wantsCompression", "sampleFile", "negotiate", "forUpload", "UPLOAD_RATIO"]

#: What C{compress=} takes: C{auto}, C{zstd}, C{none}.
MODES = compression.MODES
#: C{auto} compresses an upload whose first block shrinks to this share of
#: its size or less (the ratio of L{compression.sampleRatio}).
UPLOAD_RATIO = 0.9


def fastLink(transport) -> bool:
    """
    Whether C{transport} reaches a server on this machine (a loopback
    address or a Unix socket), where the wire outruns zstd.
    """
    try:
        peer = transport.getPeer()
    except Exception:
        return False
    host = getattr(peer, "host", None)
    if host is None:
        # A Unix socket (or an in-memory one in tests).
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def wantsCompression(mode: str, features, transport) -> bool:
    """
    Whether to ask the server for compressed bodies on a new connection,
    for C{--compress MODE}: never without the server's C{zstd} feature.
    """
    if compression.ZSTD not in features or not compression.available():
        return False
    if mode == compression.ZSTD:
        return True
    return mode == compression.AUTO and not fastLink(transport)


def sampleFile(path: str) -> float:
    """
    The compression ratio of the first block of the file at C{path} (1.0
    for an empty file); read and compressed in the caller's thread.
    """
    with open(path, "rb") as f:
        return compression.sampleRatio(f.read(compression.BLOCK_SIZE))


def switch(protocol, wanted: str) -> Deferred:
    """
    Ask the server for compression C{wanted} (C{zstd} or C{none}) unless
    the connection already has it; fires when the server agreed.
    """
    if protocol.compression == wanted:
        return succeed(None)
    # Long raw runs whenever the server takes them: they cost nothing more
    # to receive and save a block line a MiB on incompressible data.
    runs = wanted == compression.ZSTD and compression.RUNS in protocol.features
    fields = (wanted, compression.RUNS) if runs else (wanted,)

    def agreed(_):
        protocol.compression = wanted
        protocol.rawRun = compression.MAX_RUN if runs else compression.MAX_BLOCK

    return protocol.request(Request(wire.formatCommand("compress", *fields))).addCallback(agreed)


def maybeSample(protocol, path: str, threaded) -> "Deferred[Optional[str]]":
    """
    For C{auto}: the compression an upload of C{path} should travel with,
    judged by its first block in a thread (L{UPLOAD_RATIO}); L{None} to
    leave the connection as it is.
    """
    if getattr(protocol, "compressMode", compression.NONE) != compression.AUTO or not protocol.autoCompress:
        return succeed(None)
    try:
        if os.path.getsize(path) < wire.SMALL_BODY:
            return succeed(compression.ZSTD)
    except OSError:
        return succeed(None)
    return threaded(sampleFile, path).addCallbacks(
        lambda ratio: compression.ZSTD if ratio <= UPLOAD_RATIO else compression.NONE,
        # The upload itself reports a file it cannot read.
        lambda failure: None,
    )


def negotiate(protocol) -> Deferred:
    """
    On a new connection, ask for compression if C{protocol.compressMode}
    wants it (L{wantsCompression}); fires with C{protocol}. A server that
    refuses leaves bodies uncompressed.
    """
    on = wantsCompression(protocol.compressMode, protocol.features, protocol.transport)
    protocol.autoCompress = on
    if not on:
        return succeed(protocol)

    def refused(failure):
        if isinstance(failure.value, ConnectionLost):
            return failure
        protocol.autoCompress = False
        return protocol

    return switch(protocol, compression.ZSTD).addCallbacks(lambda _: protocol, refused)


def forUpload(client, path: str) -> Optional[Deferred]:
    """
    L{None} when an upload of C{path} goes as the connection is (every
    mode but an active C{auto}); else a Deferred that fires once the
    connection carries it as C{auto} would have it (L{maybeSample}).
    """
    protocol = client.protocol
    if getattr(protocol, "compressMode", compression.NONE) != compression.AUTO or not protocol.autoCompress:
        return None

    def chosen(wanted):
        return switch(protocol, wanted) if wanted is not None else None

    return maybeSample(protocol, path, client._threaded).addCallback(chosen)
