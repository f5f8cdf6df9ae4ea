"""
Sending one large body from a thread of its own, with C{os.sendfile} in a
loop, as a plain C program (or the benchmark's limit client) would.

A process that holds one connection and does nothing else while it
uploads (the C{ftx} command) gains nothing from the reactor during a body:
every few megabytes the socket filled up, the reactor polled, woke the
transport, asked the producer for more and went round again, and on two
cores that Python work per megabyte cost more than the kernel's. Here the
transport stays idle for the body's length; a thread pushes exactly that
many bytes with C{sendfile}, waiting in C{poll} while the socket is full,
and hands the socket back, so the trailer after the body goes out through
the protocol's ordinary path. There is one protocol implementation: only
who writes the body's bytes changes.

Given a hasher, the thread reads and hashes each piece just before it
sends it, rather than leaving the digest to a thread that reads the file
on its own: the receiver's copy out of the socket then finds those pages
still in the shared cache instead of memory, and on a loaded two-core
machine one thread fewer competes for the cores. It reads them into a
page-aligned buffer (L{ftx._io.buffers}): into a C{bytearray} that copy
cost four times as much, and the command's CPU for a 1 GiB C{put} fell
from 1.22-1.40 s to 0.71-0.91 s (0.3 s of either is start-up).

It does not hash from a mapping of the file, though that copies nothing:
hashing from a mapping (64 MiB windows, C{MADV_SEQUENTIAL}) cost the
command 0.89-0.98 s in runs taking turns with the aligned copy's
0.84-0.91 s: its page faults cost more than the copy it saves; and a
mapping kills the process with C{SIGBUS} when another process truncates
the file. A read lease (C{F_SETLEASE}) would make truncation wait for
the holder, but only up to C{/proc/sys/fs/lease-break-time}: a client
stopped (C{^Z}) for longer in the middle of a piece would still fault.
Read, a truncated file is an early end (L{EOFError}), and the upload
fails cleanly.
"""

from __future__ import annotations

import errno
import os
import select
import threading
from typing import Callable, Optional

from ftx._io.buffers import alignedBuffer
from ftx._io.reports import ThrottledReports

__all__ = ["ThreadedSend", "SEND_STEP", "REPORT_EVERY", "REPORT_SECONDS"]

#: Bytes one C{sendfile} call is asked for: the socket takes what fits.
SEND_STEP = 64 << 20
#: Bytes read and hashed at a time before they are sent, with a hasher:
#: few calls per GiB, and still in the shared cache when the receiver
#: copies them out (256 KiB measured the same here, under load).
HASH_STEP = 1 << 20
#: The thread tells the reactor how far it got after this many bytes or
#: L{REPORT_SECONDS}, whichever comes first (progress bars, idle timers).
REPORT_EVERY = 32 << 20
REPORT_SECONDS = 0.1
#: Seconds one wait for room in the socket lasts before the thread checks
#: whether it was told to stop.
_POLL_SECONDS = 0.25
#: Seconds without room in the socket after which the thread gives up and
#: reports what it sent; the caller fails the body (a peer that stopped
#: reading for this long is gone or stuck).
STALL_SECONDS = 120.0


class ThreadedSend:
    """
    Sends C{count} bytes of the file open as C{fd}, from C{offset}, to
    C{sock}, in a new thread.

    @ivar error: why the thread stopped before C{count} bytes: an
        L{OSError} of the socket, L{EOFError} when the file ended early,
        L{TimeoutError} after L{STALL_SECONDS} without room; L{None} when
        all went or the caller stopped it.
    """

    def __init__(self, sock, fd: int, offset: int, count: int, hasher=None) -> None:
        # Both duplicated here, in the reactor thread, while the caller's
        # descriptors are certainly open.
        self._socketFd = os.dup(sock.fileno())
        self._fd = os.dup(fd)
        self._offset = offset
        self._count = count
        self._hasher = hasher
        self._stop = False
        self.error: Optional[BaseException] = None

    def start(self, reactor, progressed: Callable[[int], None], finished: Callable[[int], None]) -> None:
        """
        Start sending. C{progressed(count)} runs in C{reactor}'s thread now
        and then with the bytes sent since the last call; C{finished(count)}
        runs there once, with the bytes sent in all (C{count} unless
        L{error} says why not, or L{stop} was called).
        """
        thread = threading.Thread(
            target=self._run, args=(reactor, progressed, finished), name="ftx-body-send", daemon=True
        )
        try:
            thread.start()
        except RuntimeError as e:
            # No thread to be had (the interpreter is shutting down).
            os.close(self._socketFd)
            os.close(self._fd)
            self.error = OSError(errno.EAGAIN, str(e))
            finished(0)

    def stop(self) -> None:
        """
        The connection is gone or the body is abandoned: the thread stops
        at its next wake-up.
        """
        self._stop = True

    def _run(self, reactor, progressed, finished) -> None:
        sent = 0
        reports = ThrottledReports(reactor, progressed, REPORT_EVERY, REPORT_SECONDS)
        quiet = 0.0
        socketFd, fd, offset, count = self._socketFd, self._fd, self._offset, self._count
        hasher = self._hasher
        # With a hasher, bytes up to here are hashed and may be sent.
        hashed = offset + count
        if hasher is not None:
            view = alignedBuffer(min(HASH_STEP, count))
            hashed = offset
        try:
            poller = select.poll()
            poller.register(socketFd, select.POLLOUT)
            while sent < count and not self._stop:
                if offset + sent == hashed:
                    got = os.preadv(fd, [view[: min(HASH_STEP, count - sent)]], hashed)
                    if not got:
                        raise EOFError("the file ended early")
                    hasher.update(view[:got])
                    hashed += got
                try:
                    n = os.sendfile(socketFd, fd, offset + sent, min(hashed - offset - sent, SEND_STEP))
                except (BlockingIOError, InterruptedError):
                    # The socket stays non-blocking (the reactor owns it):
                    # wait here for room instead.
                    if poller.poll(_POLL_SECONDS * 1000):
                        quiet = 0.0
                    else:
                        quiet += _POLL_SECONDS
                        if quiet >= STALL_SECONDS:
                            raise TimeoutError(errno.ETIMEDOUT, "no room to send for {:.0f} seconds".format(quiet))
                    continue
                if n == 0:
                    raise EOFError("the file ended early")
                sent += n
                reports.add(n, more=sent < count)
        except (OSError, EOFError, ValueError) as e:
            self.error = e
        finally:
            os.close(socketFd)
            os.close(fd)
            reports.flush()
            reactor.callFromThread(finished, sent)
