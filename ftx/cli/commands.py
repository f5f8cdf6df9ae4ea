"""
The commands of the C{ftx} command line, shared by one-shot use and the
interactive shell.

Each command takes a L{Context} and the parsed arguments, prints its
results on stdout and its notes on stderr (through the L{Reporter}), and
returns an exit status or raises an L{ftx.errors.FtxError}. They run in the
main thread and wait for the reactor thread (see L{ftx.cli.reactorthread}).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Dict, List, Optional, Set

from ftx.cli.conflicts import RENAME, SKIP, Refused, Resolver
from ftx.cli.encrypted import withEncryption
from ftx.cli.progress import Reporter, humanSize, isTerminal
from ftx.cli.terminal import printable
from ftx.cli.uploadlist import collectUploads
from ftx.client import localfiles, safenames
from ftx.client.results import Entry
from ftx.errors import (
    BadOffset,
    BadRequest,
    ConnectionLost,
    FtxError,
    IntegrityError,
    NotFound,
)
from ftx.protocol import checksums
from ftx.protocol.wire import nameText

__all__ = ["Context", "COMMANDS"]

# Uploads at least this big first ask the server whether it holds part of
# them from an interrupted attempt; for smaller ones the extra round trip
# costs more than it could save.
_RESUME_AT = 1 << 20
_READ = 1 << 20


class Context:
    """
    What a command works with: the connection, the reporter, and the last
    listing (the shell numbers it so that C{sget 3} means its third entry).
    """

    def __init__(self, connection, reporter: Reporter, numbered: bool = False) -> None:
        self.connection = connection
        self.reporter = reporter
        self.numbered = numbered
        self.listing: List[Entry] = []
        #: The download in progress, for the message when it is interrupted.
        self.current: Optional[str] = None

    def call(self, method: str, *args, **kwargs):
        return self.connection.call(method, *args, **kwargs)

    def name(self, text: str) -> str:
        """
        A name as typed; in the shell a bare number picks an entry of the
        last listing.
        """
        if self.numbered and text.isdigit() and self.listing:
            index = int(text)
            if not 1 <= index <= len(self.listing):
                raise BadRequest("there is no entry {} in the last listing (1-{})".format(index, len(self.listing)))
            return self.listing[index - 1].name
        return text

    def resolver(self, args) -> Resolver:
        interactive = isTerminal(sys.stdin)
        return Resolver(args.conflict, interactive, paused=self.reporter.paused)


def _escapeMask(name: str) -> str:
    return "".join("[{}]".format(c) if c in "*?[" else c for c in name)


def _stat(ctx: Context, name: str) -> Entry:
    for entry in ctx.call("list", _escapeMask(name)):
        if entry.name == name:
            return entry
    raise NotFound("no such file on the server: {}".format(name))


def localSha1(path: str) -> str:
    hasher = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_READ), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _localSize(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


# -- list, hash, delete, df ---------------------------------------------------


def doList(ctx: Context, args) -> int:
    # "photos/" as a user types it for a folder; the wire wants "photos".
    mask = args.mask.rstrip("/") if args.mask else None
    entries = ctx.call("list", mask or None)
    ctx.listing = entries
    if args.json:
        print(json.dumps([{"name": e.name, "size": e.size, "mtime": e.mtime} for e in entries], indent=2))
        return 0
    human = [humanSize(e.size) for e in entries]
    hw = max([len(h) for h in human] + [1])
    ew = max([len(str(e.size)) for e in entries] + [1])
    nw = len(str(len(entries)))
    for i, (entry, h) in enumerate(zip(entries, human), 1):
        number = "{:>{}}  ".format(i, nw) if ctx.numbered else ""
        print("{}{:>{}}  {:>{}}  {}".format(number, h, hw, entry.size, ew, printable(entry.name)))
    total = sum(e.size for e in entries)
    files = "1 file" if len(entries) == 1 else "{} files".format(len(entries))
    ctx.reporter.note("{}, {} ({} bytes)".format(files, humanSize(total), total))
    return 0


def doHash(ctx: Context, args) -> int:
    name, length = ctx.name(args.name), args.length
    if length is None and ":" in name:
        head, _, tail = name.rpartition(":")
        if tail.isdigit() and head:
            name, length = head, tail
    if length is not None:
        if not str(length).isdigit():
            raise BadRequest("LENGTH must be a whole number of bytes: {!r}".format(length))
        length = int(length)
    digest = ctx.call("hash", name, length)
    print("{}  {}".format(printable(digest), printable(name)))
    return 0


def doDelete(ctx: Context, args) -> int:
    for text in args.names:
        name = ctx.name(text)
        ctx.call("delete", name)
        ctx.reporter.note("deleted {}".format(name))
    return 0


def doDf(ctx: Context, args) -> int:
    if args.udp:
        space = _udpDf(ctx, args)
    else:
        space = ctx.call("df")
    used = max(space.total - space.free, 0)
    if args.json:
        print(json.dumps({"total": space.total, "free": space.free, "used": used}))
        return 0
    rows = [("total", space.total), ("used", used), ("free", space.free)]
    hw = max(len(humanSize(v)) for _, v in rows)
    ew = max(len(str(v)) for _, v in rows)
    for label, value in rows:
        print("{:<5}  {:>{}}  {:>{}}".format(label, humanSize(value), hw, value, ew))
    return 0


def _udpDf(ctx: Context, args):
    from twisted.internet.error import ConnectionRefusedError

    from ftx.client.udp import NoAnswer, hostAndPort, queryDiskSpace

    connection = ctx.connection
    try:
        host, port = hostAndPort(connection.address)
    except ValueError as e:
        raise BadRequest(str(e))
    if args.udp_port is not None:
        port = args.udp_port
    runner = connection.runner
    try:
        return runner.call(lambda: queryDiskSpace(runner.reactor, host, port))
    except ConnectionRefusedError:
        raise NoAnswer("nothing answers on UDP {}:{} (is the server started with --udp-port?)".format(host, port))


# -- downloads ------------------------------------------------------------


def _plan(ctx: Context, resolver: Resolver, name: str, target: str, size: Optional[int], resume: bool):
    """
    How to fetch C{name} into C{target}: C{("sget"|"cget", path)}, or
    L{None} when nothing needs doing (an identical copy is here, or the
    user chose to keep the existing file).
    """
    partial = localfiles.partialPath(target)
    if resume and os.path.isfile(partial) and (size is None or (_localSize(partial) or 0) <= size):
        return "cget", target
    if not os.path.lexists(target):
        return "sget", target
    if os.path.isdir(target):
        raise Refused("{} is a folder here; nothing was changed".format(target))
    if size is None:
        size = _stat(ctx, name).size
    if _localSize(target) == size and localSha1(target) == ctx.call("hash", name):
        ctx.reporter.note("{} is already here and identical; skipped".format(target))
        return None
    action, path = resolver.decide(target)
    if action == SKIP:
        ctx.reporter.note("kept the existing {}; skipped".format(target))
        return None
    if action == RENAME:
        ctx.reporter.note("{} exists; saving as {}".format(target, path))
    return "sget", path


def _prepare(path: str) -> None:
    """
    Create the folders a download needs, so that a local problem shows
    as a clear error here rather than in the middle of a transfer.
    """
    try:
        localfiles.makeParents(path)
    except OSError as e:
        raise localfiles.localError(e, os.path.dirname(path))
    directory = os.path.dirname(path) or "."
    if not os.access(directory, os.W_OK):
        raise localfiles.localError(PermissionError(13, "Permission denied"), directory)


def _fetch(ctx: Context, name: str, action: str, path: str, size: int):
    _prepare(path)
    progress = ctx.reporter.transfer(name, size)
    ctx.current = name
    try:
        if action == "cget":
            try:
                transfer = ctx.call("cget", name, path, progress)
            except (IntegrityError, BadOffset):
                ctx.reporter.note("the partial copy of {} no longer matches the server's file; starting over".format(name))
                transfer = ctx.call("sget", name, path, progress)
        else:
            transfer = ctx.call("sget", name, path, progress)
    except Exception:
        # Not on KeyboardInterrupt: the message on leaving names the file.
        ctx.current = None
        raise
    finally:
        ctx.reporter.transferDone(size)
    ctx.current = None
    _noteReceived(ctx, transfer)
    return transfer


def _checked(transfer) -> str:
    """
    The checksum and the start of the digest a transfer was checked by.
    """
    return "{} {}".format(checksums.label(transfer.checksum), transfer.digest[:12])


def _noteReceived(ctx: Context, transfer) -> None:
    how = "continued" if transfer.transferred < transfer.size else "received"
    ctx.reporter.note(
        "{} {} -> {} ({}, {})".format(how, transfer.name, transfer.path, humanSize(transfer.size), _checked(transfer))
    )


def _target(output: Optional[str], name: str) -> str:
    # The name may come from a listing: the server's choice, checked.
    base = [safenames.baseName(_raw(name))]
    if output is None:
        return safenames.confined("", base)
    if os.path.isdir(output) or output.endswith(os.sep):
        return safenames.confined(output, base)
    return output


def doSget(ctx: Context, args) -> int:
    name = ctx.name(args.name)
    target = _target(args.output, name)
    plan = _plan(ctx, ctx.resolver(args), name, target, None, resume=False)
    if plan is not None:
        _fetch(ctx, name, plan[0], plan[1], 0)
    return 0


def doCget(ctx: Context, args) -> int:
    name = ctx.name(args.name)
    target = _target(args.output, name)
    try:
        _cgetStrict(ctx, name, target)
    except IntegrityError:
        raise IntegrityError(
            "the local copy of {} does not match the start of the server's file (did it change?); "
            "nothing was changed; 'ftx sget --overwrite {}' downloads it again".format(name, name)
        )
    except BadOffset:
        raise BadOffset("the local copy of {} is longer than the server's file; nothing was changed".format(name))
    return 0


def _cgetStrict(ctx: Context, name: str, target: str) -> None:
    _prepare(target)
    progress = ctx.reporter.transfer(name, 0)
    ctx.current = name
    try:
        transfer = ctx.call("cget", name, target, progress)
    except Exception:
        ctx.current = None
        raise
    finally:
        ctx.reporter.transferDone(0)
    ctx.current = None
    if transfer.transferred == 0:
        ctx.reporter.note("{} was already complete ({}, {})".format(target, humanSize(transfer.size), _checked(transfer)))
    else:
        ctx.reporter.note("continued {} -> {} ({} of {} fetched, {})".format(
            name, transfer.path, humanSize(transfer.transferred), humanSize(transfer.size), _checked(transfer)))


def doMget(ctx: Context, args) -> int:
    entries, seen, matched, maskOf = [], set(), [], {}
    for mask in args.masks:
        serverMask = ctx.name(mask).rstrip("/") or None
        found = ctx.call("list", serverMask)
        if not found:
            raise NotFound("no file on the server matches {}".format(mask))
        matched.append((serverMask, found))
        for entry in found:
            if entry.name not in seen:
                seen.add(entry.name)
                maskOf[entry.name] = serverMask
                entries.append(entry)
    resolver = ctx.resolver(args)
    plans, failures = [], []
    for entry in entries:
        try:
            mask = maskOf[entry.name]
            target = localfiles.localPath("", _raw(entry.name), _raw(mask) if mask else None)
            plan = _plan(ctx, resolver, entry.name, target, entry.size, resume=True)
        except Refused:
            raise
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            if len(entries) > 1:
                ctx.reporter.error("{}: {}".format(entry.name, e))
            failures.append(e)
            continue
        if plan is not None:
            plans.append((entry, plan))
    planFailures = len(failures)
    ctx.reporter.startBatch("mget", len(plans), sum(e.size for e, _ in plans))
    fetched = _fetchTogether(ctx, matched, plans, failures)
    done = len(fetched)
    for entry, (action, path) in plans:
        if entry.name in fetched:
            continue
        try:
            _fetch(ctx, entry.name, action, path, entry.size)
            done += 1
        except FtxError as e:
            if isinstance(e, (ConnectionLost, Refused)):
                raise
            if len(entries) > 1:
                ctx.reporter.error("{}: {}".format(entry.name, e))
            failures.append(e)
    ctx.reporter.close()
    skipped = len(entries) - len(plans) - planFailures
    ctx.reporter.note("mget: {} fetched, {} skipped, {} failed".format(done, skipped, len(failures)))
    _raiseFirst(failures, len(entries))
    return 0


def _fetchTogether(ctx: Context, matched, plans, failures: List[FtxError]) -> Set[str]:
    """
    Fetch the planned plain downloads of each mask with one server C{mget},
    rather than a request and an answer per file: for a thousand small
    files that is the difference between seconds and a fraction of one.
    A mask is fetched this way only when nearly everything it matches is
    wanted, since the server sends every match and the rest is dropped.
    Returns the names fetched; anything else (resumes, files that failed
    here) is left for the one-by-one path, which reports each failure. A
    name the server sends without having listed it is refused (and added
    to C{failures}) when it is unsafe, and dropped when it is not.
    """
    listed = {entry.name for _, found in matched for entry in found}
    planned = {entry.name: (entry, action, path) for entry, (action, path) in plans}
    fetched: Set[str] = set()
    for serverMask, found in matched:
        wanted: Dict[str, str] = {}
        unwanted = 0
        for entry in found:
            plan = planned.get(entry.name)
            if plan is not None and plan[1] == "sget" and entry.name not in fetched:
                wanted[entry.name] = plan[2]
            else:
                unwanted += entry.size
        wantedBytes = sum(planned[name][0].size for name in wanted)
        if len(wanted) < 2 or unwanted > max(wantedBytes // 10, 1 << 20):
            continue
        for path in wanted.values():
            _prepare(path)
        bars: Dict[str, object] = {}

        def accept(name: str, size: int):
            return wanted.get(name, False)

        def progress(name: str, done: int, total: int) -> None:
            if name not in wanted:
                return
            if name not in bars:
                ctx.current = name
                bars[name] = ctx.reporter.transfer(name, total)
            update = bars[name]
            if update is not None:
                update(name, done, total)

        def received(transfer) -> None:
            fetched.add(transfer.name)
            bars.pop(transfer.name, None)
            ctx.reporter.transferDone(transfer.size)
            _noteReceived(ctx, transfer)

        def refused(error) -> None:
            # Listed names were checked, and reported, when planned.
            if nameText(error.name or b"") not in listed:
                ctx.reporter.error(str(error))
                failures.append(error)

        try:
            ctx.call("mget", serverMask or "*", ".", progress, accept, received, refused)
        except ConnectionLost:
            raise
        except FtxError:
            # Whatever did not arrive is fetched again one by one below,
            # where each failure is reported on its own.
            pass
        finally:
            ctx.current = None
        if bars:
            # Started but not finished: off the screen, not counted as done.
            ctx.reporter.transferDone(0)
    return fetched


def _raw(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _raiseFirst(failures: List[FtxError], count: int) -> None:
    """
    Each failure was reported as it happened; end with one line that
    carries the first one's class, hence its exit status.
    """
    if failures:
        first = failures[0]
        if count == 1:
            raise first
        raise type(first)("{} of {} files failed (the first: {})".format(len(failures), count, first))


# -- uploads --------------------------------------------------------------


def doPut(ctx: Context, args) -> int:
    uploads = collectUploads(args.files, args.remote)
    if not uploads:
        raise NotFound("nothing to upload: the folders are empty")
    resumable = "resume" in ctx.connection.features
    ctx.reporter.startBatch("put", len(uploads), sum(size for _, _, size in uploads))
    failures = []
    for path, name, size in uploads:
        progress = ctx.reporter.transfer(name, size)
        try:
            transfer = ctx.call("put", path, name, progress, resume=resumable and size >= _RESUME_AT)
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            if len(uploads) > 1:
                ctx.reporter.error("{}: {}".format(path, e))
            failures.append(e)
            continue
        finally:
            ctx.reporter.transferDone(size)
        how = "sent" if transfer.transferred == transfer.size else "resumed"
        ctx.reporter.note("{} {} -> {} ({}, {})".format(how, path, name, humanSize(size), _checked(transfer)))
    ctx.reporter.close()
    if len(uploads) > 1:
        ctx.reporter.note("put: {} sent, {} failed".format(len(uploads) - len(failures), len(failures)))
    _raiseFirst(failures, len(uploads))
    return 0


COMMANDS = {
    "list": doList,
    "sget": doSget,
    "cget": doCget,
    "mget": doMget,
    "hash": doHash,
    "put": doPut,
    "delete": doDelete,
    "df": doDf,
}
# put --encrypt-to, sget/mget --decrypt, keygen (end-to-end encryption).
COMMANDS = withEncryption(COMMANDS)
