"""
C{put}, C{sget} and C{mget} with end-to-end encryption, and C{keygen}.

L{withEncryption} wraps the plain commands: when the options ask for
encryption (C{--encrypt-to}, C{-R}, C{--passphrase}) or decryption
(C{--decrypt}) the command runs here, through the client's
C{put(..., encryptTo=...)} and C{sget(..., identities=...)}; otherwise the
plain command runs unchanged.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List

from ftx.cli.conflicts import OVERWRITE, RENAME, SKIP, Refused
from ftx.cli.keys import AGE_SUFFIX, doKeygen, identitiesFor, plainName, recipientsFor
from ftx.cli.progress import humanSize
from ftx.cli.uploadlist import collectUploads
from ftx.client import localfiles, safenames
from ftx.errors import AlreadyExists, ConnectionLost, FtxError, NotFound
from ftx.protocol import checksums

__all__ = ["withEncryption"]

# As for plain uploads: smaller ones are not worth the round trip that
# asks the server what it holds.
_RESUME_AT = 1 << 20

Command = Callable[[object, object], int]


def withEncryption(commands: Dict[str, Command]) -> Dict[str, Command]:
    """
    C{commands} with C{put}, C{sget} and C{mget} able to encrypt and
    decrypt, and C{keygen} added.
    """
    plainPut, plainSget, plainMget = commands["put"], commands["sget"], commands["mget"]

    def put(ctx, args) -> int:
        recipients = recipientsFor(args)
        return plainPut(ctx, args) if recipients is None else _putEncrypted(ctx, args, recipients)

    def sget(ctx, args) -> int:
        return _sgetDecrypted(ctx, args) if getattr(args, "decrypt", False) else plainSget(ctx, args)

    def mget(ctx, args) -> int:
        return _mgetDecrypted(ctx, args) if getattr(args, "decrypt", False) else plainMget(ctx, args)

    return dict(commands, put=put, sget=sget, mget=mget, keygen=doKeygen)


def _checked(transfer) -> str:
    return "{} {}".format(checksums.label(transfer.checksum), transfer.digest[:12])


def _raiseFirst(failures: List[FtxError], count: int) -> None:
    if failures:
        first = failures[0]
        if count == 1:
            raise first
        raise type(first)("{} of {} files failed (the first: {})".format(len(failures), count, first))


def _putEncrypted(ctx, args, recipients) -> int:
    uploads = collectUploads(args.files, args.remote)
    if not uploads:
        raise NotFound("nothing to upload: the folders are empty")
    resumable = "resume" in ctx.connection.features
    mode = _serverMode(ctx, args)
    ctx.reporter.startBatch("put", len(uploads), sum(size for _, _, size in uploads))
    failures: List[FtxError] = []
    for path, name, size in uploads:
        remote = name if args.remote is not None else name + AGE_SUFFIX
        progress = ctx.reporter.transfer(remote, size)
        try:
            transfer = ctx.call("put", path, remote, progress, resume=resumable and size >= _RESUME_AT,
                                encryptTo=recipients, **mode)
        except AlreadyExists:
            # A new ciphertext never equals the stored one, so there is no
            # "identical, skipped" here: the policy decides.
            if args.conflict == SKIP:
                ctx.reporter.note("{} is already on the server; skipped".format(remote))
                continue
            error = Refused("{} already exists on the server; nothing was sent (use --overwrite, --rename or "
                            "--skip)".format(remote))
            if len(uploads) > 1:
                ctx.reporter.error("{}: {}".format(path, error))
            failures.append(error)
            continue
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            if len(uploads) > 1:
                ctx.reporter.error("{}: {}".format(path, e))
            failures.append(e)
            continue
        finally:
            ctx.reporter.transferDone(size)
        how = "encrypted and sent" if transfer.transferred == transfer.size else "encrypted and resumed"
        ctx.reporter.note("{} {} -> {} ({} ciphertext, {})".format(
            how, path, remote, humanSize(transfer.size), _checked(transfer)))
    ctx.reporter.close()
    if len(uploads) > 1:
        ctx.reporter.note("put: {} sent, {} failed".format(len(uploads) - len(failures), len(failures)))
    _raiseFirst(failures, len(uploads))
    return 0


def _serverMode(ctx, args) -> dict:
    """
    The client's C{put} mode for the conflict option: an existing file on
    the server is replaced only with C{--overwrite} (or by a server too
    old to be asked otherwise).
    """
    from ftx.client.client import NEW, RENAME as SERVER_RENAME

    if "put-mode" not in ctx.connection.features or args.conflict == OVERWRITE:
        return {}
    return {"mode": SERVER_RENAME if args.conflict == RENAME else NEW}


def _destination(ctx, args, target: str):
    """
    Where the plaintext goes, after the conflict policy; L{None} to skip.
    """
    if os.path.isdir(target):
        raise Refused("{} is a folder here; nothing was changed".format(target))
    if not os.path.lexists(target):
        return target
    action, path = ctx.resolver(args).decide(target)
    if action == SKIP:
        ctx.reporter.note("kept the existing {}; skipped".format(target))
        return None
    if action == RENAME:
        ctx.reporter.note("{} exists; saving as {}".format(target, path))
    return path


def _fetchDecrypted(ctx, name: str, target: str, identities, size: int) -> None:
    try:
        localfiles.makeParents(target)
    except OSError as e:
        raise localfiles.localError(e, os.path.dirname(target))
    progress = ctx.reporter.transfer(name, size)
    # ctx.current stays unset: on Ctrl-C the plain message would suggest
    # 'ftx cget NAME', but what continues an encrypted download is running
    # the same 'sget --decrypt' again (it resumes the hidden ciphertext).
    try:
        transfer = ctx.call("sget", name, target, progress, identities=identities)
    finally:
        ctx.reporter.transferDone(size)
    ctx.reporter.note("received and decrypted {} -> {} ({} ciphertext, {}; every chunk authenticated)".format(
        name, transfer.path, humanSize(transfer.size), _checked(transfer)))


def _raw(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _plainSegment(segment: bytes) -> bytes:
    """
    A checked name's last segment without C{.age}, unless that would
    leave nothing usable (C{..age} is not to become C{.}).
    """
    plain = _raw(plainName(os.fsdecode(segment)))
    return segment if plain in (b"", b".", b"..") else plain


def _sgetDecrypted(ctx, args) -> int:
    identities = identitiesFor(args)
    name = ctx.name(args.name)
    # The name may come from a listing: the server's choice, checked as
    # plain downloads check it (ftx.client.safenames).
    base = [_plainSegment(safenames.baseName(_raw(name)))]
    output = args.output
    if output is None:
        target = safenames.confined("", base)
    elif os.path.isdir(output) or output.endswith(os.sep):
        target = safenames.confined(output, base)
    else:
        target = output
    target = _destination(ctx, args, target)
    if target is not None:
        _fetchDecrypted(ctx, name, target, identities, 0)
    return 0


def _mgetDecrypted(ctx, args) -> int:
    identities = identitiesFor(args)
    entries, seen, maskOf = [], set(), {}
    for mask in args.masks:
        serverMask = ctx.name(mask).rstrip("/") or None
        found = ctx.call("list", serverMask)
        if not found:
            raise NotFound("no file on the server matches {}".format(mask))
        for entry in found:
            if entry.name not in seen:
                seen.add(entry.name)
                maskOf[entry.name] = serverMask
                entries.append(entry)
    ctx.reporter.startBatch("mget", len(entries), sum(e.size for e in entries))
    failures: List[FtxError] = []
    done = skipped = 0
    for entry in entries:
        try:
            # Checked against the mask as the server sent it, then saved
            # without its .age.
            mask = maskOf[entry.name]
            segments = safenames.checked(_raw(entry.name), _raw(mask) if mask else None)
            local = safenames.confined("", segments[:-1] + [_plainSegment(segments[-1])])
            target = _destination(ctx, args, local)
            if target is None:
                skipped += 1
                continue
            _fetchDecrypted(ctx, entry.name, target, identities, entry.size)
            done += 1
        except FtxError as e:
            if isinstance(e, (ConnectionLost, Refused)):
                raise
            if len(entries) > 1:
                ctx.reporter.error("{}: {}".format(entry.name, e))
            failures.append(e)
    ctx.reporter.close()
    ctx.reporter.note("mget: {} fetched and decrypted, {} skipped, {} failed".format(done, skipped, len(failures)))
    _raiseFirst(failures, len(entries))
    return 0
