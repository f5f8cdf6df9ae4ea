"""
The C{ftx} command: one-shot commands (C{ftx list}, C{ftx sget NAME}, ...)
and the interactive shell (C{ftx shell}).

A known problem is one C{ftx: error: ...} line on stderr and a documented
exit status (L{ftx.cli.status.EXIT_CODES}); a traceback means a bug in ftx.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import List, Optional, Tuple

from ftx._io import lazymodules, notls
from ftx._io.endpoints import isTLS, parseAddress
from ftx.cli.addresses import parseServerOption
from ftx.cli.config import loadConfig, netrcLogin
from ftx.cli.parser import DEFAULT_SERVER, buildParser
from ftx.cli.progress import isTerminal
from ftx.cli.remotefolder import applyFolder
from ftx.cli.status import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, describe
from ftx.cli.terminal import printable

__all__ = ["main", "run"]


def sessionOptions(args, config: Optional[dict] = None) -> Tuple[str, dict]:
    """
    The address and the L{ftx.client.connect} keywords the options ask
    for, each setting taken from the flags, else the environment, else the
    config file, else C{~/.netrc} (L{ftx.cli.config}). Sets C{args.folder}
    to the remote folder the address names.

    @raise UsageError: the address is malformed or no password is at hand.
    """
    config = {} if config is None else config
    text = getattr(args, "server", None)
    if text is None:
        text = os.environ.get("FTX_SERVER") or config.get("server") or DEFAULT_SERVER
    server = parseServerOption(text, getattr(args, "port", None))
    args.folder = server.folder
    address = server.address
    tlsOptions = {option: getattr(args, option, None) for option in ("tls", "cafile", "insecure", "cert")}
    wantsTLS = server.tls or any(tlsOptions.values()) or bool(config.get("tls"))
    # Before the reactor is imported: what Twisted imports and a command
    # never uses loads on first use (ftx._io.lazymodules), and a plain
    # connection starts faster without the TLS libraries (ftx._io.notls).
    if not wantsTLS:
        notls.leaveOutTLS()
    lazymodules.deferImports()
    from twisted.internet import reactor

    from ftx.client.api import ClientTLS, endpointFromAddress

    try:
        endpointFromAddress(reactor, address)
    except ValueError as e:
        raise UsageError("bad --server address: {}".format(e))
    user = getattr(args, "user", None) or server.user or os.environ.get("FTX_USER") or config.get("user")
    netrcUser, netrcPassword = netrcLogin(server.host, user)
    user = user or netrcUser
    options: dict = {}
    if user is not None:
        options["credentials"] = (user, _password(args, user, netrcPassword))
        if not wantsTLS and parseAddress(address).isTCP:
            sys.stderr.write("ftx: warning: the password is sent unencrypted (no TLS); use --tls if the server offers it\n")
    cafile = tlsOptions["cafile"] or config.get("cafile")
    if wantsTLS and (cafile or not isTLS(address) or any(tlsOptions.values())):
        options["tls"] = ClientTLS(cafile=cafile, insecure=bool(tlsOptions["insecure"]), certificate=tlsOptions["cert"])
    checksum = getattr(args, "checksum", None) or config.get("checksum", "auto")
    if checksum != "auto":
        options["checksum"] = checksum
    options["compress"] = getattr(args, "compress", None) or config.get("compress", "auto")
    # The command line's rate wins, even 0 (no limit) over the file's.
    limitRate = getattr(args, "limit_rate", None)
    if limitRate is None:
        limitRate = config.get("limit-rate")
    if limitRate:
        options["limitRate"] = limitRate
    return address, options


def _conflictDefault(parser, args, config: dict) -> None:
    """
    The config file's conflict policy, for this command line and for the
    shell's lines, where no --overwrite/--rename/--skip is given.
    """
    policy = config.get("conflict")
    if policy is None:
        return
    if getattr(args, "conflict", "absent") is None:
        args.conflict = policy
    for command in parser.commands.values():
        if command.get_default("conflict") is None and any(a.dest == "conflict" for a in command._actions):
            command.set_defaults(conflict=policy)


def _password(args, user: str, fromNetrc: Optional[str] = None) -> str:
    """
    The password for C{user}: from C{--password-file}, else
    C{$FTX_PASSWORD}, else C{~/.netrc}, else asked on the terminal.

    @raise UsageError: none of them is at hand, or the file is empty.
    """
    passwordFile = getattr(args, "password_file", None)
    if passwordFile is not None:
        try:
            with open(passwordFile, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as e:
            raise UsageError("cannot read --password-file {}: {}".format(passwordFile, e.strerror))
        except UnicodeDecodeError:
            raise UsageError("--password-file {} is not UTF-8 text".format(passwordFile))
        if not password:
            raise UsageError("--password-file {} is empty: put the password on its first line".format(passwordFile))
        return password
    if "FTX_PASSWORD" in os.environ:
        return os.environ["FTX_PASSWORD"]
    if fromNetrc is not None:
        return fromNetrc
    if isTerminal(sys.stdin):
        import getpass

        return getpass.getpass("Password for {}: ".format(user))
    raise UsageError("--user needs a password: --password-file, $FTX_PASSWORD, ~/.netrc, or run on a terminal")


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


#: The status of a command whose output was cut short (C{ls | head}):
#: 128 + SIGPIPE, what the shell reports for C{ls} itself.
EXIT_PIPE_CLOSED = 141


def run(argv: Optional[List[str]] = None) -> int:
    """
    Run the command line C{argv}; return the exit status.
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:
        _interrupted(None)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _pipeClosed()


