"""
age keys: X25519 recipients (C{age1...}) and identities
(C{AGE-SECRET-KEY-1...}), passphrases, and the files they live in.

A recipient wraps a file key so that only the matching identity can
unwrap it; a L{Passphrase} is both (age's scrypt stanza). Recipients and
identities are written as in age-encryption.org/v1, so keys made by
C{age-keygen} work here and C{ftx keygen}'s work with C{age}.
"""

from __future__ import annotations

import os
import time
from typing import Iterable, List, Optional, Sequence, Union

import bech32
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ftx.client.e2e.errors import BadKey, NotDecryptable
from ftx.client.e2e.header import Stanza, b64decode, b64encode, hkdf

__all__ = [
    "Identity",
    "Passphrase",
    "Recipient",
    "defaultIdentityPath",
    "generateIdentity",
    "readIdentities",
    "readRecipients",
    "toIdentity",
    "toRecipient",
    "writeIdentity",
]

_X25519_INFO = b"age-encryption.org/v1/X25519"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_ZERO_NONCE = bytes(12)
_RECIPIENT_HRP = "age"
_IDENTITY_HRP = "age-secret-key-"

#: scrypt's cost as 2**N: age's own default (about a second, 256 MiB).
SCRYPT_WORK_FACTOR = 18
#: The most a file may ask of us when we decrypt it: a hostile file cannot
#: make the client spend minutes and gigabytes deriving one key.
SCRYPT_MAX_WORK_FACTOR = 22


def _encodeKey(hrp: str, key: bytes) -> str:
    return bech32.bech32_encode(hrp, bech32.convertbits(list(key), 8, 5))


def _decodeKey(text: str, hrp: str, what: str) -> bytes:
    decoded = bech32.bech32_decode(text)
    hrpFound, data = decoded[0], decoded[1]
    if hrpFound != hrp or data is None:
        raise BadKey("not an age {}: {!r}".format(what, _shorten(text)))
    key = bech32.convertbits(data, 5, 8, False)
    if key is None or len(key) != 32:
        raise BadKey("not an age {}: {!r}".format(what, _shorten(text)))
    return bytes(key)


def _shorten(text: str) -> str:
    return text if len(text) <= 20 else text[:12] + "..."


def _wrap(key: bytes, fileKey: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, fileKey, None)


def _unwrap(key: bytes, body: bytes) -> Optional[bytes]:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


class Recipient:
    """
    An X25519 public key: C{age1...}.
    """

    def __init__(self, publicKey: bytes) -> None:
        self.publicKey = publicKey

    @classmethod
    def parse(cls, text: str) -> "Recipient":
        """
        @raise BadKey: C{text} is not an C{age1...} recipient.
        """
        text = text.strip()
        if text.startswith("ssh-"):
            raise BadKey("SSH keys are not supported as recipients; use an age1... key (ftx keygen)")
        return cls(_decodeKey(text, _RECIPIENT_HRP, "recipient (age1...)"))

    def __str__(self) -> str:
        return _encodeKey(_RECIPIENT_HRP, self.publicKey)

    def __eq__(self, other) -> bool:
        return isinstance(other, Recipient) and other.publicKey == self.publicKey

    def __hash__(self) -> int:
        return hash(self.publicKey)

    def wrap(self, fileKey: bytes) -> List[Stanza]:
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self.publicKey))
        key = hkdf(shared, share + self.publicKey, _X25519_INFO)
        return [Stanza(["X25519", b64encode(share)], _wrap(key, fileKey))]


class Identity:
    """
    An X25519 secret key: C{AGE-SECRET-KEY-1...}.
    """

    def __init__(self, secretKey: bytes) -> None:
        self.secretKey = secretKey
        self._private = X25519PrivateKey.from_private_bytes(secretKey)

    @classmethod
    def parse(cls, text: str) -> "Identity":
        """
        @raise BadKey: C{text} is not an C{AGE-SECRET-KEY-1...} identity.
        """
        text = text.strip()
        if text != text.upper():
            raise BadKey("not an age identity (AGE-SECRET-KEY-1...)")
        return cls(_decodeKey(text, _IDENTITY_HRP, "identity (AGE-SECRET-KEY-1...)"))

    def __str__(self) -> str:
        return _encodeKey(_IDENTITY_HRP, self.secretKey).upper()

    def recipient(self) -> Recipient:
        return Recipient(self._private.public_key().public_bytes_raw())

    def unwrap(self, stanzas: Sequence[Stanza]) -> Optional[bytes]:
        """
        The file key from the first X25519 stanza made for this identity,
        or L{None}.
        """
        ours = self.recipient().publicKey
        for stanza in stanzas:
            if stanza.args[:1] != ["X25519"] or len(stanza.args) != 2 or len(stanza.body) != 32:
                continue
            share = b64decode(stanza.args[1])
            if len(share) != 32:
                continue
            try:
                shared = self._private.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                # A low-order point: the all-zero secret age rejects.
                continue
            if shared == bytes(32):
                continue
            fileKey = _unwrap(hkdf(shared, share + ours, _X25519_INFO), stanza.body)
            if fileKey is not None:
                return fileKey
        return None


