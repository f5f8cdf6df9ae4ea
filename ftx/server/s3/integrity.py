"""
What guards the bytes a front end writes on their way into the engine.

By default botocore signs every payload with SHA-256 on a plain-http
endpoint and adds a CRC32 of it besides: two passes over every byte
uploaded, about 1.3 CPU seconds per GiB in a front end whose upload path
already hashes each byte for ftx's own digests. Instead the payload is
sent as C{UNSIGNED-PAYLOAD} (the request and its headers stay signed) with
an C{x-amz-checksum-crc32c} header computed by google-crc32c (hardware
CRC32C, about 0.15 CPU s per GiB here), which the engine checks: a body
that differs from its checksum is refused (C{BadDigest}) and nothing is
stored (tests/test_s3_integrity.py shows SeaweedFS doing so).

Such a body then goes to the socket whole, in one C{sendall}: botocore
wraps a bytes body in a file object, which the HTTP connection reads and
sends 16 KiB at a time (a new bytes object and a system call for each:
about 0.4 CPU s per GiB more, measured on 8 MiB chunks).
"""

from __future__ import annotations

import base64
import io

__all__ = ["clientConfig", "crc32cOf", "installWriteHooks"]

#: The operations whose bodies are data a front end writes.
_WRITES = ("PutObject", "UploadPart")


def crc32cOf(data) -> str:
    """
    The CRC32C of C{data} as S3's C{x-amz-checksum-crc32c} header wants it
    (base64 of the big-endian 32-bit value).
    """
    import google_crc32c

    return base64.b64encode(google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data).to_bytes(4, "big")).decode("ascii")


def _addChecksum(params: dict, **kwargs) -> None:
    # Bodies ftx writes are bytes in memory; any other body keeps
    # botocore's own checksum (request_checksum_calculation, below).
    body = params.get("Body")
    if isinstance(body, (bytes, bytearray, memoryview)) and not any(name.startswith("Checksum") for name in params):
        params["ChecksumCRC32C"] = crc32cOf(body)


def _sendWhole(request, **kwargs) -> None:
    # Only the in-memory file botocore made of a bytes body: getvalue()
    # gives those bytes back without a copy. A retry sends them again.
    body = request.body
    if isinstance(body, io.BytesIO):
        request.body = body.getvalue()


def installWriteHooks(client) -> None:
    """
    Give every C{PutObject} and C{UploadPart} of C{client} whose body is
    bytes a CRC32C the engine checks, and send such a body whole.
    """
    for operation in _WRITES:
        client.meta.events.register("provide-client-params.s3.{}".format(operation), _addChecksum)
        client.meta.events.register("before-send.s3.{}".format(operation), _sendWhole)


def clientConfig(**options):
    """
    A botocore C{Config} with C{options} whose payloads go unsigned
    (honoured by botocore's S3 signer on http as on https); use with
    L{installWriteHooks}.
    """
    from botocore.config import Config

    s3 = dict(options.pop("s3", {}), payload_signing_enabled=False)
    return Config(s3=s3, **options)
