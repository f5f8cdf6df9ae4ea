"""
C{put}: files, folders and globs (L{ftx.cli.uploadlist}), or standard input
(C{put - --as NAME}), with the same conflict policies as downloads.

A file already on the server is never replaced silently. Each upload first
asks the server to store it only if the name is free (the C{new} put mode,
refused before any byte is sent); when the name is taken, a file the
server lists with the same size and modification time is taken as
unchanged and skipped without hashing (uploads give the server the local
time, so a re-run finds them so; C{--verify} compares digests instead),
identical content (same size and SHA-1, which the server keeps cached) is
skipped too, and anything else is settled by C{--overwrite} /
C{--rename} / C{--skip}, a question on a terminal, or a refusal (exit 7)
otherwise. C{--rename} lets the server pick C{name (1).ext}, atomically.

A batch of several files starts with one listing of the folder they go
to, so that a re-run over files already there costs that listing and no
request per file (L{ftx.cli.unchanged}).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Dict, List, Optional

from ftx.cli import remotefolder
from ftx.cli.conflicts import RENAME, SKIP, Refused
from ftx.cli.downloads import checked
from ftx.cli.progress import humanSize
from ftx.cli.remotefiles import Tally, escapeMask
from ftx.cli.unchanged import IDENTICAL, UNCHANGED, compare
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
    verify = getattr(args, "verify", False)
    # One listing for a batch; a single file asks only if its name is taken.
    remote = _serverEntries(ctx, [name for _, name, _ in uploads]) if len(uploads) > 1 else {}
    answers = iter(compare(ctx, [(path, remote[name]) for path, name, _ in uploads if name in remote], verify))
    verdictOf = [next(answers) if name in remote else None for _, name, _ in uploads]
    ctx.reporter.startBatch("put", len(uploads), sum(size for _, _, size in uploads))
    tally = Tally(len(uploads))
    sent = skipped = refused = 0
    for (path, name, size), verdict in zip(uploads, verdictOf):
        label = shown or path
        try:
            transfer = _putOne(ctx, path, name, size, resumable and size >= _RESUME_AT, modes, resolver, verify,
                               remote.get(name), verdict)
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


def _putOne(ctx, path, name, size, resume, modes, resolver, verify=False, remote=None, verdict=None):
    """
    Upload one file; L{None} when it was skipped. C{remote} is the
    server's entry of C{name} when a listing showed one, and C{verdict}
    what L{compare} said of it.
    """
    if remote is None:
        if modes:
            try:
                return _send(ctx, path, name, size, resume, NEW)
            except AlreadyExists:
                pass
        elif not _onServer(ctx, name):
            return _send(ctx, path, name, size, resume, REPLACE)
        remote = _onServer(ctx, name)
        if remote is not None:
            [verdict] = compare(ctx, [(path, remote)], verify)
    if isinstance(verdict, FtxError):
        raise verdict
    if verdict == UNCHANGED:
        ctx.reporter.note("{} is unchanged on the server (size and time match); skipped".format(name))
        return None
    if verdict == IDENTICAL:
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


#: Folders a batch's names may spread over and still be listed one by
#: one (C{FOLDER/*}); beyond, the whole tree is listed once.
_FOLDER_LISTINGS = 16


def _serverEntries(ctx, names: List[str]) -> Dict:
    """
    The server's entries of C{names} that exist, from as few listings as
    cover them: the deepest folder holding them all, listed with what is
    below it (for a folder uploaded, exactly its files); for names at the
    top, each folder's own files. A listing that fails leaves its names
    unknown: each is then handled as without a listing.
    """
    wanted = set(names)
    folders = sorted({name.rpartition("/")[0] for name in names})
    common: List[str] = []
    for parts in zip(*(folder.split("/") for folder in folders)):
        if len(set(parts)) != 1 or not parts[0]:
            break
        common.append(parts[0])
    if common:
        masks = [escapeMask("/".join(common))]
    elif len(folders) <= _FOLDER_LISTINGS:
        masks = [escapeMask(folder) + "/*" if folder else "*" for folder in folders]
    else:
        masks = [None]
    found = {}
    for mask in masks:
        try:
            entries = ctx.call("list", mask)
        except ConnectionLost:
            raise
        except FtxError:
            continue
        found.update((entry.name, entry) for entry in entries if entry.name in wanted)
    return found
