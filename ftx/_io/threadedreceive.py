"""
Receiving a large upload body on the server in a thread of its own:
blocking-style C{recv_into} into one small buffer, then the write and the
hash of those same bytes, as the benchmark's limit server does (and a
hash more).

Through the reactor each read of a body was a poll, a pooled megabyte, a
hand-off to a store thread on the other core and a hop back to release
the buffer; on two cores that cost about half again the server's CPU of
the copies themselves, and the bytes were written from another core's
cache. Here the reactor stops reading the socket while the body streams;
the thread reads no more than the body's remaining length, so the line
after it (the trailer) still arrives through the protocol's ordinary
path, and it gives the socket back as soon as the client goes quiet for
L{HAND_BACK_SECONDS}, so a slow or stalled upload is the reactor's again,
with its timers, rate limits and take-overs.

Few at a time (L{Slots}): a server with many uploads at once serves the
rest through the reactor, so threads never outnumber the cores.

The thread reads through its own duplicate of the socket's descriptor: a
connection dropped meanwhile cannot make it read another connection that
reused the number. It stops at its next wake-up once told to (L{stop}).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Callable, Optional

from twisted.internet.defer import Deferred

from ftx._io.buffers import PAGE, alignedBuffer, landing
from ftx._io.lentsocket import LentSocket
from ftx._io.reports import ThrottledReports

__all__ = ["ThreadedReceive", "Slots", "slots", "BUFFER_SIZE", "HAND_BACK_SECONDS", "THREAD_MIN"]

#: One receive buffer: small enough that the write and the hash after the
#: read find its bytes still in this core's cache.
BUFFER_SIZE = 256 << 10
#: Bodies with less than this left take the reactor's path: a thread
#: costs more than it saves on a few megabytes.
THREAD_MIN = 16 << 20
#: Seconds without a byte after which the thread gives the socket back.
HAND_BACK_SECONDS = 1.0
#: The thread tells the reactor how far it got after this many bytes or
#: L{REPORT_SECONDS} (the connection's idle timer, progress in logs).
REPORT_EVERY = 32 << 20
REPORT_SECONDS = 0.25
#: Seconds one wait for bytes lasts before the thread checks whether it
#: was told to stop.
_POLL_SECONDS = 0.1


class Slots:
    """
    How many bodies may be received by threads at once: half the cores,
    at least one. Reactor thread only.
    """

    def __init__(self, limit: Optional[int] = None) -> None:
        self.limit = limit if limit is not None else max(1, (os.cpu_count() or 2) // 2)
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1


#: The slots of the process.
slots = Slots()


class ThreadedReceive:
    """
    Reads up to C{length} bytes of C{sock} in a new thread and hands each
    read to C{store(view)} and C{hasher.update(view)} in that thread.

    @ivar error: the first exception C{store} or the hasher raised; later
        bytes are still read, so the body stays framed, and dropped.
    """

    def __init__(
        self, sock, length: int, store: Callable[[memoryview], None], hasher, position: Callable[[], int] = lambda: 0
    ) -> None:
        # Duplicated here, in the reactor thread, while the socket is
        # certainly open.
        self._sock = socket.socket(fileno=os.dup(sock.fileno()))
        self._length = length
        self._store = store
        self._hasher = hasher
        #: The file position of the next byte to store, asked as the thread
        #: starts: each read lands where L{buffers.landing} says.
        self._position = position
        self._stop = False
        self.error: Optional[BaseException] = None
        #: Fires (in the reactor thread) with the bytes read, once the
        #: thread is done with the socket, the store and the hasher.
        self.finished: Deferred = Deferred()

    def start(self, reactor, progressed: Callable[[int], None]) -> None:
        """
        Start reading. C{progressed(count)} runs in C{reactor}'s thread now
        and then with the bytes read since the last call; L{finished} fires
        there with the bytes read in all: the length asked for, or fewer
        when the client went quiet, closed, the socket failed or L{stop}
        was called (the reactor finds out which on its next read).
        """
        thread = threading.Thread(target=self._run, args=(reactor, progressed), name="ftx-upload-body", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # No thread to be had (the interpreter is shutting down): none
            # of the body was read, the reactor reads it.
            self._sock.close()
            self.finished.callback(0)

    def stop(self) -> None:
        """
        The connection is gone: the thread stops at its next wake-up.
        """
        self._stop = True

    def _run(self, reactor, progressed) -> None:
        sock = self._sock
        # Page-aligned: the kernel's copies into it and out of it (the
        # write) cost a third of what they cost into a bytearray.
        view = alignedBuffer(min(BUFFER_SIZE, self._length) + PAGE)
        remaining = self._length
        reports = ThrottledReports(reactor, progressed, REPORT_EVERY, REPORT_SECONDS)
        store, update = self._store, self._hasher.update
        try:
            position = self._position()
            lent = LentSocket(sock, _POLL_SECONDS, HAND_BACK_SECONDS, lambda: self._stop)
            while remaining and not self._stop:
                begin = landing(position)
                got = lent.recvInto(view[begin:], min(remaining, BUFFER_SIZE))
                if not got:
                    break
                position += got
                if self.error is None:
                    try:
                        piece = view[begin : begin + got]
                        store(piece)
                        update(piece)
                    except Exception as e:
                        self.error = e
                remaining -= got
                reports.add(got)
        except (OSError, ValueError):
            pass
        finally:
            sock.close()
            reports.flush()
            reactor.callFromThread(self.finished.callback, self._length - remaining)
