"""
Reading a body of known length straight from a plain socket into reused
buffers.

Twisted reads into a new C{bytes} object each time. For a body that is one
more buffer of megabytes for malloc, and glibc hands each one back to the
kernel and takes it again, so every page of a transfer is faulted in anew:
measured here, 150,000 page faults and about a second of system time per
GiB received. Reading with C{recv_into} into a few recycled buffers, as a
plain C program would, costs none of that.

While a L{DirectBody} is installed it takes the place of the transport's
C{doRead}: it reads no more than the body's remaining length, so the line
after the body still arrives through the protocol's ordinary path. TLS
transports, and anything that is not a plain Twisted socket, keep the
ordinary path throughout (L{ftx._io.internals.socketOf}).
"""

from __future__ import annotations

import socket
import weakref
from typing import Callable, List, Optional

from twisted.internet import main

from ftx._io import internals
from ftx._io.buffers import alignedBuffer

#: Size of one receive buffer.
BUFFER_SIZE = 1 << 20
#: Bodies with less than this left to read take the ordinary path: they
#: would not fill a buffer, and a hundred small uploads at once should not
#: hold a hundred buffers.
DIRECT_MIN = 1 << 20
#: While a body arrives fast, the socket reports itself readable only once
#: this much has arrived (C{SO_RCVLOWAT}; less near the end of the body):
#: each wake-up then brings a good part of a buffer rather than the last
#: few segments, so a GiB takes fewer trips through the reactor and the
#: worker threads (3,000 reads per GiB on loopback without it).
LOW_WATER = 256 << 10
#: ... but never more than the sender delivers in this many seconds at its
#: rate, so a slow sender is not kept waiting.
LOW_WATER_WAIT = 0.05
#: After this many seconds without a read the mark drops back to one byte,
#: so what a sender that stopped did send is read (and kept, for a resume)
#: and a connection's idle timer sees it.
LOW_WATER_STALL = 0.1
# A read shorter than this is copied out and its buffer reused at once: with
# many connections at a time each read brings little, and a megabyte
# buffer held per read would multiply memory and allocations.
COPY_BELOW = 128 << 10


class _Buffer:
    """
    A receive buffer, lent out with the view of one read.
    """

    __slots__ = ("view", "pool")

    def __init__(self, pool: "BufferPool") -> None:
        # Page-aligned (L{ftx._io.buffers}): the kernel copies into it
        # several times faster than into a bytearray.
        self.view = alignedBuffer(BUFFER_SIZE)
        self.pool = pool

    def release(self) -> None:
        self.pool._give(self)


class BufferPool:
    """
    Receive buffers handed back once every consumer of their bytes is done,
    and kept for the next read. One pool serves all the connections of a
    process, so a hundred transfers that are over do not each keep
    megabytes. Touched only from the reactor thread.
    """

    def __init__(self, idleKeep: int = 2) -> None:
        self._free: List[_Buffer] = []
        self._idleKeep = idleKeep
        #: The bodies being read through this pool now: a set of weak
        #: references rather than a count, so that a body whose connection
        #: went without its L{DirectBody.uninstall} does not count for ever
        #: (the embedded client asks L{active} before it reads a body with
        #: a thread of its own).
        self._bodies: "weakref.WeakSet[DirectBody]" = weakref.WeakSet()

    @property
    def active(self) -> int:
        """
        How many bodies are being read through this pool now.
        """
        return len(self._bodies)

    def take(self) -> _Buffer:
        if self._free:
            return self._free.pop()
        return _Buffer(self)

    def _give(self, buffer: _Buffer) -> None:
        # While bodies are being read, every buffer comes back for the next
        # read: what is in flight at once is already bounded by the lanes'
        # backpressure, and a buffer dropped now would be a fresh megabyte
        # to allocate and fault in a moment later. Once no body is read,
        # all but a couple go.
        if self.active or len(self._free) < self._idleKeep:
            self._free.append(buffer)

    def _bodyStarted(self, body: "DirectBody") -> None:
        self._bodies.add(body)

    def _bodyEnded(self, body: "DirectBody") -> None:
        if body not in self._bodies:
            return
        self._bodies.discard(body)
        if not self._bodies:
            # No transfer is running: let the memory go back, but for a
            # couple of buffers for the next one.
            del self._free[self._idleKeep :]


#: The pool of the process's reactor thread.
sharedPool = BufferPool()


