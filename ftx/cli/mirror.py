"""
C{ftx mirror REMOTE_FOLDER [LOCAL_FOLDER]} and C{ftx mirror --reverse
LOCAL_FOLDER [REMOTE_FOLDER]}, lftp's names: make the target folder hold
what the source folder holds, over one connection.

A file is transferred when it is new or changed by rsync's quick check
(size and whole-second modification time, L{ftx.cli.quickcheck}; downloads
keep the server's time and uploads give the server the local one), or,
with C{--verify}, when its digest differs. Transfers go through the
commands' own machinery: downloads through L{ftx.cli.downloads} (one server
C{mget} for a batch, a partial file continued), uploads through the
client's C{put} (an interrupted upload resumed), so an interrupted mirror
run again continues where it stopped. C{--delete} removes what the source
no longer has, never without the flag: on the server through C{delete}
and C{rmtree}, here only inside the target and never through a link.
C{--dry-run} prints the plan and changes nothing.

Empty folders are not mirrored either way: the server's listing names
files only, so a folder is there as long as a file is in it. With
C{--delete}, a local folder left holding nothing the source has is
removed; a server folder whose every file goes is removed whole.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Dict, List, Optional

from ftx.cli import mirrordecrypt, remotefolder
from ftx.cli.keys import identitiesFor
from ftx.cli.mirrorfetch import fetchPlanned
from ftx.cli.mirrorlisted import Listing, planAsListed
from ftx.cli.mirrorplan import Action, Filters, LocalTree, Plan, planMirror, scanTree
from ftx.cli.mirrorsend import sendPlanned
from ftx.cli.progress import humanSize, isTerminal
from ftx.cli.status import UsageError
from ftx.cli.quickcheck import DigestCache, localDigest, sameAsRemote
from ftx.cli.remotefiles import Tally, folderForm, hasWildcard, keepMtime
from ftx.cli.terminal import printable
from ftx.client import safenames
from ftx.errors import Conflict, ConnectionLost, FtxError, NotFound, UnsafeName
from ftx.protocol.checksums import SHA1

__all__ = ["doMirror"]

_DONE = {"get": "received", "continue": "continued", "put": "sent", "delete": "deleted",
         "rmdir": "removed folder", "rmtree": "removed folder"}


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class _Outcome:
    """
    What the run did, for the lines it prints, the summary and C{--json}.
    """

    def __init__(self, ctx, args, direction: str) -> None:
        self.ctx, self.args, self.direction = ctx, args, direction
        self.dryRun = bool(getattr(args, "dry_run", False))
        self.json = bool(getattr(args, "json", False))
        self.quiet = bool(getattr(args, "quiet", False))
        self.actions: List[dict] = []
        self.transferred = self.deleted = self.bytes = 0
        # While bars are drawn on a terminal, rich sends what is printed to
        # stdout through its console (on stderr), above the bars: right on
        # a terminal, wrong for 'ftx mirror ... > log'. A stdout that is not
        # a terminal is written to as it is now, before any bar starts.
        self._stdout = None if isTerminal(sys.stdout) else sys.stdout

    def _print(self, line: str) -> None:
        if self._stdout is None:
            print(line, flush=True)
        else:
            self._stdout.write(line + "\n")
            self._stdout.flush()

    def done(self, action: Action, size: Optional[int] = None, resumed: bool = False) -> None:
        size = action.size if size is None else size
        if resumed:
            action = action._replace(verb="continue")
        if action.verb in ("get", "continue", "put"):
            self.transferred += 1
            self.bytes += size
        else:
            self.deleted += 1
        self.actions.append({"action": action.verb, "name": action.name, "size": size})
        if self.json or self.quiet:
            return
        if self.dryRun:
            line = "would {} {}".format(action.verb, printable(action.name))
        else:
            line = "{} {}".format(_DONE[action.verb], printable(action.name))
        if action.verb in ("get", "continue", "put"):
            line += " ({})".format(humanSize(size))
        self._print(line)

    def finish(self, plan: Plan, tally: Tally) -> None:
        failed = len(tally.failures)
        if self.json:
            self._print(json.dumps({
                "direction": self.direction, "dryRun": self.dryRun, "actions": self.actions,
                "transferred": self.transferred, "deleted": self.deleted, "unchanged": plan.unchanged,
                "excluded": plan.excluded, "failed": failed, "bytes": self.bytes,
            }, indent=2))
        elif not self.quiet:
            counts = "{} {} ({}), {} {}, {} unchanged".format(
                self.transferred, "to transfer" if self.dryRun else "transferred", humanSize(self.bytes),
                self.deleted, "to delete" if self.dryRun else "deleted", plan.unchanged)
            extra = [("excluded", plan.excluded), ("links skipped", len(plan.links)), ("failed", failed)]
            counts += "".join(", {} {}".format(n, what) for what, n in extra if n)
            self._print("mirror: " + counts + (" (dry run: nothing was changed)" if self.dryRun else ""))
        tally.finish()


class _NoTransferNotes:
    """
    The reporter, less the downloads' own "received ..." notes: the mirror
    prints its own line per action on stdout.
    """

    def __init__(self, reporter) -> None:
        self._reporter = reporter

    def note(self, text: str) -> None:
        if not text.startswith(("received ", "continued ")):
            self._reporter.note(text)

    def __getattr__(self, name):
        return getattr(self._reporter, name)


class _Collector:
    """
    No garbage collection while the listing, the walk and the plan are
    made: they make some ten objects a file (entries, stat results, names,
    actions), none in a cycle, and the collector, run every 700 new
    objects, scanned them over and over (a tenth of a re-run's own CPU
    time). L{resume} turns it back on, leaving what was made out of later
    collections for good (C{gc.freeze}): a long first run would otherwise
    scan the whole listing in each full collection.
    """

    def __init__(self) -> None:
        self._paused = gc.isenabled()
        if self._paused:
            gc.disable()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            gc.freeze()
            gc.enable()


class _MirrorContext:
    def __init__(self, ctx) -> None:
        self._ctx = ctx
        self.reporter = _NoTransferNotes(ctx.reporter)
        self.collector = _Collector()

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def doMirror(ctx, args) -> int:
    filters = Filters(getattr(args, "filters", None) or [])
    if getattr(args, "decrypt", False) and getattr(args, "reverse", False):
        raise UsageError("--decrypt mirrors downloads only; it cannot be combined with --reverse")
    ctx = _MirrorContext(ctx)
    # --verify reads every file; the cache makes the second time cheap.
    cache = DigestCache() if getattr(args, "verify", False) else None
    try:
        if getattr(args, "reverse", False):
            return _upload(ctx, args, filters, cache)
        return _download(ctx, args, filters, cache)
    finally:
        ctx.collector.resume()
        if cache is not None:
            cache.flush()


def _remoteFolder(ctx, args, text: str) -> str:
    name, _ = folderForm(remotefolder.join(getattr(args, "folder", "") or "", text))
    return name


def _safeTransfers(ctx, transfers: List[Action], tally: Tally) -> List[Action]:
    """
    The planned downloads whose names pass the rules the server applies to
    names from clients (L{ftx.client.safenames}); the others are reported
    and dropped. A name that only matched a file here was compared, never
    used to write.
    """
    safe = []
    for action in transfers:
        try:
            safenames.checkedSegments(_raw(action.source.name))
        except UnsafeName as e:
            tally.failed(e, ctx.reporter)
            continue
        safe.append(action)
    return safe


def _serverDigest(ctx, name: str, asked: Optional[Dict[str, object]] = None) -> str:
    """
    The server's SHA-1 of C{name}: from C{asked} (L{_askDigests}) when it
    is there, else asked for now.
    """
    found = asked.get(name) if asked is not None else None
    if found is None:
        return ctx.call("hash", name)
    if isinstance(found, FtxError):
        raise found
    return found


def _askDigests(ctx, names: List[str]) -> Dict[str, object]:
    """
    C{--verify}: the server's digests of every file both sides have at the
    same size, asked for all at once (L{ftx.client.client.FtxClient.hashes},
    pipelined) rather than one round trip a file. Each is the hex digest or
    the L{FtxError} the server answered for it.
    """
    if not names:
        return {}
    client = ctx.connection.client
    results = ctx.connection.runner.call(lambda: client.hashes(names))
    return dict(zip(names, results))


# -- REMOTE_FOLDER -> LOCAL_FOLDER ---------------------------------------------


def _download(ctx, args, filters: Filters, cache) -> int:
    folder = _remoteFolder(ctx, args, args.source)
    local = args.target if args.target is not None else (os.path.basename(folder) or ".")
    if os.path.lexists(local) and not os.path.isdir(local):
        raise Conflict("{} is not a folder here".format(printable(local)))
    decrypt = bool(getattr(args, "decrypt", False))
    # Keys first: a missing identity is a usage error before any listing.
    identities = identitiesFor(args) if decrypt else None
    tally = Tally(2)
    outcome = _Outcome(ctx, args, "download")
    if not args.delete and cache is None and not decrypt and not hasWildcard(folder):
        return _downloadAsListed(ctx, args, folder, local, filters, tally, outcome)
    listing = Listing(ctx, folder)
    # The quick check compares with what the walk found: one lstat a
    # file, taken while the server lists.
    tree = scanTree(local) if os.path.isdir(local) else LocalTree()
    remote, listed = listing.files(ctx, tally)
    decrypted = set()
    if not remote and not tally.failures:
        # A missing folder and an empty one look alike; with --delete,
        # taking it for empty would empty the local folder.
        raise NotFound("no files under {} on the server (no such folder, or it is empty); nothing was changed".format(
            printable(folder or ".")))
    verify = cache is not None
    if decrypt:
        # Remote NAME.age is local NAME: compared, kept by --delete, fetched.
        remote, decrypted = mirrordecrypt.plainNames(remote, tally, ctx.reporter)
    asked = _askDigests(ctx, [
        entry.name for name, entry in remote.items()
        if name in tree.files and name not in decrypted and not tree.files[name].link
        and tree.files[name].size == entry.size and filters.included(name)
    ]) if verify else None

    def same(name: str) -> bool:
        entry, mine = remote[name], tree.files[name]
        if mine.link:
            return False
        if name in decrypted:
            # --verify cannot hash a plaintext against the ciphertext's
            # digest: a decrypted file is then always fetched again.
            return not verify and mirrordecrypt.sameDecrypted(mine.path, entry)
        if not verify:
            # rsync's quick check (L{sameAsRemote}) on the walk's lstat.
            return mine.size == entry.size and mine.mtime == entry.mtime
        if os.lstat(mine.path).st_size != entry.size:
            return False
        if localDigest(mine.path, SHA1, cache) != _serverDigest(ctx, entry.name, asked):
            return False
        if not outcome.dryRun and not sameAsRemote(mine.path, entry.size, entry.mtime):
            keepMtime(mine.path, entry.mtime)
        return True

    def verb(name: str) -> str:
        partial = tree.partials.get(name)
        if name in decrypted:
            return "get"
        if partial is not None and os.path.getsize(partial) <= remote[name].size:
            return "continue"
        return "get"

    plan = planMirror(
        remote,
        tree.files,
        filters, same, verb, bool(args.delete), tree.folders, list(tree.partials),
        quickCheck=not verify and not decrypted,
    )
    plan.transfers = _safeTransfers(ctx, plan.transfers, tally)
    ctx.collector.resume()
    if not outcome.dryRun:
        # Deletions first, as rsync's --delete does: a file in the way of
        # a folder to create (or the reverse) is gone before it is needed.
        _deleteLocal(ctx, local, plan, outcome, tally)
        plain = [action for action in plan.transfers if action.name not in decrypted]
        fetchPlanned(ctx, folder, local, listed, plain, outcome.done, tally)
        if decrypted:
            mirrordecrypt.fetchDecrypted(ctx, local, [a for a in plan.transfers if a.name in decrypted],
                                         identities, outcome.done, tally)
    else:
        for action in plan.deletions + plan.transfers:
            outcome.done(action)
    outcome.finish(plan, tally)
    return 0


def _downloadAsListed(ctx, args, folder: str, local: str, filters: Filters, tally: Tally, outcome: _Outcome) -> int:
    """
    L{_download} of a run that deletes nothing and compares by the quick
    check: each file is looked at here as the listing names it
    (L{mirrorlisted.planAsListed}), while the server walks on, with no
    walk of the local tree.
    """
    listing = Listing(ctx, folder, streamed=True)
    plan = planAsListed(local, folder, filters, listing.arriving())
    remote, listed = listing.files(ctx, tally)
    if not remote and not tally.failures:
        raise NotFound("no files under {} on the server (no such folder, or it is empty); nothing was changed".format(
            printable(folder or ".")))
    plan.transfers = _safeTransfers(ctx, plan.transfers, tally)
    ctx.collector.resume()
    if not outcome.dryRun:
        fetchPlanned(ctx, folder, local, listed, plan.transfers, outcome.done, tally)
    else:
        for action in plan.transfers:
            outcome.done(action)
    outcome.finish(plan, tally)
    return 0


def _deleteLocal(ctx, local: str, plan: Plan, outcome: _Outcome, tally: Tally) -> None:
    """
    Remove what the plan says, only inside C{local}: each path is checked
    again just before, in case a folder was swapped for a link since the
    walk; a link is removed itself (C{unlink} never follows it).
    """
    top = os.path.realpath(local)
    for action in plan.deletions:
        path = os.path.join(local, *action.name.split("/"))
        try:
            parent = os.path.realpath(os.path.dirname(path))
            if os.path.commonpath([top, parent]) != top:
                raise UnsafeName("refused to delete {}: it is no longer inside {}".format(
                    printable(action.name), printable(local)), _raw(action.name))
            try:
                if action.verb == "rmdir":
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise Conflict("cannot delete {}: {}".format(printable(path), e.strerror))
        except FtxError as e:
            tally.failed(e, ctx.reporter, action.name)
            continue
        outcome.done(action)


# -- LOCAL_FOLDER -> REMOTE_FOLDER (--reverse) ------------------------------------


def _upload(ctx, args, filters: Filters, cache) -> int:
    local = args.source
    if not os.path.isdir(local):
        raise NotFound("no such local folder: {}".format(printable(local)))
    given = args.target if args.target is not None else os.path.basename(os.path.abspath(local))
    folder = _remoteFolder(ctx, args, given)
    tally = Tally(2)
    outcome = _Outcome(ctx, args, "upload")
    listing = Listing(ctx, folder)
    tree = scanTree(local)
    mine = {name: f for name, f in tree.files.items() if not f.link}
    remote, listed = listing.files(ctx, tally)
    tally.count = len(mine) + len(listed) - len(remote)
    features = ctx.connection.features
    # With the server keeping the time a file is sent with, both ends agree
    # after one run. Without it, the server's time is when the file was
    # stored: a copy stored after the local file last changed is taken
    # as the same (the quick check of lftp's reverse mirror).
    keepsTime = "mtime" in features
    verify = cache is not None
    asked = _askDigests(ctx, [
        remote[name].name for name, f in mine.items() if name in remote and f.size == remote[name].size
        and filters.included(name)
    ]) if verify else None

    def same(name: str) -> bool:
        entry, f = remote[name], mine[name]
        if f.size != entry.size:
            return False
        if verify:
            return localDigest(f.path, SHA1, cache) == _serverDigest(ctx, entry.name, asked)
        if entry.mtime is None:
            return False
        return entry.mtime == f.mtime if keepsTime else entry.mtime >= f.mtime

    plan = planMirror(
        mine,
        remote,
        filters, same, lambda name: "put", bool(args.delete),
    )
    plan.links = sorted(name for name, f in tree.files.items() if f.link)
    ctx.collector.resume()
    for name in plan.links:
        ctx.reporter.note("{} is a link: not sent (links are not followed)".format(printable(name)))
    prefix = folder + "/" if folder else ""
    if outcome.dryRun:
        for action in plan.deletions + plan.transfers:
            outcome.done(action)
    else:
        for action in plan.deletions:
            try:
                ctx.call("rmtree" if action.verb == "rmtree" else "delete", prefix + action.name)
            except FtxError as e:
                if isinstance(e, ConnectionLost):
                    raise
                tally.failed(e, ctx.reporter, action.name)
                continue
            outcome.done(action)
        ctx.reporter.startBatch("mirror", len(plan.transfers), plan.bytes)
        sendPlanned(ctx, prefix, plan.transfers, "resume" in features, keepsTime, outcome.done, tally)
        ctx.reporter.close()
    outcome.finish(plan, tally)
    return 0
