"""
The exit status of the C{ftx} command, and which error means which: the
table C{ftx --help} prints and the README repeats.
"""

from __future__ import annotations

import errno
from typing import Optional, Tuple

from ftx.cli.conflicts import Refused
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
    TLSError,
    TooLarge,
    Unavailable,
)

__all__ = ["EXIT_CODES", "UsageError", "describe"]

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


def describe(error: BaseException, address: str = "") -> Optional[Tuple[int, str]]:
    """
    The exit status and one-line message for a known error, or L{None}
    for a bug.
    """
    from twisted.internet import error as neterror

    from ftx.client.udp import NoAnswer

    where = " to {}".format(address) if address else ""
    if isinstance(error, UsageError):
        return EXIT_USAGE, str(error)
    if isinstance(error, LoginRequired):
        # The server's text names the wire command; the user needs the flag.
        return EXIT_PERMISSION, "the server{} requires an account: use --user NAME".format(where)
    if isinstance(error, FtxError):
        for classes, code in (
            (Refused, EXIT_CONFLICT), (Conflict, EXIT_CONFLICT), (ConnectionLost, EXIT_LOST),
            (NotFound, EXIT_NOT_FOUND), ((PermissionDenied, LoginFailed, LoginRequired), EXIT_PERMISSION),
            (IntegrityError, EXIT_INTEGRITY), ((NoSpace, TooLarge), EXIT_NO_SPACE),
            ((BadRequest, BadOffset), EXIT_USAGE), ((Unavailable, NoAnswer, TLSError), EXIT_CONNECT),
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
