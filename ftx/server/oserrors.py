"""
Operating-system errors turned into the wire errors a client can act on.
"""

from __future__ import annotations

import errno

from ftx.errors import Conflict, FtxError, NoSpace, NotFound, PermissionDenied
from ftx.protocol.wire import nameText

__all__ = ["errorFromOS"]


def errorFromOS(error: OSError, name: bytes) -> FtxError:
    """
    Map an operating-system error to the wire error a client can act on.
    """
    shown = nameText(name)
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound("no such file: {}".format(shown))
    if error.errno == errno.ELOOP:
        # A loop of symbolic links (ln -s a b; ln -s b a) leads nowhere:
        # for a client it is a name with no file behind it.
        return NotFound("no such file: {} (a loop of symbolic links)".format(shown))
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied("permission denied: {}".format(shown))
    if error.errno == errno.EISDIR:
        return Conflict("is a directory: {}".format(shown))
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace("no space left on the server for {}".format(shown))
    if error.errno == errno.ENAMETOOLONG:
        return PermissionDenied("name too long: {}".format(shown[:80]))
    return FtxError("cannot access {}: {}".format(shown, error.strerror))
