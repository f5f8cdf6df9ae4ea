"""
The C{ftx} command: one-shot commands (C{ftx list}, C{ftx sget NAME}, ...)
and the interactive shell (C{ftx shell}).

A known problem is one C{ftx: error: ...} line on stderr and a documented
exit status (L{EXIT_CODES}); a traceback means a bug in ftx.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import sys
from typing import List, Optional, Tuple

from ftx import __version__, notls
from ftx.conflicts import OVERWRITE, RENAME, SKIP, Refused
from ftx.errors import (
    BadOffset,
    BadRequest,
    Conflict,
    ConnectionLost,
    FtxError,
    IntegrityError,
    LoginFailed,
    LoginRequired,
    NoSpace,
    NotFound,
    PermissionDenied,
    TooLarge,
    Unavailable,
)
from ftx.progress import isTerminal

__all__ = ["main", "run", "buildParser", "EXIT_CODES"]

DEFAULT_SERVER = "localhost:1234"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_NOT_FOUND = 4
EXIT_PERMISSION = 5
EXIT_INTEGRITY = 6
EXIT_CONFLICT = 7
EXIT_LOST = 8
EXIT_NO_SPACE = 9
EXIT_INTERRUPTED = 130

EXIT_CODES = [
    (EXIT_OK, "success"),
    (EXIT_ERROR, "other error (the server failed, or an unexpected local problem)"),
    (EXIT_USAGE, "usage error: bad command, option or argument"),
    (EXIT_CONNECT, "cannot reach the server: unknown host, refused, unavailable, TLS, no UDP answer"),
    (EXIT_NOT_FOUND, "no such file, on the server or here"),
    (EXIT_PERMISSION, "permission refused (server or local), or login failed"),
    (EXIT_INTEGRITY, "integrity mismatch: the digest differs, or a partial copy no longer matches"),
    (EXIT_CONFLICT, "conflict: a local file is in the way (no --overwrite/--rename/--skip), or the server refused"),
    (EXIT_LOST, "the connection was lost during the command"),
    (EXIT_NO_SPACE, "no space: quota or disk full, or file too large for the server"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C); a partial download is kept for cget"),
]


class UsageError(Exception):
    """
    The command line was wrong; the message says how.
    """


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError("{}: {} (see '{} --help')".format(self.prog, message, self.prog))


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join("  " + line for line in lines)


def _commonOptions() -> argparse.ArgumentParser:
    # SUPPRESS lets these appear before or after the command word without
    # the subcommand's defaults hiding a value given before it.
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    g = common.add_argument_group("connection and output")
    g.add_argument("--server", metavar="ADDRESS",
                   help="HOST:PORT or a Twisted endpoint string (default: $FTX_SERVER, else {})".format(DEFAULT_SERVER))
    g.add_argument("--dir", metavar="LOCALDIR", help="local folder to work in (default: the current one)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no notes; errors only")
    g.add_argument("--tls", action="store_true", help="connect with TLS")
    g.add_argument("--cafile", metavar="FILE", help="trust the certificate authority in FILE (PEM)")
    g.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    g.add_argument("--cert", metavar="FILE", help="client certificate and key (PEM)")
    g.add_argument("--user", metavar="NAME", help="log in as NAME")
    g.add_argument("--password-file", metavar="FILE",
                   help="read the password from FILE (else $FTX_PASSWORD, else ask on the terminal)")
    g.add_argument("--checksum", choices=("auto", "sha1", "xxh128"),
                   help="what checks each transfer end to end: auto (default) is XXH3-128 when the server has it, "
                        "else SHA-1")
    return common


def _conflictOptions(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("when a local file of the same name exists").add_mutually_exclusive_group()
    g.add_argument("--overwrite", dest="conflict", action="store_const", const=OVERWRITE,
                   help="replace it (once the new copy is complete and checked)")
    g.add_argument("--rename", dest="conflict", action="store_const", const=RENAME,
                   help="save as 'name (1).ext', 'name (2).ext', ...")
    g.add_argument("--skip", dest="conflict", action="store_const", const=SKIP, help="keep it, download nothing")
    parser.set_defaults(conflict=None)


_DESCRIPTION = """\
Transfer files to and from an ftx server. Without a command, on a terminal,
ftx opens an interactive shell. 'ftx COMMAND --help' explains each command.
Downloads go to the current folder (or --dir); an existing file is never
overwritten silently; an interrupted download is kept for 'ftx cget'."""


def buildParser() -> argparse.ArgumentParser:
    common = _commonOptions()
    raw = argparse.RawDescriptionHelpFormatter
    codes = "\n".join("  {:>3}  {}".format(code, text) for code, text in EXIT_CODES)
    parser = _Parser(
        prog="ftx", parents=[common], formatter_class=raw, description=_DESCRIPTION,
        epilog=_examples(
            "ftx --server files.example.com:1234 list",
            "FTX_SERVER=files.example.com:1234 ftx sget report.pdf",
            "ftx shell",
        ) + "\n\nexit status:\n" + codes,
    )
    parser.add_argument("--version", action="version", version="ftx " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    parser.commands = {}

    def command(name: str, summary: str, examples: List[str], details: str = ""):
        p = sub.add_parser(name, parents=[common], formatter_class=raw, help=summary,
                           description=summary + ("\n\n" + details if details else ""),
                           epilog=_examples(*examples))
        parser.commands[name] = p
        return p

    p = command("list", "List the files on the server, with their sizes.",
                ["ftx list", "ftx list '*.jpg'", "ftx list photos/", "ftx list --json"],
                "MASK may hold the wildcards * ? [...], which never match '/'.")
    p.add_argument("mask", nargs="?", metavar="MASK", help="only the files matching MASK (a folder lists what is under it)")
    p.add_argument("--json", action="store_true", help="print a JSON array of {name, size, mtime}")

    p = command("sget", "Download one file.",
                ["ftx sget report.pdf", "ftx sget photos/a.jpg -o holiday.jpg", "ftx sget big.iso --rename"],
                "The file appears under its name only once complete and its digest checked. If the\n"
                "download is cut off, the part received is kept and 'ftx cget NAME' continues it.")
    p.add_argument("name", metavar="NAME", help="the file on the server")
    p.add_argument("-o", "--output", metavar="PATH", help="where to save it (a folder keeps the name)")
    _conflictOptions(p)

    p = command("cget", "Continue an interrupted download.",
                ["ftx cget big.iso", "ftx cget photos/a.jpg -o holiday.jpg"],
                "Continues from the partial file an interrupted sget or mget left, or from a shorter\n"
                "local copy. The server first checks that the local part matches its file.")
    p.add_argument("name", metavar="NAME", help="the file on the server")
    p.add_argument("-o", "--output", metavar="PATH", help="the local file to continue (default: NAME's base name)")

    p = command("mget", "Download every file matching one or more masks, keeping their folders.",
                ["ftx mget '*.jpg'", "ftx mget 'photos/*' --skip", "ftx mget '*' --overwrite"],
                "Re-running mget after an interruption continues partial files and skips files that\n"
                "are already here and identical (same size and SHA-1).")
    p.add_argument("masks", nargs="+", metavar="MASK", help="quote it so that your shell leaves it alone")
    _conflictOptions(p)

    p = command("hash", "Print the SHA-1 of a file on the server, like sha1sum.",
                ["ftx hash report.pdf", "ftx hash big.iso 1048576", "ftx hash big.iso:1048576"])
    p.add_argument("name", metavar="NAME", help="the file, or NAME:LENGTH")
    p.add_argument("length", nargs="?", metavar="LENGTH", help="hash only the first LENGTH bytes")

    p = command("put", "Upload files, folders (recursively) or globs, over one connection.",
                ["ftx put report.pdf", "ftx put notes.txt --as archive/2024-notes.txt",
                 "ftx put photos/", "ftx put '*.log'"],
                "A folder is uploaded with its own name as the first part of the remote names.")
    p.add_argument("files", nargs="+", metavar="FILE", help="a file, a folder or a glob")
    p.add_argument("--as", dest="remote", metavar="NAME", help="the name on the server (one FILE only)")

    p = command("delete", "Delete files on the server.", ["ftx delete old.log", "ftx delete a.txt b.txt"])
    p.add_argument("names", nargs="+", metavar="NAME")

    p = command("df", "Show the server's total, used and free space.",
                ["ftx df", "ftx df --json", "ftx df --udp", "ftx df --udp --udp-port 1235"],
                "With --udp the question goes in one UDP datagram (the server needs --udp-port).")
    p.add_argument("--json", action="store_true", help="print {total, free, used} as JSON")
    p.add_argument("--udp", action="store_true", help="ask over UDP instead of a connection")
    p.add_argument("--udp-port", type=_port, metavar="PORT", help="the server's UDP port (default: its TCP port)")

    command("shell", "Open an interactive session over one connection.", ["ftx shell", "ftx --server host:1234"],
            "Type 'help' at the prompt. 'list' numbers its entries: 'sget 3' fetches the third.")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError("not a port number: {!r}".format(text))
    return int(text)


def sessionOptions(args) -> Tuple[str, dict]:
    """
    The address and the L{openSession} keywords the options ask for.

    @raise UsageError: the address is malformed or no password is at hand.
    """
    address = getattr(args, "server", None) or os.environ.get("FTX_SERVER") or DEFAULT_SERVER
    wantsTLS = notls.schemeIsTLS(address) or any(
        getattr(args, option, None) for option in ("tls", "cafile", "insecure", "cert")
    )
    if not wantsTLS:
        # Before the reactor is imported: a plain connection starts faster
        # without the TLS libraries (ftx.notls).
        notls.leaveOutTLS()
    from twisted.internet import reactor

    from ftx.client import endpointFromAddress

    try:
        endpointFromAddress(reactor, address)
    except ValueError as e:
        raise UsageError("bad --server address: {}".format(e))
    user = getattr(args, "user", None)
    password = None
    if user is not None:
        passwordFile = getattr(args, "password_file", None)
        if passwordFile is not None:
            try:
                with open(passwordFile, encoding="utf-8") as f:
                    password = f.readline().rstrip("\r\n")
            except OSError as e:
                raise UsageError("cannot read --password-file {}: {}".format(passwordFile, e.strerror))
        elif "FTX_PASSWORD" in os.environ:
            password = os.environ["FTX_PASSWORD"]
        elif isTerminal(sys.stdin):
            password = getpass.getpass("Password for {}: ".format(user))
        else:
            raise UsageError("--user needs a password: --password-file, $FTX_PASSWORD, or run on a terminal")
    options = dict(
        tls=bool(getattr(args, "tls", False)), cafile=getattr(args, "cafile", None),
        insecure=bool(getattr(args, "insecure", False)), certificate=getattr(args, "cert", None),
        user=user, password=password,
    )
    checksum = getattr(args, "checksum", "auto")
    if checksum != "auto":
        options["checksum"] = checksum
    return address, options


def describe(error: BaseException, address: str = "") -> Optional[Tuple[int, str]]:
    """
    The exit status and one-line message for a known error, or L{None}
    for a bug.
    """
    from twisted.internet import error as neterror

    from ftx.udp import NoAnswer

    where = " to {}".format(address) if address else ""
    if isinstance(error, UsageError):
        return EXIT_USAGE, str(error)
    if isinstance(error, FtxError):
        for classes, code in (
            (Refused, EXIT_CONFLICT), (Conflict, EXIT_CONFLICT), (ConnectionLost, EXIT_LOST),
            (NotFound, EXIT_NOT_FOUND), ((PermissionDenied, LoginFailed, LoginRequired), EXIT_PERMISSION),
            (IntegrityError, EXIT_INTEGRITY), ((NoSpace, TooLarge), EXIT_NO_SPACE),
            ((BadRequest, BadOffset), EXIT_USAGE), ((Unavailable, NoAnswer), EXIT_CONNECT),
        ):
            if isinstance(error, classes):
                return code, str(error)
        return EXIT_ERROR, str(error) or error.__class__.__name__
    if isinstance(error, neterror.DNSLookupError):
        return EXIT_CONNECT, "unknown host: cannot resolve the server in {}".format(address)
    if isinstance(error, neterror.ConnectionRefusedError):
        return EXIT_CONNECT, "connection refused{} (is the server running?)".format(where)
    if isinstance(error, (neterror.ConnectError, neterror.TimeoutError)):
        return EXIT_CONNECT, "cannot connect{}: {}".format(where, error)
    if isinstance(error, (neterror.ConnectionDone, neterror.ConnectionLost)):
        return EXIT_LOST, "the connection{} was lost".format(where)
    if type(error).__module__.startswith("OpenSSL"):
        return EXIT_CONNECT, "TLS failed{}: {}".format(where, error)
    if isinstance(error, OSError):
        text = "{}: {}".format(error.filename, error.strerror) if error.filename else str(error.strerror or error)
        if error.errno == errno.ENOENT:
            return EXIT_NOT_FOUND, text
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return EXIT_PERMISSION, text
        if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return EXIT_NO_SPACE, text
        return EXIT_ERROR, text
    return None


def _interrupted(ctx) -> None:
    """
    Leave at once, saying what was kept. The reactor thread may be in the
    middle of a write; everything written so far is in the partial file.
    """
    if ctx is not None:
        ctx.reporter.close()
    line = "ftx: interrupted"
    if ctx is not None and ctx.current:
        line += "; the partial download is kept ('ftx cget {}' continues it)".format(ctx.current)
    sys.stdout.flush()
    # On a terminal, start after the "^C" the terminal echoed.
    sys.stderr.write(("\n" if isTerminal(sys.stderr) else "") + line + "\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def run(argv: Optional[List[str]] = None) -> int:
    """
    Run the command line C{argv}; return the exit status.
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:
        _interrupted(None)
        return EXIT_INTERRUPTED


