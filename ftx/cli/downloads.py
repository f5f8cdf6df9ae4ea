"""
The download commands: C{sget} (a file, a folder with C{-r}, or to stdout
with C{-o -}), C{cget}, and C{mget} (masks, folders with C{-r}).

Every download lands under a hidden partial name and takes its own only
once checked; it then gets the server's modification time. Running the
same download again continues a partial file after the server has checked
its prefix, as C{wget -c} does; a local file in the way is handled by the
conflict policy (L{ftx.cli.conflicts}); a batch goes on past a file that
fails or is refused and ends with a summary and the first failure's
status.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Set

from ftx.cli.conflicts import RENAME, SKIP, Refused, Resolver
from ftx.cli.progress import humanSize
from ftx.cli.remotefiles import Tally, folderForm, hasWildcard, keepMtime, lookUp, useR
from ftx.cli.unchanged import IDENTICAL, UNCHANGED, compare
from ftx.client import localfiles, safenames
from ftx.client.results import Entry
from ftx.errors import BadOffset, BadRequest, Conflict, ConnectionLost, FtxError, IntegrityError, NotFound
from ftx.protocol import checksums
from ftx.protocol.names import matches
from ftx.protocol.wire import nameText

__all__ = ["doSget", "doCget", "doMget", "checked"]

#: C{-o -}: the file goes to standard output.
STDOUT = "-"


def _localSize(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _plan(ctx, resolver: Resolver, entry: Entry, target: str, verdict=None):
    """
    How to fetch C{entry} into C{target}: C{("sget"|"cget", path)}, or
    L{None} when nothing needs doing (the file here is unchanged or
    identical, as C{verdict} from L{ftx.cli.unchanged.compare} says, or the
    user chose to keep the existing file). A partial file no longer than
    the server's is continued.
    """
    if verdict == UNCHANGED:
        # (A regular file, as the quick check found: nothing more to look at.)
        ctx.reporter.note("{} is unchanged (size and time match the server's); skipped".format(target))
        return None
    if verdict == IDENTICAL:
        # (A regular file, its digest just compared: nothing more to look at.)
        ctx.reporter.note("{} is already here and identical; skipped".format(target))
        keepMtime(target, entry.mtime)
        return None
    partial = localfiles.partialPath(target)
    resumable = os.path.isfile(partial) and (_localSize(partial) or 0) <= entry.size
    if not os.path.lexists(target):
        return ("cget" if resumable else "sget"), target
    if os.path.isdir(target):
        raise Refused("{} is a folder here; nothing was changed".format(target))
    if isinstance(verdict, FtxError):
        raise verdict
    # A partial download does not make the file in the way ours to replace.
    action, path = resolver.decide(target)
    if action == SKIP:
        ctx.reporter.note("kept the existing {}; skipped".format(target))
        return None
    if action == RENAME:
        ctx.reporter.note("{} exists; saving as {}".format(target, path))
        return "sget", path
    return ("cget" if resumable else "sget"), path


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


def _fetch(ctx, entry: Entry, action: str, path: str):
    _prepare(path)
    name = entry.name
    progress = ctx.reporter.transfer(name, entry.size)
    ctx.downloading(name, path)
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
        ctx.downloading(None)
        raise
    finally:
        ctx.reporter.transferDone(entry.size)
    ctx.downloading(None)
    keepMtime(transfer.path, entry.mtime)
    _noteReceived(ctx, transfer)
    return transfer


def checked(transfer) -> str:
    """
    The checksum and the start of the digest a transfer was checked by.
    """
    return "{} {}".format(checksums.label(transfer.checksum), transfer.digest[:12])


def _noteReceived(ctx, transfer, where: Optional[str] = None) -> None:
    how = "continued" if transfer.transferred < transfer.size else "received"
    ctx.reporter.note("{} {} -> {} ({}, {})".format(
        how, transfer.name, where or transfer.path, humanSize(transfer.size), checked(transfer)))


def _raw(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _target(output: Optional[str], name: str) -> str:
    # The name may come from a listing: the server's choice, checked.
    base = [safenames.baseName(_raw(name))]
    if output is None:
        return safenames.confined("", base)
    if os.path.isdir(output) or output.endswith(os.sep):
        return safenames.confined(output, base)
    return output


def _file(ctx, command: str, text: str) -> Entry:
    """
    The file C{text} names on the server.

    @raise BadRequest: it is a folder (C{-r} was not given).
    @raise NotFound: it is neither.
    """
    name, folder = folderForm(text)
    entry, below = lookUp(ctx, name)
    if entry is None and (below or folder):
        raise useR(command, name)
    if entry is None:
        raise NotFound("no such file on the server: {}".format(name))
    return entry


def doSget(ctx, args) -> int:
    text = ctx.name(args.name)
    if args.output == STDOUT and (getattr(args, "recursive", False) or getattr(args, "resume", False)):
        raise BadRequest("-o - writes one whole file to stdout; it cannot go with -r or -c")
    if getattr(args, "recursive", False):
        return _sgetTree(ctx, args, text)
    entry = _file(ctx, "sget", text)
    if args.output == STDOUT:
        return _toStdout(ctx, entry)
    if getattr(args, "resume", False):
        return _cget(ctx, entry, _target(args.output, entry.name))
    target = _target(args.output, entry.name)
    [verdict] = compare(ctx, [(target, entry)], getattr(args, "verify", False))
    plan = _plan(ctx, ctx.resolver(args), entry, target, verdict)
    if plan is not None:
        _fetch(ctx, entry, plan[0], plan[1])
    return 0


#: The status of a command whose reader went away, as C{ls | head} gives.
EXIT_PIPE_CLOSED = 128 + 13


class _Pipe:
    """
    Stdout for a streamed download, written from a worker thread. When the
    reader goes away (C{| head}) the rest is not wanted: the connection is
    dropped rather than the file read to its end for nobody.
    """

    def __init__(self, out, whenClosed) -> None:
        self.out = out
        self.whenClosed = whenClosed
        self.closed = False

    def write(self, data) -> None:
        if self.closed:
            return
        try:
            self.out.write(data)
        except BrokenPipeError:
            self._close()

    def flush(self) -> None:
        if not self.closed:
            try:
                self.out.flush()
            except BrokenPipeError:
                self._close()

    def _close(self) -> None:
        self.closed = True
        self.whenClosed()


def _toStdout(ctx, entry: Entry) -> int:
    """
    Write the file to stdout as it arrives, like C{curl}: the digest is
    checked at the end, and a mismatch or a cut-off connection gives a
    non-zero status (6 or 8) after the bytes went out; a pipeline checks
    it (C{set -o pipefail}). A reader that stops early ends the command
    quietly.
    """
    sys.stdout.flush()
    client, reactor = ctx.connection.client, ctx.connection.runner.reactor
    pipe = _Pipe(sys.stdout.buffer, lambda: reactor.callFromThread(client.protocol.transport.abortConnection))
    progress = ctx.reporter.transfer(entry.name, entry.size)
    try:
        transfer = ctx.call("sget", entry.name, "stdout", progress, stream=pipe)
    except FtxError:
        if not pipe.closed:
            raise
    finally:
        ctx.reporter.transferDone(entry.size)
    if pipe.closed:
        # Nothing more can reach stdout, not even Python's flush on exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE_CLOSED
    _noteReceived(ctx, transfer)
    return 0


def doCget(ctx, args) -> int:
    entry = _file(ctx, "cget", ctx.name(args.name))
    return _cget(ctx, entry, _target(args.output, entry.name))


def _cget(ctx, entry: Entry, target: str) -> int:
    name = entry.name
    try:
        _prepare(target)
        progress = ctx.reporter.transfer(name, 0)
        ctx.downloading(name, target)
        try:
            transfer = ctx.call("cget", name, target, progress)
        except Exception:
            ctx.downloading(None)
            raise
        finally:
            ctx.reporter.transferDone(0)
    except IntegrityError:
        raise IntegrityError(
            "the local copy of {} does not match the start of the server's file (did it change?); "
            "nothing was changed; 'ftx sget --overwrite {}' downloads it again".format(name, name)
        )
    except BadOffset:
        raise BadOffset("the local copy of {} is longer than the server's file; nothing was changed".format(name))
    ctx.downloading(None)
    keepMtime(transfer.path, entry.mtime)
    if transfer.transferred == 0:
        ctx.reporter.note("{} was already complete ({}, {})".format(target, humanSize(transfer.size), checked(transfer)))
    else:
        ctx.reporter.note("continued {} -> {} ({} of {} fetched, {})".format(
            name, transfer.path, humanSize(transfer.transferred), humanSize(transfer.size), checked(transfer)))
    return 0


def _sgetTree(ctx, args, text: str) -> int:
    """
    C{sget -r}: a folder and everything below it, into a local folder of
    the same name (or C{-o}), as C{cp -r} would; a file is fetched as
    without C{-r}.
    """
    name, _ = folderForm(text)
    entry, below = lookUp(ctx, name)
    if entry is not None:
        args.recursive = False
        return doSget(ctx, args)
    if not below:
        raise NotFound("no such file or folder on the server (or an empty folder): {}".format(name or "."))
    base = os.path.basename(name) or "."
    top = base if args.output is None else (os.path.join(args.output, base) if os.path.isdir(args.output) else args.output)
    strip = len(name) + 1 if name else 0
    planned = [(e, lambda e=e: localfiles.localPath(top, _raw(e.name[strip:]))) for e in below]
    return _download(ctx, args, "sget", _serverGroups(name or None, below), planned)


def _recursiveMatches(ctx, mask: str) -> list:
    """
    For C{mget -r}: the files of every file or folder C{mask} matches, as
    C{(serverMask, entries)} groups (L{_serverGroups}). The server lists
    the wildcard-free folder at the start of the mask; its entries are
    matched here, part by part, on as many parts as the mask has.
    """
    segments = mask.split("/") if mask else []
    fixed = []
    for segment in segments:
        if hasWildcard(segment):
            break
        fixed.append(segment)
    base = "/".join(fixed) or None
    found = ctx.call("list", base)
    wanted = [s.encode("utf-8", "surrogateescape") for s in segments]
    chosen = []
    for entry in found:
        parts = entry.name.encode("utf-8", "surrogateescape").split(b"/")
        if len(parts) >= len(wanted) and matches(wanted, parts[: len(wanted)]):
            chosen.append(entry)
    return _serverGroups(base, chosen)


def _serverGroups(base: Optional[str], entries: List[Entry]) -> list:
    """
    C{(serverMask, entries)} groups whose every file one server C{mget}
    of the mask sends (see L{_fetchTogether}): a folder's name sends
    everything below it; for the whole tree, C{*} sends the files at the
    top and each top folder's name the rest.
    """
    if base is not None:
        return [(base, entries)]
    groups: Dict[str, List[Entry]] = {}
    for entry in entries:
        top, slash, _ = entry.name.partition("/")
        groups.setdefault(top if slash and not hasWildcard(top) else "*", []).append(entry)
    return list(groups.items())


def doMget(ctx, args) -> int:
    recursive = getattr(args, "recursive", False)
    entries: List[Entry] = []
    seen: Set[str] = set()
    matched, maskOf = [], {}
    for text in args.masks:
        mask, folder = folderForm(ctx.name(text))
        if recursive:
            groups = _recursiveMatches(ctx, mask)
            found = [entry for _, group in groups for entry in group]
            listed = groups[0][0] if len(groups) == 1 else None
        else:
            if folder or not hasWildcard(mask):
                entry, below = lookUp(ctx, mask)
                if entry is None and (below or folder):
                    raise useR("mget", mask)
            found = ctx.call("list", mask or None)
            groups = [(mask or None, found)]
            listed = mask or None
        if not found:
            raise NotFound("no file on the server matches {}".format(text))
        matched.extend(groups)
        for entry in found:
            if entry.name not in seen:
                seen.add(entry.name)
                maskOf[entry.name] = listed
                entries.append(entry)
    # Each name the server listed must match what was asked and stay here.
    planned = [(e, lambda e=e: localfiles.localPath("", _raw(e.name), _raw(maskOf[e.name] or "") or None))
               for e in entries]
    return _download(ctx, args, "mget", matched, planned)


def _download(ctx, args, label: str, matched, planned) -> int:
    """
    Fetch each C{(entry, where)}, C{where()} giving its local path (or
    raising L{ftx.errors.UnsafeName} for a name the server should not
    have listed): plan them all (skipping identical files, asking or
    refusing where a local file is in the way), fetch what can go together
    in one server C{mget}, the rest one by one.
    """
    resolver = ctx.resolver(args)
    tally = Tally(len(planned))
    plans, refused = [], 0
    targets = []
    for entry, where in planned:
        try:
            targets.append((entry, where()))
        except FtxError as e:
            tally.failed(e, ctx.reporter, entry.name)
    # Size and time first, for all; digests only for what they leave open.
    verdicts = compare(ctx, [(target, entry) for entry, target in targets], getattr(args, "verify", False))
    for (entry, target), verdict in zip(targets, verdicts):
        try:
            plan = _plan(ctx, resolver, entry, target, verdict)
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            refused += isinstance(e, Refused)
            tally.failed(e, ctx.reporter, entry.name)
            continue
        if plan is not None:
            plans.append((entry, plan))
    failedEarly = len(tally.failures)
    ctx.reporter.startBatch(label, len(plans), sum(e.size for e, _ in plans))
    fetched = _fetchTogether(ctx, matched, plans, tally)
    done = len(fetched)
    for entry, (action, path) in plans:
        if entry.name in fetched:
            continue
        try:
            _fetch(ctx, entry, action, path)
            done += 1
        except FtxError as e:
            if isinstance(e, ConnectionLost):
                raise
            if isinstance(e, Conflict) and str(e).startswith("is a directory"):
                e = useR(label, entry.name)
            tally.failed(e, ctx.reporter, entry.name)
    ctx.reporter.close()
    if len(planned) > 1:
        skipped = len(planned) - len(plans) - failedEarly
        ctx.reporter.note("{}: {} fetched, {} skipped, {} failed{}".format(
            label, done, skipped, len(tally.failures) - refused,
            ", {} refused".format(refused) if refused else ""))
    tally.finish()
    return 0


def _fetchTogether(ctx, matched, plans, tally: Tally) -> Set[str]:
    """
    Fetch the planned plain downloads of each mask with one server C{mget},
    rather than a request and an answer per file: for a thousand small
    files that is the difference between seconds and a fraction of one.
    A mask is fetched this way only when nearly everything it matches is
    wanted, since the server sends every match and the rest is dropped.
    Returns the names fetched; anything else (resumes, files that failed
    here) is left for the one-by-one path, which reports each failure. A
    name the server sends without having listed it is refused (and counted
    in C{tally}) when it is unsafe, and dropped when it is not.
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
                ctx.downloading(name, wanted[name])
                bars[name] = ctx.reporter.transfer(name, total)
            update = bars[name]
            if update is not None:
                update(name, done, total)

        def received(transfer) -> None:
            if ctx.current == transfer.name:
                ctx.downloading(None)
            fetched.add(transfer.name)
            bars.pop(transfer.name, None)
            ctx.reporter.transferDone(transfer.size)
            keepMtime(transfer.path, planned[transfer.name][0].mtime)
            _noteReceived(ctx, transfer)

        def refused(error) -> None:
            # Listed names were checked, and reported, when planned.
            if nameText(error.name or b"") not in listed:
                ctx.reporter.error(str(error))
                tally.failures.append(error)

        try:
            ctx.call("mget", serverMask or "*", ".", progress, accept, received, refused)
        except ConnectionLost:
            ctx.downloading(None)
            raise
        except FtxError:
            # Whatever did not arrive is fetched again one by one below,
            # where each failure is reported on its own.
            pass
        # Not on KeyboardInterrupt: the message on leaving names the file.
        ctx.downloading(None)
        if bars:
            # Started but not finished: off the screen, not counted as done.
            ctx.reporter.transferDone(0)
    return fetched


# The download machinery ftx mirror reuses (L{ftx.cli.mirror}): no second
# transfer engine.
fetchOne = _fetch
fetchTogether = _fetchTogether
serverGroups = _serverGroups
