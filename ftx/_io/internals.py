"""
Every place ftx reaches into an attribute of Twisted that is not public
API, in one module.

The fast paths (C{sendfile} past the transport, C{recv_into} into pooled
buffers, big reads, and counting what C{LineReceiver} holds) need a few
of Twisted's implementation details. Each is reached through a function
here that names the Twisted version it was checked against and falls back
to public behaviour when the detail is missing: the fast path may be
lost, correctness never. C{tests/test_internals.py} fails loudly, naming
the attribute and the fast path lost, when a Twisted release removes one
of them or changes what it means, so the loss is noticed rather than
silent.

The attributes, all checked against Twisted L{TWISTED_CHECKED}:

  - C{twisted.internet.tcp.Connection.socket}: the connected socket
    object (C{getHandle()} returns the same). Used by C{sendfile} and
    C{recv_into}.
  - C{twisted.internet.abstract.FileDescriptor.dataBuffer} and
    C{.offset}: bytes handed to the socket's C{send} by C{doWrite}, and
    how far C{send} got through them; C{_tempDataBuffer} and
    C{._tempDataLen}: bytes given to C{write()} since the last
    C{doWrite}, and their count. Together they say whether everything
    written through the transport has reached the socket.
  - C{FileDescriptor.startWriting()}: adds the descriptor to the
    reactor's writers; C{doWrite} with nothing buffered then asks the
    registered pull producer for more.
  - C{FileDescriptor.bufferSize}: C{tcp.Connection.doRead} passes it to
    C{socket.recv}; C{FileDescriptor._isSendBufferFull} also compares
    unsent bytes with it before pausing a streaming producer.
  - C{tcp.Connection.doRead()}: what every posix reactor calls, looked
    up on the instance at each read event
    (C{posixbase._PollLikeMixin._doReadOrWrite}, C{selectreactor}), so an
    instance attribute of that name takes its place.
  - C{twisted.protocols.basic.LineReceiver._buffer}: what follows the
    last complete line, not yet handed to C{lineReceived}.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from twisted.internet import interfaces
from twisted.protocols import basic

__all__ = [
    "TWISTED_CHECKED",
    "socketOf",
    "transportIdle",
    "wakeWriter",
    "setReadSize",
    "takeOverReads",
    "giveBackReads",
    "readsTakenOver",
    "lineBuffered",
    "lineBufferEmpty",
]

#: The Twisted release every function here was checked against.
TWISTED_CHECKED = "26.10.0"

#: What a transport must have for L{socketOf} to hand out its socket: the
#: socket itself, the write buffer's state (L{transportIdle}), the write
#: wake-up (L{wakeWriter}), a C{doRead} that the reactor looks up on the
#: instance (L{takeOverReads}, which needs a C{__dict__} to shadow it).
_TRANSPORT_ATTRIBUTES = ("socket", "dataBuffer", "offset", "_tempDataLen", "startWriting", "doRead", "__dict__")


def socketOf(transport) -> Optional[object]:
    """
    The socket under C{transport} when bytes may go to or come from it
    directly, else L{None}: TLS, in-memory transports, a Twisted whose
    transports lack the attributes this module uses, platforms without
    C{sendfile}. L{None} sends every caller down the ordinary path, so a
    caller given a socket can rely on L{transportIdle}, L{wakeWriter} and
    L{takeOverReads} working on the same transport.
    """
    if not hasattr(os, "sendfile"):
        return None
    # A TLS transport (TLSMemoryBIOProtocol) also answers getHandle() with
    # the raw socket: bytes sent past it would skip the encryption.
    if interfaces.ISSLTransport.providedBy(transport) or getattr(transport, "TLS", False):
        return None
    if not all(hasattr(transport, name) for name in _TRANSPORT_ATTRIBUTES):
        return None
    # tcp.Connection.socket (Twisted 26.10.0, twisted.internet.tcp): set in
    # Connection.__init__, non-blocking, the socket doRead reads from.
    return transport.socket


def transportIdle(transport) -> bool:
    """
    Whether the transport has written everything it was given, so that
    bytes sent past it land in the right order. Only for transports that
    L{socketOf} accepted.
    """
    # abstract.FileDescriptor (Twisted 26.10.0): write() appends to
    # _tempDataBuffer and adds to _tempDataLen; doWrite() moves those into
    # dataBuffer, sends from dataBuffer[offset:] and advances offset; once
    # offset reaches the end and _tempDataLen is 0, all has gone to the
    # socket.
    return len(transport.dataBuffer) == transport.offset and transport._tempDataLen == 0


def wakeWriter(transport) -> None:
    """
    Ask for a write event on a transport that has nothing buffered, so
    that its registered producer is asked for more once the socket can
    take it. Only for transports that L{socketOf} accepted.
    """
    # abstract.FileDescriptor.startWriting (Twisted 26.10.0): adds the
    # descriptor to the reactor's writers; doWrite with an empty buffer
    # stops writing and calls the pull producer's resumeProducing.
    transport.startWriting()


def setReadSize(transport, size: int) -> None:
    """
    Read up to C{size} bytes per read event instead of Twisted's 64 KiB.
    A transport without the attribute keeps its own size.
    """
    # abstract.FileDescriptor.bufferSize (Twisted 26.10.0, class attribute
    # 2**16): tcp.Connection.doRead calls socket.recv(self.bufferSize). It
    # is also the amount of unsent bytes above which a streaming producer
    # is paused (FileDescriptor._isSendBufferFull).
    if hasattr(transport, "bufferSize"):
        transport.bufferSize = size


def takeOverReads(transport, doRead: Callable[[], object]) -> bool:
    """
    Have the reactor call C{doRead} instead of the transport's own when
    the socket is readable. Returns whether it was installed; a transport
    that does not read through C{doRead} is left alone and keeps calling
    its protocol's C{dataReceived}.
    """
    # The reactor calls selectable.doRead() on a read event and interprets
    # its result like tcp.Connection.doRead's (None, or CONNECTION_DONE /
    # CONNECTION_LOST to close). It looks the method up on the instance
    # each time (Twisted 26.10.0, posixbase._PollLikeMixin._doReadOrWrite
    # for epoll and poll, selectreactor._doReadOrWrite), so an instance
    # attribute shadows the class's method.
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
    # Deleting the instance attribute uncovers tcp.Connection.doRead again.
    del transport.doRead
    return True


def lineBuffered(receiver) -> int:
    """
    How many bytes a C{LineReceiver} holds that it has not yet handed to
    C{lineReceived} (0 when it keeps no such buffer).
    """
    # basic.LineReceiver._buffer (Twisted 26.10.0, bytes): dataReceived
    # appends to it and splits complete lines off its front; what is left
    # is the partial line (or, while paused, the unhandled lines).
    # Without it the bytes are still handled; only the bound on unread
    # input counts less.
    return len(getattr(receiver, "_buffer", b""))


def lineBufferEmpty(receiver) -> bool:
    """
    Whether C{receiver} is known to hold no bytes it has not handed on, so
    that reading the socket directly cannot overtake them. A
    C{LineReceiver} whose buffer cannot be seen (a Twisted without
    C{_buffer}) is not known to be empty: direct reads are then never
    started, and its bytes keep their order.
    """
    # See lineBuffered: LineReceiver._buffer (Twisted 26.10.0).
    buffered = getattr(receiver, "_buffer", None)
    if isinstance(buffered, bytes):
        return not buffered
    return not isinstance(receiver, basic.LineReceiver)
