"""
L{ftx._io.buffers.alignedBuffer} and the readers that copy file and
socket bytes into it: the server's upload body thread, the pooled receive
buffers of the reactor's direct reads, and the prefix hashing of resumes.
Each of those read into a C{bytearray}, 16 bytes past a page, where the
kernel's copy cost four times the CPU (see L{ftx._io.buffers}).
"""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from ftx._io import buffers, fileio
from ftx._io.bodyreads import BufferPool
from ftx._io.buffers import alignedBuffer
from ftx._io.lentsocket import LentSocket
from ftx._io.threadedreceive import ThreadedReceive
from ftx.protocol import checksums
from tests.loopback import MiB, socketPair
from tests.test_threadedsend import addressOf
from tests.test_threadedupload import _send, _Sink, _ThreadReactor, _xxh


class AlignedBufferTests(SynchronousTestCase):
    def test_startsOnAPage(self):
        for size in (1, 4096, 256 << 10, MiB + 1):
            view = alignedBuffer(size)
            self.assertEqual((len(view), addressOf(view) % 4096), (size, 0))

    def test_writableAndZeroed(self):
        view = alignedBuffer(100)
        self.assertEqual(bytes(view), bytes(100))
        view[10:13] = b"abc"
        self.assertEqual(bytes(view[9:14]), b"\0abc\0")

    def test_emptyIsOneByte(self):
        """
        A zero-length body still gets a buffer (C{mmap} refuses length 0).
        """
        self.assertEqual(len(alignedBuffer(0)), 1)


class LentBufferTests(SynchronousTestCase):
    """
    L{buffers.lend} hands out a buffer given back before, of the same
    size, rather than a fresh mapping (which costs its faults again), and
    keeps no more than L{buffers.KEEP_IDLE} of a size.
    """

    def setUp(self):
        self.patch(buffers, "_idle", {})

    def test_givenBackIsLentAgain(self):
        first = buffers.lend(3000)
        buffers.giveBack(first)
        again = buffers.lend(3000)
        self.assertIs(again, first)
        self.assertEqual(addressOf(again) % 4096, 0)
        other = buffers.lend(3000)
        self.assertIsNot(other, first)
        self.assertEqual(len(buffers.lend(5000)), 5000)

    def test_keepsFew(self):
        lent = [buffers.lend(4096) for _ in range(buffers.KEEP_IDLE + 3)]
        for view in lent:
            buffers.giveBack(view)
        self.assertEqual(len(buffers._idle[4096]), buffers.KEEP_IDLE)


class AlignedReadersTests(SynchronousTestCase):
    def test_uploadThreadReceivesOnAPage(self):
        """
        The server's upload body thread receives into a page-aligned
        buffer, each read landing at the offset within a page its first
        byte has in the file (L{buffers.landing}): here the upload goes on
        from file position 12,345.
        """
        reads = []
        recvInto = LentSocket.recvInto

        def recorded(lent, view, count):
            got = recvInto(lent, view, count)
            reads.append((addressOf(view), got))
            return got

        self.patch(LentSocket, "recvInto", recorded)
        body = os.urandom(MiB)
        mine, peer = socketPair(self)
        mine.setblocking(False)
        sink = _Sink()
        hasher = checksums.new(checksums.XXH128)
        receiver = ThreadedReceive(mine, len(body), sink.store, hasher, lambda: 12345)
        clock = _ThreadReactor()
        finished = []
        receiver.finished.addCallback(finished.append)
        sender = _send(peer, body)
        receiver.start(clock, lambda n: None)
        clock.runUntil(lambda: finished)
        sender.join(10)
        self.assertEqual((sink.data, hasher.hexdigest()), (body, _xxh(body)))
        self.assertTrue(reads)
        position = 12345
        for address, got in reads:
            self.assertEqual(address % 4096, position % 4096)
            position += got

    def test_blocksThreadLandsRawBytesWhereTheyLieInTheFile(self):
        """
        The thread that follows a compressed body's blocks receives raw
        payloads at the offset within a page their bytes have in the file,
        across block lines (each moves the stream by its own length) and a
        zstd block in between.
        """
        from ftx._io import threadedblocks
        from ftx._io.compressedbody import BlockReader, DecodingSink
        from ftx.protocol.compression import MAX_RUN, BlockEncoder

        raw1, text, raw2 = os.urandom(MiB + 100), b"log line 1234\n" * 30000, os.urandom(3 * MiB + 7)
        packed = BlockEncoder().encode(text)
        self.assertLess(len(packed), len(text))
        stream = b"".join([
            b"151 %d %d\r\n" % (len(raw1), len(raw1)), raw1,
            b"151 %d %d\r\n" % (len(text), len(packed)), packed,
            b"151 %d %d\r\n" % (len(raw2), len(raw2)), raw2,
        ])
        body = raw1 + text + raw2
        reads = []
        recvInto = LentSocket.recvInto

        def recorded(lent, view, count, flags=0):
            got = recvInto(lent, view, count, flags)
            if not flags and count > threadedblocks.LINE_MAX:
                reads.append((addressOf(view), got))
            return got

        self.patch(LentSocket, "recvInto", recorded)
        mine, peer = socketPair(self)
        mine.setblocking(False)
        sink = _Sink()
        reader = BlockReader(len(body), None, None, MAX_RUN)
        sender = _send(peer, stream)
        lent = LentSocket(mine, 0.05, 10, lambda: False)
        lane = threadedblocks._InlineLane(DecodingSink(sink, None).store, MiB)
        outcome = threadedblocks.readBlocks(_ThreadReactor(), lent, reader, 0, lane, lambda n: None, lambda: False, 777)
        sender.join(10)
        self.assertTrue(outcome.complete)
        self.assertEqual(sink.data, body)
        # The reads in order: raw1's, the zstd payload's (into a buffer of
        # its own, not checked), raw2's.
        landed = []
        for start, count in ((777, len(raw1)), (None, len(packed)), (777 + len(raw1) + len(text), len(raw2))):
            taken, position = 0, start
            while taken < count:
                address, got = reads.pop(0)
                if start is not None:
                    landed.append((address % 4096, position % 4096))
                    position += got
                taken += got
        self.assertEqual(reads, [])
        self.assertGreater(len(landed), 1)
        self.assertEqual([a for a, _ in landed], [p for _, p in landed])

    def test_pooledBuffersOnAPage(self):
        pool = BufferPool()
        buffers = [pool.take() for _ in range(3)]
        self.assertEqual([addressOf(b.view) % 4096 for b in buffers], [0, 0, 0])

    def test_prefixHashReadsOnAPage(self):
        """
        L{fileio.hashPrefix} (a resume's prefix, the server's digests)
        reads into a page-aligned buffer, and hashes what it read.
        """
        data = os.urandom(MiB + 3)
        addresses = []

        class Recorded(io.BytesIO):
            def readinto(self, view):
                addresses.append(addressOf(view))
                return super().readinto(view)

        also = checksums.new(checksums.XXH128)
        sha1 = fileio.hashPrefix(Recorded(data), len(data) - 1, b"name", also)
        self.assertEqual(also.hexdigest(), _xxh(data[:-1]))
        self.assertEqual(len(sha1.hexdigest()), 40)
        self.assertEqual({a % 4096 for a in addresses}, {0})
