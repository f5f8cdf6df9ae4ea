"""
Sending file bytes with C{os.sendfile} on plain sockets.

Reading a file into Python and writing it to a socket copies every byte
twice through user space and holds it in memory while the socket is full.
C{sendfile} lets the kernel move the bytes from the page cache to the
socket; on a 2-core machine it is the difference between the server using
a core per GiB/s and using almost none.

It only applies when nothing sits between the protocol and the socket: a
TLS transport must encrypt in user space, so it keeps the ordinary path.
Twisted's transports have no C{sendfile} of their own, so the socket is
used directly (L{ftx._io.internals.socketOf}), and only while the
transport's own buffer is empty: bytes written through the transport
earlier must reach the wire first.
"""

from __future__ import annotations

import errno
import os

from ftx.errors import IntegrityError

#: Bytes one call to L{sendSome} may push before giving the reactor back,
#: so that one fast reader cannot starve the other connections.
TURN = 4 << 20


def sendSome(sock, fd: int, offset: int, count: int) -> int:
    """
    Send up to C{min(count, TURN)} bytes of C{fd} from C{offset}. Returns
    how many went; fewer than asked means the socket is full for now.

    @raise EOFError: the file ended before C{offset + count}.
    @raise OSError: the connection failed.
    """
    want = min(count, TURN)
    sent = 0
    socketFd = sock.fileno()
    while sent < want:
        try:
            n = os.sendfile(socketFd, fd, offset + sent, want - sent)
        except BlockingIOError:
            break
        except InterruptedError:
            continue
        except OSError as e:
            if e.errno == errno.EAGAIN:
                break
            if sent:
                # Report what went; the next call meets the error again.
                break
            raise
        if n == 0:
            raise EOFError("the file ended early")
        sent += n
    return sent


def whySendingStopped(error: Exception) -> Exception:
    """
    What a sender reports when L{sendSome} raised C{error}: a file that
    ended early is the file's fault (an L{IntegrityError}, the same for
    every body), anything else the connection's.
    """
    if isinstance(error, EOFError):
        return IntegrityError("the file shrank while it was being sent")
    return ConnectionError("sending failed: {}".format(error.strerror))
