"""
Encoding and parsing of ftx command and reply lines; no I/O.

The grammar lives in ``docs/protocol.rst``. Names travel percent-encoded so
that a name with spaces, ``%`` or bytes that are not UTF-8 still fits in one
space-separated field; everything here works on the server's raw bytes for
names and leaves it to L{ftx.server.storage} to judge whether a name is allowed.
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Optional, Tuple
from urllib.parse import quote_from_bytes, unquote_to_bytes

from ftx.errors import BadRequest, FtxError
from ftx.protocol import checksums

PROTOCOL_VERSION = "ftx/1"
#: What every line either side sends ends with. A server also takes a bare
#: LF as the end of a line it reads (docs/protocol.rst, Lines).
LINE_END = b"\r\n"
MAX_LINE_LENGTH = 16384
EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"

# Reply codes that are not errors.
BODY_FOLLOWS = 150
SEND_BODY = 350
OK = 200
LIST_ENTRY = 210
LIST_END = 211
DISK_SPACE = 212
DIGEST = 213
PARTIAL = 214
GREETING = 220
BYE = 221
#: The end of an mget batch: files sent, bytes sent.
BATCH_END = 226
#: An upload is stored under its name: the name, size and digest. The same
#: number as L{BATCH_END} (both close a transfer command), a name of its own
#: so that each use reads as what it means.
STORED = 226
LOGGED_IN = 230
TRAILER = 250
SKIPPED = 451

#: Bodies up to this size travel whole: the server sends a small file of an
#: mget as header, body and trailer in one write, and the client keeps a
#: small body in memory and stores it in one piece. Both ends agree on it
#: only for efficiency; the framing does not depend on it.
SMALL_BODY = 256 << 10

_SAFE = b"-._~/"
_NUMBER = re.compile(r"\A(?:0|[1-9][0-9]{0,18})\Z")
_MAX_NUMBER = 2**63 - 1


def encodeName(name: "bytes | str") -> str:
    """
    Percent-encode a name for the wire. Text names are taken as UTF-8; byte
    names (as the filesystem gives them) go as they are.
    """
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    return quote_from_bytes(name, safe=_SAFE)


def decodeName(field: str) -> bytes:
    """
    Undo L{encodeName}, giving the raw bytes of the name.

    @raise BadRequest: the field is empty or has a stray C{%}.
    """
    if not field:
        raise BadRequest("empty name")
    if re.search(r"%(?![0-9A-Fa-f]{2})", field):
        raise BadRequest("bad percent-encoding in name: {}".format(field[:80]))
    return unquote_to_bytes(field)


def nameText(name: bytes) -> str:
    """
    A name as text for people and logs: UTF-8 where it is, escapes elsewhere.
    """
    return name.decode("utf-8", "backslashreplace")


def parseNumber(field: str, what: str = "number") -> int:
    """
    Parse a non-negative decimal as the protocol defines it.

    @raise BadRequest: not such a number, or too large.
    """
    if not _NUMBER.match(field):
        raise BadRequest("{} must be a non-negative integer, not {!r}".format(what, field[:40]))
    value = int(field)
    if value > _MAX_NUMBER:
        raise BadRequest("{} is too large".format(what))
    return value


def parseDigest(field: str, checksum: str = checksums.SHA1) -> str:
    """
    Check a hex digest (SHA-1 unless the connection chose another
    checksum); upper case is folded so that a hand-typed digest works.
    """
    return checksums.parseDigest(field, checksum)


def parseCommand(line: bytes) -> Tuple[str, List[str]]:
    """
    Split a command line into its verb and argument fields.

    @raise BadRequest: the line is not UTF-8 or is empty.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("command line is not valid UTF-8")
    if "\x00" in text or "\r" in text or "\n" in text:
        raise BadRequest("control characters in command line")
    fields = text.split(" ")
    verb = fields[0].lower()
    if not verb:
        raise BadRequest("empty command")
    return verb, fields[1:]


def formatLine(code: int, *fields: object) -> bytes:
    """
    Build a reply line (without its CR LF) from a code and fields.
    """
    parts = [str(code)] + [str(f) for f in fields]
    return " ".join(parts).encode("utf-8")


def formatError(error: FtxError) -> bytes:
    """
    Build the error reply for C{error}. CR and LF are removed from the message
    because one of them would end the line early.
    """
    message = re.sub(r"[\r\n\x00]", " ", error.message)
    return formatLine(error.code, error.token, message)


def formatCommand(verb: str, *fields: object) -> bytes:
    """
    Build a command line (without its CR LF).
    """
    return " ".join([verb] + [str(f) for f in fields]).encode("utf-8")


class Reply(NamedTuple):
    """
    A reply line split into its code and fields.
    """

    code: int
    fields: List[str]
    text: str

    @property
    def isError(self) -> bool:
        return self.code >= 400

    def errorMessage(self) -> str:
        """
        The human part of an error reply (after the token).
        """
        return " ".join(self.fields[1:]) if len(self.fields) > 1 else self.text


def parseReply(line: bytes) -> Reply:
    """
    Split a reply line. A line that does not start with a three-digit code
    is a protocol violation by the server.

    @raise FtxError: the line is not a reply.
    """
    text = line.decode("utf-8", "replace")
    head, _, rest = text.partition(" ")
    if len(head) != 3 or not head.isdigit():
        raise FtxError("malformed reply from server: {!r}".format(text[:80]))
    return Reply(int(head), rest.split(" ") if rest else [], rest)


class FileHeader(NamedTuple):
    """
    The C{150 NAME SIZE OFFSET} line that comes before a body.
    """

    name: bytes
    size: int
    offset: int

    @property
    def bodyLength(self) -> int:
        return self.size - self.offset


def parseFileHeader(reply: Reply) -> FileHeader:
    if reply.code != BODY_FOLLOWS or len(reply.fields) != 3:
        raise FtxError("malformed body header: {!r}".format(reply.text[:80]))
    size = parseNumber(reply.fields[1], "size")
    offset = parseNumber(reply.fields[2], "offset")
    if offset > size:
        raise FtxError("body header offset beyond size")
    return FileHeader(decodeName(reply.fields[0]), size, offset)


def optionalInt(fields: List[str], index: int, what: str) -> Optional[int]:
    """
    The integer at C{fields[index]}, or L{None} when the field is absent.
    """
    if len(fields) > index:
        return parseNumber(fields[index], what)
    return None
