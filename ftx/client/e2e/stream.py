"""
Encrypting and decrypting whole files in the age v1 format, a 64 KiB
chunk at a time (age's STREAM: ChaCha20-Poly1305 per chunk, the nonce a
chunk counter with a flag on the last chunk, so that dropping, reordering
or cutting chunks off fails to authenticate).

These functions block: callers run them in a worker thread. Memory stays
at a few chunks whatever the file's size.
"""

from __future__ import annotations

import errno
import os
from typing import Iterator, Optional, Sequence, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ftx._io.fileio import writeAll
from ftx.client.e2e.errors import BadKey, NoIdentity, NotDecryptable
from ftx.client.e2e.header import Header, hkdf, macKeyCheck
from ftx.client.e2e.keys import AnyIdentity, AnyRecipient, Passphrase

__all__ = ["CHUNK", "Plan", "decryptFile", "encryptFile", "encryptedBatches", "encryptedSize", "newPlan"]

CHUNK = 64 * 1024
_TAG = 16
_NONCE = 16
#: Never through a link: one in the partial file's place could point
#: anywhere (as for ftx.client.localfiles.openPartial).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
#: Chunks read per system call: 1 MiB of plaintext.
_BATCH = 16
#: cryptography 45 and later seal and open into a buffer given.
_IN_PLACE = hasattr(ChaCha20Poly1305, "decrypt_into")


class Plan:
    """
    What makes an encryption repeatable: the file key, the header made
    with it and the payload nonce. Encrypting the same plaintext with the
    same plan gives the same bytes, which is how an interrupted encrypted
    upload resumes (L{ftx.client.e2e.uploads}). It holds the file key:
    keep it where only the user can read it.
    """

    def __init__(self, fileKey: bytes, header: bytes, nonce: bytes) -> None:
        self.fileKey = fileKey
        self.header = header
        self.nonce = nonce


def newPlan(recipients: Sequence[AnyRecipient]) -> Plan:
    """
    A fresh file key wrapped for each recipient.

    @raise BadKey: no recipient, or a passphrase mixed with others.
    """
    if not recipients:
        raise BadKey("give at least one recipient or a passphrase")
    if any(isinstance(r, Passphrase) for r in recipients) and len(recipients) > 1:
        raise BadKey("a passphrase cannot be combined with other recipients (age allows it alone)")
    fileKey = os.urandom(16)
    stanzas = [stanza for recipient in recipients for stanza in recipient.wrap(fileKey)]
    return Plan(fileKey, Header.make(stanzas, fileKey).encoded, os.urandom(_NONCE))