class Passphrase:
    """
    A passphrase, as a recipient (it wraps the file key with scrypt) and
    as an identity (it unwraps it). A file encrypted to a passphrase has
    no other recipient: age requires the scrypt stanza to be alone.
    """

    def __init__(self, text: str, workFactor: int = SCRYPT_WORK_FACTOR) -> None:
        if not text:
            raise BadKey("the passphrase is empty")
        self.secret = text.encode("utf-8")
        self.workFactor = workFactor

    def _key(self, salt: bytes, workFactor: int) -> bytes:
        kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << workFactor, r=8, p=1)
        return kdf.derive(self.secret)

    def wrap(self, fileKey: bytes) -> List[Stanza]:
        salt = os.urandom(16)
        body = _wrap(self._key(salt, self.workFactor), fileKey)
        return [Stanza(["scrypt", b64encode(salt), str(self.workFactor)], body)]

    def unwrap(self, stanzas: Sequence[Stanza]) -> Optional[bytes]:
        for stanza in stanzas:
            args = stanza.args
            if args[:1] != ["scrypt"] or len(args) != 3 or len(stanza.body) != 32:
                continue
            if len(stanzas) != 1:
                raise NotDecryptable("not a valid age file: a passphrase stanza must be the only one")
            salt, factor = b64decode(args[1]), args[2]
            if len(salt) != 16 or not factor.isdigit() or factor != str(int(factor)):
                continue
            if int(factor) > SCRYPT_MAX_WORK_FACTOR:
                raise NotDecryptable("the file asks for a passphrase work factor of 2**{}, more than the 2**{} "
                                     "allowed".format(factor, SCRYPT_MAX_WORK_FACTOR))
            return _unwrap(self._key(salt, int(factor)), stanza.body)
        return None


AnyRecipient = Union[Recipient, Passphrase]
AnyIdentity = Union[Identity, Passphrase]


def toRecipient(value: Union[str, AnyRecipient]) -> AnyRecipient:
    return Recipient.parse(value) if isinstance(value, str) else value


def toIdentity(value: Union[str, AnyIdentity]) -> AnyIdentity:
    return Identity.parse(value) if isinstance(value, str) else value


def _keyLines(path: str) -> Iterable[str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except UnicodeDecodeError:
        raise BadKey("{} is not a text file of age keys".format(path))
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def readRecipients(path: str) -> List[Recipient]:
    """
    The recipients listed in a file, one C{age1...} a line (C{#} comments
    and blank lines ignored), as C{age -R} reads them.

    @raise BadKey: a line is not a recipient, or there is none.
    @raise OSError: the file cannot be read.
    """
    found = [Recipient.parse(line) for line in _keyLines(path)]
    if not found:
        raise BadKey("no recipient in {}".format(path))
    return found


def readIdentities(path: str) -> List[Identity]:
    """
    The identities in an identity file (as C{age-keygen} and
    C{ftx keygen} write them).

    @raise BadKey: a line is not an identity, or there is none.
    @raise OSError: the file cannot be read.
    """
    found = []
    for line in _keyLines(path):
        try:
            found.append(Identity.parse(line))
        except BadKey:
            raise BadKey("{} holds something that is not an age identity".format(path))
    if not found:
        raise BadKey("no identity in {}".format(path))
    return found


def configFolder() -> str:
    """
    ftx's folder in the user's configuration: C{$XDG_CONFIG_HOME/ftx},
    by default C{~/.config/ftx}.
    """
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "ftx")


def defaultIdentityPath() -> str:
    return os.path.join(configFolder(), "identity.txt")


def generateIdentity() -> Identity:
    return Identity(X25519PrivateKey.generate().private_bytes_raw())


def writeIdentity(path: str, identity: Identity) -> None:
    """
    Write C{identity} to a new file readable only by its owner, in the
    format of C{age-keygen}.

    @raise FileExistsError: C{path} exists (a key is never overwritten).
    """
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = "# created: {}\n# public key: {}\n{}\n".format(created, identity.recipient(), identity)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
