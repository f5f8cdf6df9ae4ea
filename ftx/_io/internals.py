"""
Every place ftx reaches into an attribute of Twisted that is not public
API, in one module.

The fast paths (C{sendfile} past the transport, C{recv_into} into pooled
buffers, big reads, and counting what C{LineReceiver} holds) need a few
of Twisted's implementation details. Each is reached through a function
here that names the Twisted version it was checked against and falls back
to public behaviour when the detail is missing: the fast path may be
lost, correctness never. C{tests/test_internals.py} fails loudly when a
Twisted release removes one of them, so the loss is noticed rather than
silent.

Checked against Twisted 26.10.0 (C{twisted.internet.abstract.FileDescriptor},
C{twisted.internet.tcp.Connection}, C{twisted.protocols.basic.LineReceiver}).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from twisted.internet import interfaces

__all__ = [
    "socketOf",
    "transportIdle",
    "wakeWriter",
    "setReadSize",
    "takeOverReads",
    "giveBackReads",
    "readsTakenOver",
    "lineBuffered",
]

#: The private attributes of a plain TCP transport the zero-copy paths use:
#: C{dataBuffer}, C{offset} and C{_tempDataLen} tell whether everything
#: written through the transport has reached the socket (so bytes sent past
#: it land in order); C{startWriting} asks for a write event without
#: writing.
_TRANSPORT_ATTRIBUTES = ("socket", "dataBuffer", "offset", "_tempDataLen", "startWriting", "doRead")


def socketOf(transport) -> Optional[object]:
    """
    The socket under C{transport} when bytes may go to or come from it
    directly, else L{None}: TLS, in-memory transports, a Twisted whose
    transports lack the attributes this module uses, platforms without
    C{sendfile}. L{None} sends every caller down the ordinary path.
    """
    if not hasattr(os, "sendfile"):
        return None
    if interfaces.ISSLTransport.providedBy(transport) or getattr(transport, "TLS", False):
        return None
    if not all(hasattr(transport, name) for name in _TRANSPORT_ATTRIBUTES):
        return None
    return transport.socket


def transportIdle(transport) -> bool:
    """
    Whether the transport has written everything it was given, so that
    bytes sent past it land in the right order. Only for transports that
    L{socketOf} accepted.
    """
    # FileDescriptor keeps unsent bytes in dataBuffer from offset on, and
    # bytes written since the last flush in _temporaryBuffer, counted by
    # _tempDataLen (Twisted 26.10.0, abstract.FileDescriptor).
    return len(transport.dataBuffer) == transport.offset and transport._tempDataLen == 0


def wakeWriter(transport) -> None:
    """
    Ask for a write event on a transport that has nothing buffered, so
    that its registered producer is asked for more once the socket can
    take it. Only for transports that L{socketOf} accepted.
    """
    # FileDescriptor.startWriting (Twisted 26.10.0): adds the descriptor to
    # the reactor's writers; doWrite with an empty buffer then resumes the
    # pull producer.
    transport.startWriting()


def setReadSize(transport, size: int) -> None:
    """
    Read up to C{size} bytes per read event instead of Twisted's 64 KiB.
    A transport without the attribute keeps its own size.
    """
    # tcp.Connection.bufferSize (Twisted 26.10.0): the size given to recv().
    if hasattr(transport, "bufferSize"):
        transport.bufferSize = size


def takeOverReads(transport, doRead: Callable[[], object]) -> bool:
    """
    Have the reactor call C{doRead} instead of the transport's own when
    the socket is readable. Returns whether it was installed; a transport
    that does not read through C{doRead} is left alone.
    """
    # The reactor calls selectable.doRead() on a read event (Twisted 26.10.0,
    # every posix reactor); an instance attribute shadows the method.
    if not hasattr(transport, "doRead") or not hasattr(transport, "__dict__"):
        return False
    transport.doRead = doRead
    return True


def readsTakenOver(transport, doRead: Callable[[], object]) -> bool:
    """
    Whether C{doRead} is the transport's read handler now.
    """
    return getattr(transport, "__dict__", {}).get("doRead") == doRead


def giveBackReads(transport, doRead: Callable[[], object]) -> bool:
    """
    Undo L{takeOverReads} if C{doRead} is still installed; returns whether
    it was.
    """
    if not readsTakenOver(transport, doRead):
        return False
    del transport.doRead
    return True


def lineBuffered(receiver) -> int:
    """
    How many bytes a C{LineReceiver} holds that it has not yet handed to
    C{lineReceived} (0 when it keeps no such buffer).
    """
    # LineReceiver._buffer (Twisted 26.10.0): what follows the last
    # complete line. Without it the bytes are still handled; only the
    # bound on unread input counts less.
    return len(getattr(receiver, "_buffer", b""))