def encryptedSize(plainSize: int, headerSize: int) -> int:
    chunks = max(1, -(-plainSize // CHUNK))
    return headerSize + _NONCE + plainSize + chunks * _TAG


def streamNonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def pieces(f, total: int, piece: int) -> Iterator[Tuple[int, memoryview, bool]]:
    """
    The next C{total} bytes of the raw file C{f} as C{(index, view,
    last)} pieces of C{piece} bytes (the last one shorter), read
    L{_BATCH} pieces at a time into one reused buffer: with the sizes
    known up front no lookahead is needed to know which piece is last,
    and nothing is copied but by the kernel and the cipher. An empty
    C{total} is one empty piece, as age encrypts an empty file.

    @raise EOFError: the file is shorter than C{total}.
    """
    if total == 0:
        yield 0, memoryview(b""), True
        return
    view = memoryview(bytearray(piece * _BATCH))
    index, done = 0, 0
    while done < total:
        want = min(len(view), total - done)
        got = 0
        while got < want:
            count = f.readinto(view[got:want])
            if not count:
                raise EOFError("the file shrank while it was being read")
            got += count
        done += want
        for start in range(0, want, piece):
            end = min(start + piece, want)
            yield index, view[start:end], done == total and end == want
            index += 1


def encryptedBatches(f, size: int, plan: Plan) -> Iterator[memoryview]:
    """
    The payload (after header and nonce) of C{plan}'s encryption of the
    next C{size} bytes of the raw file C{f}, as views of up to
    L{_BATCH} sealed chunks. Each view is of one reused buffer, valid
    until the next is asked for: copy it to keep it. Sealing in place
    (C{encrypt_into}) costs about a quarter of the CPU time of
    C{encrypt}, which allocates a new bytes object per chunk.

    @raise EOFError: the file is shorter than C{size}.
    """
    aead = ChaCha20Poly1305(hkdf(plan.fileKey, plan.nonce, b"payload"))
    sealed = memoryview(bytearray((CHUNK + _TAG) * _BATCH))
    filled = 0
    for counter, chunk, last in pieces(f, size, CHUNK):
        end = filled + len(chunk) + _TAG
        if end > len(sealed):
            yield sealed[:filled]
            filled, end = 0, len(chunk) + _TAG
        if _IN_PLACE:
            aead.encrypt_into(streamNonce(counter, last), chunk, None, sealed[filled:end])
        else:
            sealed[filled:end] = aead.encrypt(streamNonce(counter, last), chunk, None)
        filled = end
    yield sealed[:filled]


def encryptFile(source: str, target: str, plan: Plan) -> int:
    """
    Write C{source}'s bytes, encrypted with C{plan}, to C{target} (created
    readable only by the user, truncated if it exists). Returns the
    ciphertext's size.

    @raise OSError: C{source} cannot be read, or it changed size meanwhile.
    """
    fd = os.open(target, _CREATE, 0o600)
    with open(source, "rb", buffering=0) as src, open(fd, "wb", buffering=0) as out:
        size = os.fstat(src.fileno()).st_size
        writeAll(out, plan.header + plan.nonce)
        try:
            for batch in encryptedBatches(src, size, plan):
                writeAll(out, batch)
        except EOFError:
            raise OSError(errno.EIO, "the file shrank while it was being encrypted", source)
        if src.read(1):
            raise OSError(errno.EIO, "the file grew while it was being encrypted", source)
        return out.tell()


def openHeader(f, identities: Sequence[AnyIdentity]) -> Tuple[Header, bytes]:
    """
    Read the header from C{f} and find the file key with one of
    C{identities}.

    @raise NoIdentity: none of them opens it.
    @raise NotDecryptable: it is not an age file, or its header was altered.
    """
    header = Header.read(f)
    fileKey: Optional[bytes] = None
    for identity in identities:
        fileKey = identity.unwrap(header.stanzas)
        if fileKey is not None:
            break
    if fileKey is None:
        kinds = {stanza.args[0] for stanza in header.stanzas}
        if "scrypt" in kinds and not any(isinstance(i, Passphrase) for i in identities):
            raise NoIdentity("the file is encrypted with a passphrase: give --passphrase; nothing was written")
        if "scrypt" in kinds:
            raise NoIdentity("wrong passphrase: the file does not open with it; nothing was written")
        raise NoIdentity("none of the identities given can decrypt this file "
                         "(it was encrypted to other recipients); nothing was written")
    return header, macKeyCheck(header, fileKey)


def _decryptInto(aead, nonce: bytes, chunk, into) -> None:
    """
    Decrypt C{chunk} into the writable view C{into}, exactly its size:
    in place with C{decrypt_into} (cryptography 45 and later), else
    through a new bytes object.

    @raise InvalidTag: it does not authenticate.
    """
    if _IN_PLACE:
        aead.decrypt_into(nonce, chunk, None, into)
    else:
        into[:] = aead.decrypt(nonce, chunk, None)


def decryptFile(source: str, target: str, identities: Sequence[AnyIdentity]) -> int:
    """
    Decrypt the age file C{source} into C{target} (created readable only
    by the user). C{target} is a partial file: the caller renames it into
    place only when this returns, and removes it when this raises, since
    the chunks before a bad one were written. Returns the plaintext size.

    @raise NoIdentity: none of C{identities} opens the file (nothing was
        written).
    @raise NotDecryptable: a chunk does not authenticate (tampered or cut
        off) or the file is not an age file.
    """
    with open(source, "rb") as src:
        return decryptStream(src, os.fstat(src.fileno()).st_size, identities, target)


def decryptStream(src, size: int, identities: Sequence[AnyIdentity], target: str) -> int:
    """
    L{decryptFile} from an open binary stream (C{readline}, C{read},
    C{readinto}) of C{size} bytes: a file, or one still being downloaded
    (L{ftx.client.e2e.following}).
    """
    header, fileKey = openHeader(src, identities)
    payload = size - len(header.encoded) - _NONCE
    nonce = src.read(_NONCE)
    if len(nonce) != _NONCE or payload < _TAG:
        raise NotDecryptable("the encrypted file is cut off after its header")
    tail = payload % (CHUNK + _TAG)
    if 0 < tail < _TAG or (tail == _TAG and payload > CHUNK + _TAG):
        raise NotDecryptable("the encrypted file is cut off or malformed at its end")
    aead = ChaCha20Poly1305(hkdf(fileKey, nonce, b"payload"))
    # Each chunk is decrypted in place into one reused buffer (no new
    # bytes object per chunk) and written at once, while it is still in
    # the CPU's cache: batching the writes to 1 MiB measured slower, the
    # plaintext gone cold by the time it was copied out. Only an
    # authenticated chunk is ever written: a bad one raises first.
    plain = memoryview(bytearray(CHUNK))
    fd = os.open(target, _CREATE, 0o600)
    with open(fd, "wb", buffering=0) as out:
        try:
            for counter, chunk, last in pieces(src, payload, CHUNK + _TAG):
                size = max(len(chunk) - _TAG, 0)
                try:
                    _decryptInto(aead, streamNonce(counter, last), chunk, plain[:size])
                except (InvalidTag, ValueError):
                    raise NotDecryptable(
                        "the encrypted file does not authenticate at chunk {} (byte {}): it was tampered with "
                        "or cut off; no plaintext was kept".format(counter, counter * CHUNK))
                writeAll(out, plain[:size])
        except EOFError:
            raise NotDecryptable("the encrypted file is shorter than it should be")
        return out.tell()
