"""
The age v1 header (age-encryption.org/v1): a version line, one stanza per
recipient (the file key wrapped for it), and a MAC over all that keyed by
the file key, so that no one can swap recipients without the key.

Text form::

    age-encryption.org/v1
    -> X25519 <share>
    <body, base64 without padding, 64 columns, the last line shorter>
    --- <MAC>

Parsing reads from a file a line at a time with a bound on the header's
size, since the file may come from a hostile server.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from hashlib import sha256
from typing import BinaryIO, List, Optional

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ftx.client.e2e.errors import NotDecryptable

__all__ = ["Header", "Stanza", "b64decode", "b64encode", "hkdf"]

VERSION_LINE = b"age-encryption.org/v1"
_MAC_PREFIX = b"---"
_COLUMNS = 64
#: Headers are a few hundred bytes; this bounds what a hostile file can
#: make the client buffer before the first authenticated byte.
MAX_HEADER = 1 << 20


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """
    Canonical unpadded base64, as age writes it; anything else is not an
    age header.
    """
    if "=" in text or "\n" in text or "\r" in text:
        raise NotDecryptable("not an age file: bad base64 in its header")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise NotDecryptable("not an age file: bad base64 in its header")
    if b64encode(data) != text:
        raise NotDecryptable("not an age file: non-canonical base64 in its header")
    return data


def hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


class Stanza:
    """
    One recipient's entry: a type and arguments, and a body (for the
    standard recipients, the wrapped file key).
    """

    def __init__(self, args: List[str], body: bytes) -> None:
        self.args = args
        self.body = body

    def encode(self) -> bytes:
        text = b64encode(self.body)
        lines = [text[i: i + _COLUMNS] for i in range(0, len(text), _COLUMNS)]
        if not lines or len(lines[-1]) == _COLUMNS:
            # A full last line would read as "more follows".
            lines.append("")
        return ("-> " + " ".join(self.args) + "\n" + "\n".join(lines) + "\n").encode("ascii")


class Header:
    """
    The stanzas and the MAC; C{encoded} is the header's exact bytes (kept
    so that a resumed upload sends the same ciphertext).
    """

    def __init__(self, stanzas: List[Stanza], mac: bytes = b"", encoded: bytes = b"") -> None:
        self.stanzas = stanzas
        self.mac = mac
        self.encoded = encoded

    @classmethod
    def make(cls, stanzas: List[Stanza], fileKey: bytes) -> "Header":
        signed = VERSION_LINE + b"\n" + b"".join(s.encode() for s in stanzas) + _MAC_PREFIX
        mac = _mac(fileKey, signed)
        return cls(stanzas, mac, signed + b" " + b64encode(mac).encode("ascii") + b"\n")

    def verify(self, fileKey: bytes) -> bool:
        signed = self.encoded[: self.encoded.rindex(b"\n" + _MAC_PREFIX) + 1 + len(_MAC_PREFIX)]
        return hmac.compare_digest(_mac(fileKey, signed), self.mac)

    @classmethod
    def read(cls, f: BinaryIO) -> "Header":
        """
        Read the header from the start of C{f}, leaving C{f} at the payload.

        @raise NotDecryptable: it is not an age v1 header.
        """
        lines: List[bytes] = []
        total = 0

        def line() -> bytes:
            nonlocal total
            raw = f.readline(MAX_HEADER - total + 1)
            total += len(raw)
            if total > MAX_HEADER or not raw.endswith(b"\n"):
                raise NotDecryptable("not an age file (or its header is cut off)")
            lines.append(raw)
            return raw[:-1]

        if line() != VERSION_LINE:
            raise NotDecryptable("not an age v1 file")
        stanzas: List[Stanza] = []
        current = line()
        while current.startswith(b"-> "):
            args = _args(current[3:])
            body: List[bytes] = []
            while True:
                piece = line()
                if len(piece) > _COLUMNS:
                    raise NotDecryptable("not an age file: a stanza line is too long")
                body.append(piece)
                if len(piece) < _COLUMNS:
                    break
            stanzas.append(Stanza(args, b64decode(b"".join(body).decode("ascii", "replace"))))
            current = line()
        if not current.startswith(_MAC_PREFIX + b" ") or not stanzas:
            raise NotDecryptable("not an age file: its header is malformed")
        mac = b64decode(current[len(_MAC_PREFIX) + 1:].decode("ascii", "replace"))
        if len(mac) != 32:
            raise NotDecryptable("not an age file: its header MAC is malformed")
        return cls(stanzas, mac, b"".join(lines))


def _args(raw: bytes) -> List[str]:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise NotDecryptable("not an age file: a stanza is not ASCII")
    args = text.split(" ")
    if not args or any(not a or not all(33 <= ord(c) <= 126 for c in a) for a in args):
        raise NotDecryptable("not an age file: a stanza is malformed")
    return args


def _mac(fileKey: bytes, signed: bytes) -> bytes:
    return hmac.new(hkdf(fileKey, b"", b"header"), signed, sha256).digest()


def macKeyCheck(header: Header, fileKey: Optional[bytes]) -> bytes:
    """
    The file key, once the header's MAC proves it is the one the header
    was made with.

    @raise NotDecryptable: the header was altered.
    """
    if fileKey is None or not header.verify(fileKey):
        raise NotDecryptable("the encrypted file's header does not authenticate: it was altered")
    return fileKey