class DirectBody:
    """
    Reads C{length} bytes from C{sock} into pooled buffers and hands each
    read to C{deliver(data, release)}: a view of a pooled buffer with the
    callable that gives it back once the consumer is done with it, or, for
    a short read, a copy and L{None}. C{done()} runs after the last byte,
    with the transport back on its ordinary reads.

    Given a C{clock} (the reactor, or a L{twisted.internet.task.Clock} in
    tests), it raises the socket's low-water mark while bytes stream in
    fast (L{LOW_WATER}) and lowers it again as soon as they stop
    (L{LOW_WATER_STALL}); rates and stalls are measured in
    C{clock.seconds()}. Without one the mark stays at one byte.
    """

    def __init__(
        self,
        transport,
        sock,
        length: int,
        pool: BufferPool,
        deliver: Callable[[object, Optional[Callable[[], None]]], None],
        done: Callable[[], None],
        clock=None,
    ) -> None:
        self.transport = transport
        self.sock = sock
        self.remaining = length
        self.pool = pool
        self.deliver = deliver
        self.done = done
        self.clock = clock
        self._lowWater = 1
        self._stallCheck = None
        self._read = 0
        self._started = self._lastRead = 0.0

    def install(self) -> bool:
        """
        Take over the transport's reads. Returns whether it did: a
        transport that L{internals.socketOf} accepted always lets it; any
        other keeps its ordinary reads and this body is never used.
        """
        if not internals.takeOverReads(self.transport, self.doRead):
            return False
        self.pool._bodyStarted(self)
        if self.clock is not None:
            self._started = self._lastRead = self.clock.seconds()
        return True

    def uninstall(self) -> None:
        # The stall timer goes whatever happened to the transport: one left
        # running after a dropped connection would outlive it.
        if self._stallCheck is not None and self._stallCheck.active():
            self._stallCheck.cancel()
        self._stallCheck = None
        # The body no longer counts, even when its reads were taken back
        # already (by another body installed over it).
        self.pool._bodyEnded(self)
        if not internals.giveBackReads(self.transport, self.doRead):
            return
        self._setLowWater(1)

    def _adjustLowWater(self, got: int) -> None:
        """
        Wait for more per wake-up while the body streams in fast: about
        L{LOW_WATER_WAIT} seconds' worth, in powers of two up to
        L{LOW_WATER}, and never more than what is left. The rate is the
        lower of this read's and the body's so far: two reads close
        together do not make a slow sender look fast, and a sender that
        slows down is caught at its next read.
        """
        if self.clock is None:
            return
        now = self.clock.seconds()
        self._read += got
        rate = min(got / max(now - self._lastRead, 0.001), self._read / max(now - self._started, 0.01))
        self._lastRead = now
        wanted = min(int(rate * LOW_WATER_WAIT), LOW_WATER, self.remaining)
        value = 1 << (wanted.bit_length() - 1) if wanted >= 16 << 10 else 1
        if value != self._lowWater:
            self._setLowWater(value)
        if self._lowWater > 1 and self._stallCheck is None:
            self._stallCheck = self.clock.callLater(LOW_WATER_STALL, self._checkStall)

    def _checkStall(self) -> None:
        self._stallCheck = None
        quiet = self.clock.seconds() - self._lastRead
        if quiet >= LOW_WATER_STALL:
            self._setLowWater(1)
        elif self._lowWater > 1:
            self._stallCheck = self.clock.callLater(LOW_WATER_STALL - quiet, self._checkStall)

    def _setLowWater(self, value: int) -> None:
        if value == self._lowWater:
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, value)
        except OSError:
            # Some sockets refuse it: reading then wakes up more often.
            return
        self._lowWater = value

    def doRead(self):
        buffer = self.pool.take()
        want = min(self.remaining, BUFFER_SIZE)
        try:
            got = self.sock.recv_into(buffer.view, want)
        except (BlockingIOError, InterruptedError):
            buffer.release()
            return None
        except OSError:
            buffer.release()
            self.uninstall()
            return main.CONNECTION_LOST
        if not got:
            buffer.release()
            self.uninstall()
            return main.CONNECTION_DONE
        self.remaining -= got
        last = self.remaining == 0
        if last:
            self.uninstall()
        else:
            self._adjustLowWater(got)
        if got < COPY_BELOW:
            data = bytes(buffer.view[:got])
            buffer.release()
            self.deliver(data, None)
        else:
            self.deliver(buffer.view[:got], buffer.release)
        if last:
            self.done()
        return None
