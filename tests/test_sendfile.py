"""
Sending a file as a body: L{zerocopy.sendSome} moves exactly the asked-for
range to a socket without blocking, and L{filebody.BodySender} falls back
to copying for a file without a descriptor, even on a real socket.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading

from twisted.internet import reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io import filebody, internals, zerocopy
from tests.loopback import KiB, MiB, Reader, drain, randomFile, socketPair, tcpConnection


class SendSomeTests(SynchronousTestCase):
    """
    L{zerocopy.sendSome} moves exactly the asked-for range of a file to a
    socket, and never blocks the reactor on a full socket.
    """

    def test_sendsTheExactRangeFromAnOffset(self):
        f, content = randomFile(self, 600 * KiB, seed=11)
        a, b = socketPair(self)
        reader = Reader(b)
        reader.start()
        offset, count = 12345, 300000
        sent = zerocopy.sendSome(a, f.fileno(), offset, count)
        a.shutdown(socket.SHUT_WR)
        self.assertEqual(sent, count)
        self.assertEqual(reader.received(), content[offset : offset + count])

    def test_oneCallSendsAtMostATurn(self):
        """
        A single call stops after L{zerocopy.TURN} bytes, so one fast
        reader cannot keep the reactor from the other connections.
        """
        f, content = randomFile(self, zerocopy.TURN + 4 * KiB, seed=12)
        a, b = socketPair(self)
        reader = Reader(b)
        reader.start()
        sent = zerocopy.sendSome(a, f.fileno(), 0, len(content))
        a.shutdown(socket.SHUT_WR)
        self.assertEqual(sent, zerocopy.TURN)
        self.assertEqual(reader.received(), content[: zerocopy.TURN])

    def test_fileShorterThanTheRangeRaisesEOFError(self):
        f, content = randomFile(self, 1000, seed=13)
        a, b = socketPair(self)
        with self.assertRaises(EOFError):
            zerocopy.sendSome(a, f.fileno(), 900, 200)
        # What the file did have went out; nothing else.
        self.assertEqual(drain(b), content[900:])
        with self.assertRaises(EOFError):
            zerocopy.sendSome(a, f.fileno(), 1000, 1)
        self.assertEqual(drain(b), b"")

    def test_fullNonBlockingSocketReturnsShortInsteadOfBlocking(self):
        size = 2 * MiB
        f, content = randomFile(self, size, seed=14)
        a, b = socketPair(self)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * KiB)
        a.setblocking(False)
        calls = []
        outcome = {}

        def sendUntilFull():
            total = 0
            try:
                for _ in range(100):
                    n = zerocopy.sendSome(a, f.fileno(), total, size - total)
                    calls.append(n)
                    total += n
                    if n == 0:
                        break
            except BaseException as e:
                outcome["error"] = e
            outcome["total"] = total

        worker = threading.Thread(target=sendUntilFull, daemon=True)
        worker.start()
        worker.join(10)
        if worker.is_alive():
            # Blocked on the peer that never reads: free it, then fail.
            b.close()
            worker.join(10)
            self.fail("sendSome blocked on a full non-blocking socket")
        self.assertNotIn("error", outcome)
        total = outcome["total"]
        self.assertLess(calls[0], size)
        self.assertEqual(calls[-1], 0)
        self.assertGreater(total, 0)
        self.assertLess(total, size)
        self.assertEqual(drain(b), content[:total])

    def test_noSocketForInMemoryTransports(self):
        self.assertIsNone(internals.socketOf(StringTransport()))


class BodySenderTests(TestCase):
    """
    L{filebody.BodySender} over a real loopback connection, where the
    transport has a socket, from files that have no descriptor (an
    in-memory storage backend's open files).
    """

    async def _send(self, data: bytes, offset: int, knownDigest):
        server, client = await tcpConnection(self, reactor)
        self.assertIsNotNone(internals.socketOf(server.transport))
        self.patch(zerocopy, "sendSome", lambda *a: self.fail("sendfile used for a file without a descriptor"))
        f = io.BytesIO(data)
        with self.assertRaises(io.UnsupportedOperation):
            f.fileno()
        progress = []
        sender = filebody.BodySender(
            f, offset, len(data) - offset, hashlib.sha1(), knownDigest, progress.append, reactor
        )
        digest = await sender.begin(server.transport)
        await client.whenReceived(len(data) - offset)
        self.assertEqual(client.received(), data[offset:])
        self.assertEqual(sum(progress), len(data) - offset)
        return digest

    async def test_inMemoryFileIsHashedAndCopied(self):
        """
        Large enough to be hashed aside were it a real file: read, hashed
        and written instead.
        """
        data = bytes(range(256)) * (filebody.HASH_ASIDE_MIN // 256 * 2 + 3)
        digest = await self._send(data, 1000, None)
        self.assertEqual(digest, hashlib.sha1(data[1000:]).hexdigest())

    async def test_inMemoryFileWithKnownDigestIsCopied(self):
        data = b"ftx" * (300 * KiB)
        known = hashlib.sha1(data).hexdigest()
        digest = await self._send(data, 0, known)
        self.assertEqual(digest, known)
