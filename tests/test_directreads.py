"""
Reading a body straight from a socket into pooled buffers
(L{ftx._io.bodyreads.DirectBody}): exactly the body's length, the line
after it left for the protocol, and the socket's low-water mark raised for
a fast sender and dropped for a slow or stopped one, timed by a
L{task.Clock}.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time

from twisted.internet import main, task
from twisted.trial.unittest import SynchronousTestCase

from ftx._io import bodyreads
from tests.loopback import KiB, MiB, queued, socketPair, tcpPair


class _FakeTransport:
    """
    Where L{bodyreads.DirectBody} installs its C{doRead}: like a Twisted
    transport, it has a C{doRead} of its own for the reactor to call.
    """

    def doRead(self):
        raise AssertionError("the transport's own doRead ran while a body was being read directly")


TRAILER = b"250 trailer\r\n"


def _collector():
    """
    A list and a C{deliver} for L{bodyreads.DirectBody} that copies each
    read into it and gives its buffer back at once.
    """
    pieces = []

    def deliver(data, release):
        pieces.append(bytes(data))
        if release is not None:
            release()

    return pieces, deliver


class DirectBodyTests(SynchronousTestCase):
    """
    L{bodyreads.DirectBody} reads exactly a body's length from a socket
    into pooled buffers and leaves what follows for the protocol.

    A read is delivered either as a view lent from a pooled buffer, with
    the callable that gives it back, or (for a short read) as bytes of its
    own with no such callable; both are accepted here.
    """

    def _feed(self, data: bytes, closeAfter: bool = False):
        """
        A socket pair whose far end sends C{data} from a thread; returns the
        near end, non-blocking, once the data is all in the socket (or after
        a bounded wait), so that reads come in full-sized pieces. A thread
        and a real-time wait because the bytes go through a real socket that
        may not hold the whole body: no clock is involved in these reads.
        """
        a, b = socketPair(self)
        # Room for the whole body in the socket, where the system allows it.
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)
        a.setblocking(False)
        sent = threading.Event()

        def send():
            try:
                b.sendall(data)
                if closeAfter:
                    b.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sent.set()

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        self.addCleanup(writer.join, 10)
        # If a test fails midway the writer may be stuck in sendall:
        # closing the reading end (cleanups run last-in first-out) frees it.
        self.addCleanup(a.close)
        sent.wait(2)
        return a

    def _readBody(self, sock, length, deliver, pool, clock=None):
        """
        Install a L{bodyreads.DirectBody} on a fake transport and call its
        C{doRead} as data arrives, until C{done} (or the read returns
        something), within a bounded number of rounds.
        """
        transport = _FakeTransport()
        finished = []
        body = bodyreads.DirectBody(transport, sock, length, pool, deliver, lambda: finished.append(True), clock)
        body.install()
        self.assertEqual(transport.doRead, body.doRead)
        result = None
        for _ in range(5000):
            if finished:
                break
            select.select([sock], [], [], 1.0)
            result = transport.doRead()
            if result is not None:
                break
        return transport, finished, result

    def test_deliversTheBodyAndLeavesTheTrailer(self):
        body = os.urandom(3 * MiB + 17)
        sock = self._feed(body + TRAILER)
        pool = bodyreads.BufferPool()
        pieces = []
        lent = []

        def deliver(data, release):
            pieces.append(bytes(data))
            if release is not None:
                lent.append(memoryview(data).obj)
                release()

        transport, finished, result = self._readBody(sock, len(body), deliver, pool)
        self.assertEqual(finished, [True])
        self.assertIsNone(result)
        self.assertEqual(b"".join(pieces), body)
        # Back on the transport's own reads, and the pool knows the body
        # is over.
        self.assertNotIn("doRead", transport.__dict__)
        self.assertEqual(pool.active, 0)
        # Buffers given back at once are lent again: three megabytes did
        # not need a buffer each.
        self.assertTrue(lent, "no read was lent from the pool")
        self.assertLessEqual(len({id(buffer) for buffer in lent}), 2)
        sock.setblocking(True)
        sock.settimeout(10)
        trailer = b""
        while len(trailer) < len(TRAILER):
            chunk = sock.recv(len(TRAILER) - len(trailer))
            if not chunk:
                break
            trailer += chunk
        self.assertEqual(trailer, TRAILER)

    def _pump(self, sender, receiver, data: bytes, body, transport, clock, step: int, pause: float, finished):
        """
        Send C{data} from C{sender} in pieces of C{step} bytes, advancing
        C{clock} by C{pause} after each, and call the transport's C{doRead}
        whenever C{receiver} is readable, until C{finished} or every round
        is used. The clock alone paces the reader; the sockets are real, so
        a piece the kernel has not handed over yet is waited for a bounded
        time (select), never slept on.
        """
        sender.setblocking(False)
        position = 0
        for _ in range(20000):
            if finished:
                return
            if position < len(data):
                try:
                    position += sender.send(data[position : position + step])
                except BlockingIOError:
                    pass
                clock.advance(pause)
                wait = 0
            else:
                wait = 1.0
            if select.select([receiver], [], [], wait)[0]:
                result = transport.doRead()
                self.assertIsNone(result)
        self.fail("the body was not read within the rounds allowed")

    def _lowWaterWhileSending(self, data: bytes, length: int, step: int, pause: float):
        """
        Read a body of C{length} from a TCP pair while the test sends
        C{data} at the pace of a L{task.Clock}; the C{SO_RCVLOWAT} values
        seen as each read is delivered, the bytes, and the value left once
        it is over.
        """
        a, b = tcpPair(self)
        a.setblocking(False)
        seen, pieces = [], []

        def deliver(piece, release):
            pieces.append(bytes(piece))
            seen.append(a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))
            if release is not None:
                release()

        clock = task.Clock()
        transport = _FakeTransport()
        finished = []
        body = bodyreads.DirectBody(
            transport, a, length, bodyreads.BufferPool(), deliver, lambda: finished.append(True), clock
        )
        self.assertTrue(body.install())
        self._pump(b, a, data, body, transport, clock, step, pause, finished)
        self.assertEqual(finished, [True])
        self.assertEqual(clock.getDelayedCalls(), [])
        return seen, b"".join(pieces), a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)

    def test_lowWaterRisesForAFastSenderAndIsReset(self):
        """
        Bytes arriving fast make the socket wake the reader only for a good
        part of a buffer; once the body is over, the line after it is read
        as soon as it arrives again.
        """
        body = os.urandom(3 * MiB + 17)
        # 256 KiB per millisecond: far faster than LOW_WATER per LOW_WATER_WAIT.
        seen, received, after = self._lowWaterWhileSending(body + TRAILER, len(body), 256 * KiB, 0.001)
        self.assertEqual(received, body)
        self.assertIn(bodyreads.LOW_WATER, seen)
        self.assertEqual(after, 1)

    def test_lowWaterStaysLowForASlowSender(self):
        """
        A sender that trickles is not made to fill 256 KiB before each
        wake-up: the reader waits at most about 50 ms' worth of its rate.
        """
        body = os.urandom(160 * KiB)
        # 4 KiB every 5 ms.
        seen, received, after = self._lowWaterWhileSending(body, len(body), 4 * KiB, 0.005)
        self.assertEqual(received, body)
        # About 40 KB arrive in 50 ms: the reader waits for 32 KiB at a
        # time, not for the whole body.
        self.assertLessEqual(max(seen), 64 * KiB)
        self.assertGreaterEqual(len(seen), 4)
        self.assertEqual(after, 1)

    def test_lowWaterDropsWhenTheSenderStops(self):
        """
        A sender that stops mid-body after a fast start: within
        L{bodyreads.LOW_WATER_STALL} the mark is back to one byte and every
        byte it sent is read and delivered (an interrupted upload keeps all
        of it for a resume).
        """
        a, b = tcpPair(self)
        a.setblocking(False)
        start, tail = os.urandom(64 * KiB), os.urandom(1000)
        clock = task.Clock()
        pieces, deliver = _collector()

        transport = _FakeTransport()
        body = bodyreads.DirectBody(transport, a, 3 * MiB, bodyreads.BufferPool(), deliver, lambda: None, clock)
        self.assertTrue(body.install())
        # A fast start: 64 KiB in one read while the clock stands still.
        b.sendall(start)
        self._waitQueued(a, len(start))
        transport.doRead()
        self.assertEqual(b"".join(pieces), start)
        self.assertGreater(a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT), 1)
        # Then a few bytes and nothing more: fewer than the mark, so the
        # socket does not wake the reader for them.
        b.sendall(tail)
        self._waitQueued(a, len(tail))
        self.assertEqual(select.select([a], [], [], 0)[0], [], "the low-water mark never held back a partial read")
        clock.advance(bodyreads.LOW_WATER_STALL / 2)
        self.assertGreater(a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT), 1)
        clock.advance(bodyreads.LOW_WATER_STALL / 2)
        self.assertEqual(a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT), 1)
        self.assertEqual(select.select([a], [], [], 1.0)[0], [a])
        transport.doRead()
        self.assertEqual(b"".join(pieces), start + tail)
        body.uninstall()
        self.assertEqual(clock.getDelayedCalls(), [])

    def _waitQueued(self, sock, count: int) -> None:
        """
        Wait, a bounded real time, until C{count} bytes are queued in
        C{sock}: loopback hands bytes over in the kernel, not by a clock.
        """
        for _ in range(1000):
            if queued(sock) >= count:
                return
            time.sleep(0.001)
        self.fail("{} bytes never arrived".format(count))

    def test_unreleasedViewKeepsItsBytes(self):
        """
        A buffer goes back to the pool only when it is released: a view
        held while megabytes more arrive still shows the bytes it was
        delivered with, and no later read lands in its buffer.
        """
        body = os.urandom(3 * MiB + 5)
        sock = self._feed(body + TRAILER)
        pool = bodyreads.BufferPool()
        held = []
        pieces = []
        otherBuffers = []

        def deliver(data, release):
            pieces.append(bytes(data))
            if release is None:
                return
            if not held:
                offset = sum(len(piece) for piece in pieces[:-1])
                held.append((data, bytes(data), release, offset))
                return
            buffer = memoryview(data).obj
            if buffer is not held[0][0].obj:
                otherBuffers.append(buffer)
            elif otherBuffers:
                self.fail("a read landed in the held buffer before it was released")
            release()

        transport, finished, result = self._readBody(sock, len(body), deliver, pool)
        self.assertEqual(finished, [True])
        self.assertEqual(b"".join(pieces), body)
        self.assertTrue(held, "no read was lent from the pool")
        self.assertTrue(otherBuffers, "the body never needed another buffer")
        view, original, release, offset = held[0]
        self.assertEqual(bytes(view), original)
        self.assertEqual(original, body[offset : offset + len(original)])
        release()

    def test_peerClosingMidwayEndsTheBody(self):
        sent = os.urandom(100 * KiB)
        sock = self._feed(sent, closeAfter=True)
        pool = bodyreads.BufferPool()
        pieces, deliver = _collector()

        transport, finished, result = self._readBody(sock, 2 * MiB, deliver, pool)
        self.assertEqual(finished, [])
        self.assertIs(result, main.CONNECTION_DONE)
        self.assertEqual(b"".join(pieces), sent)
        self.assertNotIn("doRead", transport.__dict__)
        self.assertEqual(pool.active, 0)