def _run(argv: Optional[List[str]]) -> int:
    parser = buildParser()
    try:
        args = parser.parse_args(argv)
        command = args.command
        if command is None:
            if not isTerminal(sys.stdin):
                raise UsageError("no command given (see 'ftx --help')")
            command = "shell"
        address, options = sessionOptions(args)
        if getattr(args, "dir", None):
            try:
                os.chdir(args.dir)
            except OSError as e:
                raise UsageError("cannot use --dir {}: {}".format(args.dir, e.strerror))
    except UsageError as e:
        sys.stderr.write("ftx: error: {}\n".format(e))
        return EXIT_USAGE

    from ftx.commands import COMMANDS, Context
    from ftx.progress import Reporter
    from ftx.runner import Connection, ReactorThread

    reporter = Reporter(quiet=bool(getattr(args, "quiet", False)))
    runner = ReactorThread()
    connection = Connection(runner, address, **options)
    ctx = Context(connection, reporter, numbered=command == "shell")
    try:
        if command == "shell":
            from ftx.shell import Shell

            return Shell(ctx, parser, describe).run()
        return COMMANDS[command](ctx, args)
    except KeyboardInterrupt:
        _interrupted(ctx)
        return EXIT_INTERRUPTED
    except Exception as e:
        known = describe(e, address)
        if known is None:
            raise
        reporter.close()
        reporter.error(known[1])
        return known[0]
    finally:
        reporter.close()
        connection.close()
        runner.stop()


def main() -> None:
    """
    The C{ftx} console script.
    """
    sys.exit(run(sys.argv[1:]))