def _pipeClosed() -> int:
    """
    Whoever read stdout stopped reading (C{ftx list | head -1}): leave
    quietly, as C{ls} does. Later writes, and the flush at exit, go
    nowhere instead of raising again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_PIPE_CLOSED


def _printAndLeave(args, parser) -> Optional[int]:
    """
    C{--print-completion SHELL} and C{--print-man-page}: print, then
    leave without connecting. L{None} when neither was asked for.
    """
    if getattr(args, "print_completion", None):
        from ftx.cli.completion import completionScript

        sys.stdout.write(completionScript(parser, args.print_completion))
        return EXIT_OK
    if getattr(args, "print_man_page", False):
        from ftx.cli.completion import manPage

        sys.stdout.write(manPage(parser))
        return EXIT_OK
    return None


def _run(argv: Optional[List[str]]) -> int:
    # Only the parser of the command argv names (all of them for the shell).
    parser = buildParser(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        printed = _printAndLeave(args, parser)
        if printed is not None:
            return printed
        command = args.command
        if command is None:
            if not isTerminal(sys.stdin):
                raise UsageError("no command given (see 'ftx --help')")
            command = "shell"
        config = loadConfig()
        address, options = sessionOptions(args, config)
        _conflictDefault(parser, args, config)
        if command != "shell":
            applyFolder(args, args.folder)
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
    from ftx.cli.reactorthread import ReactorThread
    from ftx.cli.verbose import connectionFor

    _resumeCollector()
    verbose = bool(getattr(args, "verbose", False))
    reporter = Reporter(quiet=bool(getattr(args, "quiet", False)))
    runner = ReactorThread(reactor)
    connection = connectionFor(runner, address, options, reporter if verbose else None)
    ctx = Context(connection, reporter, numbered=command == "shell")
    try:
        if command == "shell":
            from ftx.cli.shell import Shell

            return Shell(ctx, parser, describe, folder=args.folder).run()
        with connection.timed(command):
            return COMMANDS[command](ctx, args)
    except KeyboardInterrupt:
        _interrupted(ctx)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _pipeClosed()
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


#: Whether L{main} paused the garbage collector for the start-up.
_collectorPaused = False


def _pauseCollector() -> None:
    """
    No garbage collection while the command starts: importing the reactor
    and the client makes some 30,000 objects that live as long as the
    process, and the collector, run every 700 new objects, scans them over
    and over for cycles it will not find: about a tenth of a small
    command's CPU time. L{_resumeCollector} turns it back on.
    """
    global _collectorPaused
    if gc.isenabled():
        gc.disable()
        _collectorPaused = True


def _resumeCollector() -> None:
    """
    The start-up is over: collect again, leaving out for good what the
    start-up made (C{gc.freeze}), which a long transfer or the shell would
    otherwise have scanned in every full collection.
    """
    global _collectorPaused
    if _collectorPaused:
        _collectorPaused = False
        gc.freeze()
        gc.enable()


#: The status L{main} leaves with, once the command has returned it.
_leavingWith: Optional[int] = None


def _leaveNow() -> None:
    """
    The console script's last exit handler (registered first, so run after
    every other one, such as the quick check's saving of its digest cache):
    end the process without taking the interpreter apart. Freeing every
    object of the 350 modules a command imports, which the process is
    about to give back whole, was 3% of the CPU time of C{ftx df}. Nothing
    is lost: the reactor has stopped, the command closed its files, threads
    that must finish were waited for before exit handlers run, and stdout
    and stderr are flushed here. If flushing fails, Python's own exit
    reports it as it always did.
    """
    if _leavingWith is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        return
    os._exit(_leavingWith)


def main() -> None:
    """
    The C{ftx} console script.
    """
    global _leavingWith
    atexit.register(_leaveNow)
    _pauseCollector()
    status = run(sys.argv[1:])
    _leavingWith = status if isinstance(status, int) else None
    sys.exit(status)
