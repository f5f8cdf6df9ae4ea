"""
The C{ftx} command: one-shot commands (C{ftx list}, C{ftx sget NAME}, ...)
and the interactive shell (C{ftx shell}).

A known problem is one C{ftx: error: ...} line on stderr and a documented
exit status (L{ftx.cli.status.EXIT_CODES}); a traceback means a bug in ftx.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import List, Optional, Tuple

from ftx._io import notls
from ftx._io.endpoints import isTLS
from ftx.cli.parser import DEFAULT_SERVER, buildParser
from ftx.cli.progress import isTerminal
from ftx.cli.status import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, describe
from ftx.cli.terminal import printable

__all__ = ["main", "run"]


def sessionOptions(args) -> Tuple[str, dict]:
    """
    The address and the L{ftx.client.connect} keywords the options ask for.

    @raise UsageError: the address is malformed or no password is at hand.
    """
    address = getattr(args, "server", None) or os.environ.get("FTX_SERVER") or DEFAULT_SERVER
    tlsOptions = {option: getattr(args, option, None) for option in ("tls", "cafile", "insecure", "cert")}
    wantsTLS = isTLS(address) or any(tlsOptions.values())
    if not wantsTLS:
        # Before the reactor is imported: a plain connection starts faster
        # without the TLS libraries (ftx._io.notls).
        notls.leaveOutTLS()
    from twisted.internet import reactor

    from ftx.client.api import ClientTLS, endpointFromAddress

    try:
        endpointFromAddress(reactor, address)
    except ValueError as e:
        raise UsageError("bad --server address: {}".format(e))
    user = getattr(args, "user", None)
    options: dict = {}
    if user is not None:
        options["credentials"] = (user, _password(args, user))
    if any(tlsOptions.values()):
        options["tls"] = ClientTLS(
            cafile=tlsOptions["cafile"], insecure=bool(tlsOptions["insecure"]), certificate=tlsOptions["cert"]
        )
    checksum = getattr(args, "checksum", "auto")
    if checksum != "auto":
        options["checksum"] = checksum
    return address, options


def _password(args, user: str) -> str:
    """
    The password for C{user}: from C{--password-file}, else
    C{$FTX_PASSWORD}, else asked on the terminal.

    @raise UsageError: none of them is at hand.
    """
    passwordFile = getattr(args, "password_file", None)
    if passwordFile is not None:
        try:
            with open(passwordFile, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise UsageError("cannot read --password-file {}: {}".format(passwordFile, e.strerror))
    if "FTX_PASSWORD" in os.environ:
        return os.environ["FTX_PASSWORD"]
    if isTerminal(sys.stdin):
        return getpass.getpass("Password for {}: ".format(user))
    raise UsageError("--user needs a password: --password-file, $FTX_PASSWORD, or run on a terminal")


def _interrupted(ctx) -> None:
    """
    Leave at once, saying what was kept. The reactor thread may be in the
    middle of a write; everything written so far is in the partial file.
    """
    if ctx is not None:
        ctx.reporter.close()
    line = "ftx: interrupted"
    if ctx is not None:
        line += ctx.interruptedNote()
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

    # The reactor only now: sessionOptions has decided whether the TLS
    # stack may be left out (ftx._io.notls).
    from twisted.internet import reactor

    from ftx.cli.commands import COMMANDS, Context
    from ftx.cli.progress import Reporter
    from ftx.cli.reactorthread import Connection, ReactorThread

    reporter = Reporter(quiet=bool(getattr(args, "quiet", False)))
    runner = ReactorThread(reactor)
    connection = Connection(runner, address, **options)
    ctx = Context(connection, reporter, numbered=command == "shell")
    try:
        if command == "shell":
            from ftx.cli.shell import Shell

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
