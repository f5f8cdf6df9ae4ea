"""
Removing and creating on the server: C{delete} (names, masks, and folders
with C{-r}) and C{mkdir}.

C{delete} goes on past a name that is missing or refused, reporting each,
and ends with the first failure's status (4 when something was missing),
as C{rm} does.
"""

from __future__ import annotations

from ftx.cli.remotefiles import Tally, folderForm, hasWildcard, lookUp, useR
from ftx.errors import Conflict, ConnectionLost, FtxError, NotFound

__all__ = ["doDelete", "doMkdir"]


def doDelete(ctx, args) -> int:
    recursive = getattr(args, "recursive", False)
    tally = Tally(len(args.names))
    deleted = 0
    for text in args.names:
        name, folder = folderForm(ctx.name(text))
        try:
            if hasWildcard(name) and not folder:
                names = [e.name for e in ctx.call("list", name)]
                if not names:
                    raise NotFound("no file on the server matches {}".format(name))
                tally.count += len(names) - 1
            else:
                names = [name]
            for one in names:
                deleted += _deleteOne(ctx, one, folder, recursive, tally)
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            tally.failed(e, ctx.reporter)
    if tally.count > 1:
        ctx.reporter.note("delete: {} deleted, {} failed".format(deleted, len(tally.failures)))
    tally.finish()
    return 0


def _deleteOne(ctx, name: str, folder: bool, recursive: bool, tally: Tally) -> int:
    """
    Delete the file C{name}, or with C{recursive} the folder; a failure of
    one name among several is reported and counted, not raised.
    """
    try:
        if not name:
            raise useR("delete", name) if not recursive else Conflict("the root folder itself cannot be removed")
        if folder or recursive:
            entry, below = lookUp(ctx, name)
            if entry is not None and folder:
                # Destructive, so strict: "a.txt/" names a folder, as rm says.
                raise NotFound("no such folder: {} (it is a file)".format(name))
            if entry is None:
                if not recursive:
                    raise useR("delete", name)
                count = ctx.call("rmtree", name)
                ctx.reporter.note("deleted folder {} ({} files)".format(name, count))
                return 1
        try:
            ctx.call("delete", name)
        except Conflict as e:
            if not str(e).startswith("is a directory"):
                raise
            raise useR("delete", name)
        ctx.reporter.note("deleted {}".format(name))
        return 1
    except FtxError as e:
        if isinstance(e, ConnectionLost):
            raise
        tally.failed(e, ctx.reporter)
        return 0


def doMkdir(ctx, args) -> int:
    tally = Tally(len(args.names))
    for text in args.names:
        name, _ = folderForm(ctx.name(text))
        try:
            ctx.call("mkdir", name)
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            tally.failed(e, ctx.reporter)
            continue
        ctx.reporter.note("created folder {}".format(name))
    tally.finish()
    return 0
