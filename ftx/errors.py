"""
The errors ftx raises, on either side of the wire.

Each class owns a numeric code and a token. The server turns an exception
into ``CODE TOKEN MESSAGE``; the client turns that line back into an instance
of the same class, so code that embeds the client can catch
``NotFound`` whether the file was missing here or on the server. The
docstrings are written for people: the command line prints them.
"""

from __future__ import annotations

from typing import Dict, Type

__all__ = [
    "FtxError",
    "BadRequest",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "AlreadyExists",
    "TooLarge",
    "BadOffset",
    "IntegrityError",
    "LoginRequired",
    "LoginFailed",
    "Unavailable",
    "NoSpace",
    "ServerError",
    "ConnectionLost",
    "TLSError",
    "CertificateError",
    "UnsafeName",
    "errorFromReply",
]


class FtxError(Exception):
    """
    Something went wrong with a file transfer.
    """

    code: int = 500
    token: str = "server-error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message or (self.__doc__ or "").strip()

    def __str__(self) -> str:
        return self.message


class BadRequest(FtxError):
    """
    The request was malformed: unknown command or wrong arguments.
    """

    code = 400
    token = "bad-request"


class LoginRequired(FtxError):
    """
    The server needs you to log in first.
    """

    code = 401
    token = "login-required"


class PermissionDenied(FtxError):
    """
    You may not do that: the name leaves the server's folder, the server is
    read-only, or your account lacks the right.
    """

    code = 403
    token = "permission-denied"


class NotFound(FtxError):
    """
    No such file.
    """

    code = 404
    token = "not-found"


class Conflict(FtxError):
    """
    The name is in use in a way that prevents this (a directory, or an upload
    already in progress).
    """

    code = 409
    token = "conflict"


class AlreadyExists(Conflict):
    """
    A file of that name is already there, and you asked not to replace it.
    """

    # The same code as Conflict (an old client still reads a conflict);
    # the token tells the two apart.
    token = "exists"


class TooLarge(FtxError):
    """
    The file is larger than the server accepts.
    """

    code = 413
    token = "too-large"


class BadOffset(FtxError):
    """
    An offset or length lies beyond the end of the file.
    """

    code = 416
    token = "bad-offset"


class IntegrityError(FtxError):
    """
    The data does not match its digest: the transfer was corrupted, or the file
    changed on the server since the partial copy was made.
    """

    code = 422
    token = "integrity"


class LoginFailed(FtxError):
    """
    Wrong user name or password.
    """

    code = 430
    token = "login-failed"


class ServerError(FtxError):
    """
    The server failed to carry out the request; its log has the details.
    """

    code = 500
    token = "server-error"


class Unavailable(FtxError):
    """
    The server is shutting down or serving too many clients; try again later.
    """

    code = 503
    token = "unavailable"


class NoSpace(FtxError):
    """
    There is not enough space: the quota or the disk is full.
    """

    code = 507
    token = "no-space"


class ConnectionLost(FtxError):
    """
    The connection to the server was lost before the request completed.
    """

    # Never sent on the wire: it only happens on the client side.
    code = 0
    token = "connection-lost"


class TLSError(FtxError):
    """
    The secure (TLS) connection to the server could not be set up.
    """

    # Client side only, like ConnectionLost: a TLS failure happens before
    # there is a protocol to carry a code.
    code = 0
    token = "tls"


class CertificateError(TLSError):
    """
    The server's certificate could not be verified: it is not signed by an
    authority this client trusts, it has expired, or it was not issued for
    the host name you connected to.
    """

    token = "certificate"


class UnsafeName(PermissionDenied):
    """
    The server sent a name this client will not write: it leaves the target
    folder (C{..}, an absolute path, a local link leading out), holds a
    control character, or does not match what was asked for. That file was
    not written; the server may be faulty or hostile.
    """

    # Client side only: the client refuses, the server never sends it.
    code = 0
    token = "unsafe-name"

    def __init__(self, message: str = "", name: "bytes | None" = None) -> None:
        super().__init__(message)
        #: The refused name as the server sent it, when there is one.
        self.name = name


_byCode: Dict[int, Type[FtxError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        LoginRequired,
        PermissionDenied,
        NotFound,
        Conflict,
        TooLarge,
        BadOffset,
        IntegrityError,
        LoginFailed,
        ServerError,
        Unavailable,
        NoSpace,
    )
}


#: Errors that share a code with another and are told apart by their token.
_byToken: Dict[str, Type[FtxError]] = {AlreadyExists.token: AlreadyExists}


def errorFromReply(code: int, message: str, token: str = "") -> FtxError:
    """
    Rebuild the exception the server sent. Codes this client does not know
    still become an L{FtxError} so callers have one thing to catch.
    """
    cls = _byToken.get(token)
    if cls is None or cls.code != code:
        cls = _byCode.get(code)
    if cls is None:
        error = FtxError(message or "error {}".format(code))
        error.code = code
        return error
    return cls(message)
