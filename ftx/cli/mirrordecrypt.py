"""
C{ftx mirror REMOTE [LOCAL] --decrypt}: a server folder of age files
mirrored as plaintext. A remote C{NAME.age} is kept here as C{NAME}; any
other file is mirrored as it is.

The quick check cannot compare sizes as it does for plain files: the
listing gives the ciphertext's size, and the plaintext's differs by the
age header's length, which only the file itself tells. A local plaintext
counts as unchanged when its whole-second modification time is the
server's (a decrypted download is given the server's time) and the
ciphertext's size is consistent with it (L{consistentSizes}). C{--verify}
cannot compare a plaintext with the server's digest of the ciphertext, so
with C{--decrypt} every C{.age} file is fetched and decrypted again.

Each C{.age} file goes through C{sget --decrypt}'s own path, one after
the other on the mirror's one connection: no plaintext of a chunk that
fails authentication reaches the final name.
"""

from __future__ import annotations

import math
import os
import stat
from typing import Dict, Set, Tuple

from ftx.cli.keys import AGE_SUFFIX
from ftx.cli.remotefiles import Tally, keepMtime
from ftx.cli.terminal import printable
from ftx.client import localfiles, safenames
from ftx.client.results import Entry
from ftx.errors import Conflict, ConnectionLost, FtxError

__all__ = ["HEADER_MAX", "HEADER_MIN", "consistentSizes", "fetchDecrypted", "plainNames", "sameDecrypted"]

#: The age payload's nonce, and each chunk's Poly1305 tag (age's STREAM).
_NONCE = 16
_TAG = 16

#: The shortest age header: the version line (22 bytes), one stanza of a
#: one-letter type and an empty body (6), and the MAC line (48).
HEADER_MIN = len(b"age-encryption.org/v1\n") + len(b"-> a\n\n") + len(b"--- ") + 43 + 1
#: A generous bound: 64 KiB holds some three hundred X25519 stanzas.
HEADER_MAX = 64 * 1024


def consistentSizes(cipherSize: int, plainSize: int) -> bool:
    """
    Whether an age file of C{cipherSize} bytes can hold C{plainSize} bytes
    of plaintext: what is left once the nonce and one tag per 64 KiB chunk
    (at least one chunk) are taken away must be a header between
    L{HEADER_MIN} and L{HEADER_MAX} bytes.
    """
    # Here, not at the top: a mirror without --decrypt never loads the
    # cryptography stack.
    from ftx.client.e2e.stream import CHUNK

    chunks = max(1, math.ceil(plainSize / CHUNK))
    header = cipherSize - plainSize - _NONCE - _TAG * chunks
    return HEADER_MIN <= header <= HEADER_MAX


def sameDecrypted(path: str, entry: Entry) -> bool:
    """
    The quick check of a decrypted file: a regular file (not a link) whose
    whole-second modification time is the server's and whose size is
    consistent with the ciphertext's (L{consistentSizes}).
    """
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return False
    if not stat.S_ISREG(st.st_mode) or entry.mtime is None:
        return False
    return int(st.st_mtime) == entry.mtime and consistentSizes(entry.size, st.st_size)


def plainNames(remote: Dict[str, Entry], tally: Tally, reporter) -> Tuple[Dict[str, Entry], Set[str]]:
    """
    The server's files by the local name they are mirrored to, and which of
    those local names are decrypted. A C{NAME.age} beside a C{NAME} on the
    server would both land on C{NAME}: the plain file wins, the other is
    reported as a failure.
    """
    local: Dict[str, Entry] = {}
    decrypted: Set[str] = set()
    for name, entry in remote.items():
        base = name.rsplit("/", 1)[-1]
        if not name.endswith(AGE_SUFFIX) or base[:-len(AGE_SUFFIX)] in ("", ".", ".."):
            local[name] = entry
    for name, entry in remote.items():
        if name in local:
            continue
        plain = name[:-len(AGE_SUFFIX)]
        if plain in local:
            tally.failed(Conflict("{} and {} would both be {} here: not decrypted".format(
                printable(name), printable(plain), printable(plain))), reporter, name)
            continue
        local[plain] = entry
        decrypted.add(plain)
    return local, decrypted


def fetchDecrypted(ctx, local: str, transfers, identities, done, tally: Tally) -> None:
    """
    Fetch and decrypt each planned C{.age} download, one by one, into its
    confined local path, then give it the server's time (the quick check
    relies on it).
    """
    for action in transfers:
        entry = action.source
        size = 0
        try:
            path = safenames.confined(local, [part.encode("utf-8", "surrogateescape")
                                              for part in action.name.split("/")])
            try:
                localfiles.makeParents(path)
            except OSError as e:
                raise localfiles.localError(e, os.path.dirname(path))
            progress = ctx.reporter.transfer(entry.name, entry.size)
            try:
                transfer = ctx.call("sget", entry.name, path, progress, identities=identities)
                size = transfer.size
            finally:
                ctx.reporter.transferDone(size)
            keepMtime(str(transfer.path), entry.mtime)
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            tally.failed(e, ctx.reporter, action.name)
            continue
        done(action, size)
