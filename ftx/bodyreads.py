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
# A buffer with less room than this left is retired and a fresh one taken,
# so reads stay large even when the kernel hands over less than asked.
MIN_ROOM = 128 << 10


class _Buffer:
    """
    A receive buffer and a count of the slices of it still in use.
    """

    __slots__ = ("data", "view", "used", "holders", "pool")

    def __init__(self, pool: "BufferPool") -> None:
        self.data = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.data)
        self.used = 0
        # One hold for the reader while it may still fill the buffer.
        self.holders = 1
        self.pool = pool

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self.used = 0
            self.holders = 1
            self.pool._give(self)


class BufferPool:
    """
    Receive buffers handed back once every consumer of their bytes is done,
    and kept for the next read, up to C{keep} of them: one pool serves all
    the connections of a process, so a hundred transfers that are over
    do not each keep megabytes. Touched only from the reactor thread.
    """

    def __init__(self, keep: int = 16, idleKeep: int = 2) -> None:
        self._free: List[_Buffer] = []
        self._keep = keep
        self._idleKeep = idleKeep
        #: Bodies being read through this pool now.
        self.active = 0

    def take(self) -> _Buffer:
        if self._free:
            return self._free.pop()
        return _Buffer(self)

    def _give(self, buffer: _Buffer) -> None:
        if len(self._free) < (self._keep if self.active else self._idleKeep):
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
    read to C{deliver(view, release)}; the consumer calls C{release()} once
    it no longer needs C{view}. C{done()} runs after the last byte, with
    the transport back on its ordinary reads.
    """

    def __init__(
        self,
        transport,
        sock,
        length: int,
        pool: BufferPool,
        deliver: Callable[[memoryview, Callable[[], None]], None],
        done: Callable[[], None],
    ) -> None:
        self.transport = transport
        self.sock = sock
        self.remaining = length
        self.pool = pool
        self.deliver = deliver
        self.done = done
        self._buffer: Optional[_Buffer] = None

    def install(self) -> None:
        self.transport.doRead = self.doRead
        self.pool.active += 1

    def uninstall(self) -> None:
        if self.transport.__dict__.get("doRead") != self.doRead:
            return
        del self.transport.doRead
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            buffer.release()
        self.pool._bodyEnded()

    def doRead(self):
        buffer = self._buffer
        if buffer is None or BUFFER_SIZE - buffer.used < MIN_ROOM:
            if buffer is not None:
                buffer.release()
            buffer = self._buffer = self.pool.take()
        start = buffer.used
        want = min(self.remaining, BUFFER_SIZE - start)
        try:
            got = self.sock.recv_into(buffer.view[start : start + want])
        except BlockingIOError:
            return None
        except InterruptedError:
            return None
        except OSError:
            self.uninstall()
            return main.CONNECTION_LOST
        if not got:
            self.uninstall()
            return main.CONNECTION_DONE
        buffer.used += got
        buffer.holders += 1
        self.remaining -= got
        last = self.remaining == 0
        if last:
            self.uninstall()
        self.deliver(buffer.view[start : start + got], buffer.release)
        if last:
            self.done()
        return None
