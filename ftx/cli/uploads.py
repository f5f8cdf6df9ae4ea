"""
C{put}: files, folders and globs (L{ftx.cli.uploadlist}), or standard input
(C{put - --as NAME}), with the same conflict policies as downloads.

A file already on the server is never replaced silently. Each upload first
asks the server to store it only if the name is free (the C{new} put mode,
refused before any byte is sent); when the name is taken, identical
content (same size and SHA-1, which the server keeps cached) is skipped,
and anything else is settled by C{--overwrite} / C{--rename} / C{--skip},
a question on a terminal, or a refusal (exit 7) otherwise. C{--rename}
lets the server pick C{name (1).ext}, atomically.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Optional

from ftx.cli import remotefolder
from ftx.cli.conflicts import RENAME, SKIP, Refused
from ftx.cli.downloads import checked
from ftx.cli.progress import humanSize
from ftx.cli.remotefiles import Tally, escapeMask, localSha1
from ftx.cli.uploadlist import collectUploads
from ftx.client.client import NEW
from ftx.client.client import RENAME as SERVER_RENAME
from ftx.client.client import REPLACE
from ftx.errors import AlreadyExists, BadRequest, ConnectionLost, FtxError, NotFound

__all__ = ["doPut"]

# Uploads at least this big first ask the server whether it holds part of
# them from an interrupted attempt; for smaller ones the extra round trip
# costs more than it could save.
_RESUME_AT = 1 << 20
STDIN = "-"


def doPut(ctx, args) -> int:
    if STDIN in args.files:
        return _putStdin(ctx, args)
    uploads = collectUploads(args.files, args.remote)
    if not uploads:
        raise NotFound("nothing to upload: the folders are empty")
    return _putAll(ctx, args, uploads)


def _putStdin(ctx, args) -> int:
    """
    Standard input has no size until it ends, and a C{put} announces its
    size before the body: spool it to a temporary file first (said on
    stderr), then send that like any file.
    """
    if args.files != [STDIN] or not args.remote:
        raise BadRequest("'put -' reads standard input and needs a name: ftx put - --as NAME")
    folder = tempfile.mkdtemp(prefix="ftx-stdin-")
    try:
        path = os.path.join(folder, "stdin")
        ctx.reporter.note("reading standard input into a temporary file before sending (the size must be known first)")
        with open(path, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        size = os.path.getsize(path)
        return _putAll(ctx, args, [(path, args.remote, size)], shown="standard input")
    finally:
        shutil.rmtree(folder, True)


def _putAll(ctx, args, uploads, shown: Optional[str] = None) -> int:
    # The remote working folder (ftx://HOST/FOLDER, the shell's cd).
    uploads = [(path, remotefolder.join(getattr(args, "folder", ""), name), size) for path, name, size in uploads]
    resolver = ctx.resolver(args)
    modes = "put-mode" in ctx.connection.features
    resumable = "resume" in ctx.connection.features
    ctx.reporter.startBatch("put", len(uploads), sum(size for _, _, size in uploads))
    tally = Tally(len(uploads))
    sent = skipped = refused = 0
    for path, name, size in uploads:
        label = shown or path
        try:
            transfer = _putOne(ctx, path, name, size, resumable and size >= _RESUME_AT, modes, resolver)
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            refused += isinstance(e, Refused)
            tally.failed(e, ctx.reporter, label)
            continue
        if transfer is None:
            skipped += 1
            continue
        sent += 1
        how = "sent" if transfer.transferred == transfer.size else "resumed"
        renamed = " (renamed: {} was taken)".format(name) if transfer.name != name else ""
        ctx.reporter.note("{} {} -> {} ({}, {}){}".format(
            how, label, transfer.name, humanSize(size), checked(transfer), renamed))
    ctx.reporter.close()
    if len(uploads) > 1:
        ctx.reporter.note("put: {} sent, {} failed{}{}".format(
            sent, len(tally.failures) - refused, ", {} skipped".format(skipped) if skipped else "",
            ", {} refused".format(refused) if refused else ""))
    tally.finish()
    return 0


def _localMtime(path: str) -> Optional[int]:
    """
    The modification time the server is to give the file (whole seconds),
    as downloads keep the server's: then size and time say on both sides
    that a file is unchanged (L{ftx.cli.quickcheck}).
    """
    try:
        return int(os.stat(path).st_mtime)
    except (OSError, OverflowError):
        return None


def _send(ctx, path: str, name: str, size: int, resume: bool, mode: str):
    progress = ctx.reporter.transfer(name, size)
    done = 0
    try:
        transfer = ctx.call("put", path, name, progress, resume=resume, mode=mode, mtime=_localMtime(path))
        done = size
        return transfer
    finally:
        # A refused attempt is tried again: the batch bar counts it once.
        ctx.reporter.transferDone(done)


def _putOne(ctx, path, name, size, resume, modes, resolver):
    """
    Upload one file; L{None} when it was skipped.
    """
    if modes:
        try:
            return _send(ctx, path, name, size, resume, NEW)
        except AlreadyExists:
            pass
    elif not _onServer(ctx, name):
        return _send(ctx, path, name, size, resume, REPLACE)
    remote = _onServer(ctx, name)
    if remote is not None and remote.size == size and localSha1(path) == ctx.call("hash", name):
        ctx.reporter.note("{} is already on the server and identical; skipped".format(name))
        return None
    action, _ = resolver.decide(name, remote=True)
    if action == SKIP:
        ctx.reporter.note("kept the server's {}; skipped".format(name))
        return None
    if action == RENAME and not modes:
        raise BadRequest("this server cannot pick a free name (it lacks the put-mode feature)")
    mode = SERVER_RENAME if action == RENAME else REPLACE
    return _send(ctx, path, name, size, resume, mode)


def _onServer(ctx, name: str):
    for entry in ctx.call("list", escapeMask(name)):
        if entry.name == name:
            return entry
    return None
