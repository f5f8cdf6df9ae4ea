"""
Encrypted uploads and decrypting downloads on top of L{FtxClient}'s plain
ones: the server only ever sees the ciphertext, and the transfer digest
covers exactly what it stores.

A fresh upload encrypts in a worker thread while it sends
(L{ftx.client.e2e.sending}); one that continues what the server holds
encrypts into a private temporary file with the saved plan, then sends
that like any other file, from the offset the server asks for. A
download fetches the ciphertext beside the target under a hidden name
(so an interrupted one continues like any other download), decrypts it
in a worker thread into the target's partial file and renames that into
place only once the last chunk authenticated.

The client reaches these through C{put(..., encryptTo=...)} and
C{sget(..., identities=...)}.
"""

from __future__ import annotations

import os
from typing import Sequence

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThreadPool

from ftx.client import compresschoice, localfiles, safenames
from ftx.client.e2e.following import Follower, startFollowing
from ftx.client.e2e.keys import toIdentity, toRecipient
from ftx.client.e2e.sending import EncryptingUpload
from ftx.client.e2e.stream import encryptedSize, encryptFile
from ftx.client.e2e.uploads import UploadState
from ftx.errors import BadOffset, IntegrityError
from ftx.protocol import checksums, wire

__all__ = ["ciphertextPath", "getDecrypted", "putEncrypted"]


def _threaded(reactor, f, *args) -> Deferred:
    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)


def putEncrypted(client, path: str, name: str, progress, resume: bool, encryptTo: Sequence, mode: str = "") -> Deferred:
    """
    Encrypt C{path} to C{encryptTo} and upload the ciphertext as C{name}.
    With C{resume}, an upload of the same file to the same recipients that
    was cut off is continued: the saved plan (file key, header, nonce)
    makes the same ciphertext again, whose prefix the server holds.
    C{mode} is the client's C{put} mode (what to do when C{name} is
    taken), empty for the default (replace), which the wire says by
    leaving the field out. Fires with the L{Transfer} of the ciphertext.
    """
    return ensureDeferred(_putEncrypted(client, path, name, progress, resume, encryptTo, mode))


async def _putEncrypted(client, path, name, progress, resume, encryptTo, mode):
    reactor = client._reactor
    recipients = [toRecipient(r) for r in encryptTo]
    try:
        os.stat(path)
    except OSError as e:
        raise localfiles.localError(e, path)
    state = UploadState(path, name, recipients)
    plan = await _threaded(reactor, state.plan, resume)
    held = (await client.partial(name))[0] if resume else 0
    if held == 0:
        # Nothing to continue from: encrypt while sending.
        transfer = await _putStreaming(client, path, name, progress, plan, mode)
        state.finished()
        return transfer
    try:
        try:
            await _threaded(reactor, encryptFile, path, state.ciphertext, plan)
        except OSError as e:
            raise localfiles.localError(e, path)
        transfer = await client.put(state.ciphertext, name, progress, resume=resume, **({"mode": mode} if mode else {}))
    finally:
        localfiles.discard(state.ciphertext)
    state.finished()
    return transfer._replace(path=path)


async def _putStreaming(client, path, name, progress, plan, mode):
    try:
        f = open(path, "rb", buffering=0)
        plainSize = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise localfiles.localError(e, path)
    size = encryptedSize(plainSize, len(plan.header))
    modeField = [mode] if mode else []
    line = wire.formatCommand("put", wire.encodeName(name), size, *modeField)
    hasher = checksums.new(client.protocol.checksum)
    request = EncryptingUpload(line, name, f, size, hasher, progress, plainSize, plan)
    try:
        # Its sender writes a plain body, and ciphertext does not compress.
        await compresschoice.switch(client.protocol, "none")
        return await client.protocol.request(request)
    finally:
        f.close()


def ciphertextPath(target: str) -> str:
    """
    Where the ciphertext of a download to C{target} waits to be decrypted:
    a hidden file beside it. Its own partial file is what a resumed
    download continues.
    """
    head, tail = os.path.split(target)
    return os.path.join(head, "." + tail + ".ftx-age")


def getDecrypted(client, name: str, target: str, progress, identities: Sequence) -> Deferred:
    """
    Download C{name} (age ciphertext) and write its plaintext to
    C{target}. An interrupted earlier attempt is continued. Fires with the
    L{Transfer} of the ciphertext, its C{path} set to C{target}.
    """
    return ensureDeferred(_getDecrypted(client, name, target, progress, [toIdentity(i) for i in identities]))


async def _getDecrypted(client, name, target, progress, identities):
    reactor = client._reactor
    cipher = ciphertextPath(target)
    # The hidden ciphertext and its partial file, like any partial file,
    # must not be local links leading elsewhere.
    safenames.confined(os.path.dirname(cipher), [os.fsencode(os.path.basename(cipher))])
    partial = localfiles.partialPath(target)
    transfer = None
    try:
        if os.path.exists(localfiles.partialPath(cipher)):
            try:
                transfer = await _fetchFollowing(reactor, client.cget, name, cipher, partial, progress, identities)
            except (IntegrityError, BadOffset):
                # What an earlier attempt left no longer matches the server's
                # file: start over.
                localfiles.discard(localfiles.partialPath(cipher))
        if transfer is None:
            transfer = await _fetchFollowing(reactor, client.sget, name, cipher, partial, progress, identities)
        os.replace(partial, target)
    except BaseException:
        localfiles.discard(partial)
        raise
    return transfer._replace(path=target)


async def _fetchFollowing(reactor, fetch, name, cipher, partial, progress, identities):
    """
    Download C{name} into C{cipher} with C{fetch} (the client's C{sget} or
    C{cget}) while a L{Follower} decrypts it into C{partial}. Fires with
    the transfer once both are done; the ciphertext is then removed, but
    kept (as its partial file) when the download itself failed.
    """
    follower = Follower(localfiles.partialPath(cipher), cipher, partial, identities)
    started = []

    def sized(fileName, done, total):
        # Started once the file's header arrived, not before: a cget first
        # hashes the local part in the same thread pool, which a waiting
        # follower must not hold up.
        if not started:
            started.append(startFollowing(reactor, follower))
        follower.sized(total)
        if progress is not None:
            progress(fileName, done, total)

    try:
        transfer = await fetch(name, cipher, sized)
    except BaseException:
        follower.cancel()
        for decrypting in started:
            try:
                await decrypting
            except Exception:
                pass
        raise
    follower.downloaded(os.path.getsize(cipher))
    try:
        await (started[0] if started else startFollowing(reactor, follower))
    finally:
        localfiles.discard(cipher)
    return transfer
