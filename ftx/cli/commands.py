"""
The commands of the C{ftx} command line, shared by one-shot use and the
interactive shell.

Each command takes a L{Context} and the parsed arguments, prints its
results on stdout and its notes on stderr (through the L{Reporter}), and
returns an exit status or raises an L{ftx.errors.FtxError}. They run in the
main thread and wait for the reactor thread (see L{ftx.cli.reactorthread}).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Callable, List, Optional

from ftx.cli.conflicts import Resolver
from ftx.cli.progress import Reporter, humanSize, isTerminal
from ftx.cli.terminal import printable
from ftx.client.localfiles import partialPath
from ftx.client.results import Entry
from ftx.errors import BadRequest

__all__ = ["Context", "COMMANDS"]


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
        #: The download in progress and its local file, for the message
        #: when it is interrupted.
        self.current: Optional[str] = None
        self.currentPath: Optional[str] = None

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
        return Resolver(getattr(args, "conflict", None), interactive, paused=self.reporter.paused)

    def downloading(self, name: Optional[str], path: Optional[str] = None) -> None:
        """
        Say which download is in progress (L{None}: none), for
        L{interruptedNote}.
        """
        self.current, self.currentPath = name, path

    def interruptedNote(self, prefix: str = "ftx ") -> str:
        """
        What to add to "interrupted" about the download in progress: which
        partial file was kept, and the command that continues it.
        """
        if not self.current or not self.currentPath:
            return ""
        kept = partialPath(self.currentPath)
        if not os.path.isfile(kept):
            # A small file is received in memory: nothing was kept.
            return ""
        return "; the partial download is kept as {} ('{}sget {}' continues it)".format(
            printable(kept), prefix, printable(self.current))


# -- list, hash, df -----------------------------------------------------------


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


def doDf(ctx: Context, args) -> int:
    if args.udp:
        space = _udpDf(ctx, args)
    else:
        space = ctx.call("df")
    # As df(1): used is the total less the free blocks, counting those
    # reserved for root as free, so used + free may fall short of total.
    # An older server (or the UDP answer) does not say; then it is the
    # total less what is available, and the note says so.
    if space.used is not None:
        used, how = space.used, "total - free blocks, as df(1) counts it"
    else:
        used, how = max(space.total - space.free, 0), "total - available (the server does not report used)"
    if args.json:
        print(json.dumps({"total": space.total, "free": space.free, "used": used, "used_is": how}))
        return 0
    rows = [("total", space.total), ("used", used), ("free", space.free)]
    hw = max(len(humanSize(v)) for _, v in rows)
    ew = max(len(str(v)) for _, v in rows)
    notes = {"used": "  (" + how + ")", "free": "  (available to this server)"}
    for label, value in rows:
        print("{:<5}  {:>{}}  {:>{}}{}".format(label, humanSize(value), hw, value, ew, notes.get(label, "")))
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


def _later(module: str, name: str) -> Callable:
    """
    The command C{name} of C{module}, imported when it first runs: a
    C{list} or C{df} starts faster without the modules of the transfers.
    """

    def command(ctx: Context, args) -> int:
        return getattr(importlib.import_module(module), name)(ctx, args)

    command.__name__ = command.__qualname__ = name
    return command


def _encrypting(name: str) -> Callable:
    """
    C{put}, C{sget} and C{mget} able to encrypt and decrypt, and
    C{keygen} (L{ftx.cli.encrypted.withEncryption}), imported when run.
    """

    def command(ctx: Context, args) -> int:
        if name in ("sget", "mget") and not getattr(args, "decrypt", False):
            # Only --decrypt changes a download (as withEncryption says):
            # a plain one starts without the encrypting commands.
            return _PLAIN[name](ctx, args)
        if name == "put" and not any(getattr(args, option, None) for option in _ENCRYPTING):
            # Nor is an upload without a recipient or a passphrase
            # encrypted (ftx.cli.keys.recipientsFor): importing the age
            # encryption (the cryptography library) was 8% of the
            # instructions of a plain put (valgrind).
            return _PLAIN[name](ctx, args)
        from ftx.cli.encrypted import withEncryption

        return withEncryption(_PLAIN)[name](ctx, args)

    command.__name__ = command.__qualname__ = name
    return command


#: C{put}'s options that encrypt (L{ftx.cli.keys.encryptOptions}).
_ENCRYPTING = ("encrypt_to", "recipients_file", "passphrase")

_PLAIN = {
    "list": doList,
    "sget": _later("ftx.cli.downloads", "doSget"),
    "cget": _later("ftx.cli.downloads", "doCget"),
    "mget": _later("ftx.cli.downloads", "doMget"),
    "hash": doHash,
    "put": _later("ftx.cli.uploads", "doPut"),
    "delete": _later("ftx.cli.folders", "doDelete"),
    "mkdir": _later("ftx.cli.folders", "doMkdir"),
    "df": doDf,
    "mirror": _later("ftx.cli.mirror", "doMirror"),
}
# put --encrypt-to, sget/mget --decrypt, keygen (end-to-end encryption).
COMMANDS = dict(_PLAIN, **{name: _encrypting(name) for name in ("put", "sget", "mget", "keygen")})
