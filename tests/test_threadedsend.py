"""
The client's upload body thread (L{ftx._io.threadedsend}) against the
things a file can do meanwhile, and the buffer it hashes through: the
C{ftx} command uploads a file byte for byte through it; a file another
process truncates halfway fails the upload cleanly (the thread reads
the file, it does not map it, so there is nothing to fault on), and
nothing is stored under the name; every read lands in a page-aligned
buffer (L{ftx._io.buffers}).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io import threadedreceive, threadedsend
from ftx._io.threadedsend import ThreadedSend
from ftx.client import connect
from ftx.errors import ConnectionLost
from ftx.protocol import checksums
from tests.clitools import ftx, serverFor
from tests.loopback import KiB, MiB, socketPair
from tests.support import listenInProcess, temporaryFolder
from tests.test_threadedupload import _readAll, _ThreadReactor, _xxh


def addressOf(view) -> int:
    """
    Where the first byte of a writable buffer is in memory.
    """
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


class _ReadsRecorded:
    """
    The C{os} module as L{ftx._io.threadedsend} sees it, but for
    C{preadv}, which records where each read lands and, once, after
    C{truncateAfter} reads, has another process truncate C{path}.
    """

    def __init__(self, path=None, truncateAfter=None, to=0) -> None:
        self.addresses = []
        self._path = path
        self._truncateAfter = truncateAfter
        self._to = to

    def __getattr__(self, name):
        return getattr(os, name)

    def preadv(self, fd, buffers, offset):
        self.addresses.extend(addressOf(b) for b in buffers)
        if len(self.addresses) == self._truncateAfter:
            subprocess.run(
                [sys.executable, "-c", "import os, sys; os.truncate(sys.argv[1], int(sys.argv[2]))", self._path,
                 str(self._to)],
                check=True, timeout=30,
            )
        return os.preadv(fd, buffers, offset)


class AlignedHashReadsTests(SynchronousTestCase):
    """
    L{ThreadedSend} reads each piece it hashes into a page-aligned buffer:
    into a C{bytearray} (16 bytes past a page) the kernel's copy cost four
    times as much CPU.
    """

    def test_readsLandOnAPage(self):
        path = os.path.join(temporaryFolder(self), "source.bin")
        data = os.urandom(3 * MiB + 5)
        with open(path, "wb") as f:
            f.write(data)
        f = open(path, "rb", buffering=0)
        self.addCleanup(f.close)
        reads = _ReadsRecorded()
        self.patch(threadedsend, "os", reads)
        mine, peer = socketPair(self)
        mine.setblocking(False)
        hasher = checksums.new(checksums.XXH128)
        sender = ThreadedSend(mine, f.fileno(), 0, len(data), hasher)
        clock = _ThreadReactor()
        finished, received = [], []
        reader = _readAll(peer, len(data), received)
        sender.start(clock, lambda n: None, finished.append)
        clock.runUntil(lambda: finished)
        reader.join(10)
        self.assertEqual(received, [data])
        self.assertEqual(hasher.hexdigest(), _xxh(data))
        self.assertEqual(len(reads.addresses), 4)
        self.assertEqual([a % 4096 for a in reads.addresses], [0] * 4)


class TruncatedDuringUploadTests(TestCase):
    """
    Another process truncates the file while the client's body thread
    sends it: the upload fails with an error the user can read, the
    process lives on (no C{SIGBUS}: the file is read, never mapped), and
    the server stores nothing under the name.
    """

    async def test_truncatedByAnotherProcess(self):
        self.patch(threadedreceive, "THREAD_MIN", MiB)
        root = temporaryFolder(self)
        port = await listenInProcess(reactor, root)
        self.addCleanup(port.stopListening)
        client = await connect(reactor, "tcp:127.0.0.1:{}".format(port.getHost().port))
        client.protocol.bodyThreads = True

        async def bye():
            # The failed put closed the connection; it may not be gone yet.
            if client.protocol.transport.connected:
                try:
                    await client.quit()
                except ConnectionLost:
                    pass

        self.addCleanup(bye)
        path = os.path.join(temporaryFolder(self), "shrinking.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(12 * MiB))
        # The third piece is read after the first two went (or are going):
        # the file is cut to 1 MiB, shorter than what was already sent.
        reads = _ReadsRecorded(path, truncateAfter=3, to=MiB)
        self.patch(threadedsend, "os", reads)
        with self.assertRaises(ConnectionLost) as caught:
            await client.put(path)
        self.assertEqual(str(caught.exception), "the file shrank while it was being sent; the connection was closed")
        self.assertEqual(os.path.getsize(path), MiB)
        self.assertNotIn("shrinking.bin", os.listdir(root))


class CommandUploadTests(SynchronousTestCase):
    """
    The C{ftx} command's C{put} of a file large enough for the body thread
    stores it byte for byte, under the digest check.
    """

    def test_putByteForByte(self):
        server = serverFor(self)
        local = temporaryFolder(self)
        path = os.path.join(local, "big.bin")
        data = os.urandom(24 * MiB + 7 * KiB)
        with open(path, "wb") as f:
            f.write(data)
        result = ftx(server, "put", path)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(server.root, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
