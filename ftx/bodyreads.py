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
ordinary path throughout (L{ftx.zerocopy.socketOf}).
"""

from __future__ import annotations

from typing import Callable, List, Optional

from twisted.internet import main

#: Size of one receive buffer.
BUFFER_SIZE = 1 << 20
#: Bodies with less than this left to read take the ordinary path: they
#: would not fill a buffer, and a hundred small uploads at once should not
#: hold a hundred buffers.
DIRECT_MIN = 1 << 20
# A read shorter than this is copied out and its buffer reused at once: with
# many connections at a time each read brings little, and a megabyte
# buffer held per read would multiply memory and allocations.
COPY_BELOW = 128 << 10


class _Buffer:
    """
    A receive buffer, lent out with the view of one read.
    """

    __slots__ = ("data", "view", "pool")

    def __init__(self, pool: "BufferPool") -> None:
        self.data = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.data)
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
        #: Bodies being read through this pool now.
        self.active = 0

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

    def _bodyEnded(self) -> None:
        self.active -= 1
        if not self.active:
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
    """

    def __init__(
        self,
        transport,
        sock,
        length: int,
        pool: BufferPool,
        deliver: Callable[[object, Optional[Callable[[], None]]], None],
        done: Callable[[], None],
    ) -> None:
        self.transport = transport
        self.sock = sock
        self.remaining = length
        self.pool = pool
        self.deliver = deliver
        self.done = done

    def install(self) -> None:
        self.transport.doRead = self.doRead
        self.pool.active += 1

    def uninstall(self) -> None:
        if self.transport.__dict__.get("doRead") != self.doRead:
            return
        del self.transport.doRead
        self.pool._bodyEnded()

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
        if got < COPY_BELOW:
            data = bytes(buffer.view[:got])
            buffer.release()
            self.deliver(data, None)
        else:
            self.deliver(buffer.view[:got], buffer.release)
        if last:
            self.done()
        return None
