"""
The web view's rate limits on a L{Clock}: a download's producer sends no
faster than its throttle allows and holds nothing while it waits; each
HTTP connection has its own C{--limit-rate} bucket, kept across its
requests; C{--limit-total} and an account's C{rate=} are the very buckets
the protocol's connections use. (Over real sockets:
L{tests.test_web_rates_sockets}.)
"""

from __future__ import annotations

import io

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ftx._io.ratelimit import Throttle, TokenBucket
from ftx.server.accounts import Account, Permissions
from ftx.server.ratelimit import ServerRates
from ftx.server.web.rates import WebRates
from ftx.server.web.ranges import SEND_CHUNK, RangeProducer

RATE = 100_000


class FakeRequest:
    """
    The parts of a L{twisted.web.server.Request} a L{RangeProducer} uses,
    with a connection buffer of C{buffer} bytes: a write that fills it
    pauses the producer, as a real transport does, until L{drain}.
    """

    def __init__(self, channel=None, buffer: int = 1 << 30) -> None:
        self.channel = channel
        self.buffer = buffer
        self.held = 0
        self.written = []
        self.producer = None
        self.streaming = None
        self.finished = False
        self.lost = False
        self.done: Deferred = Deferred()

    def notifyFinish(self) -> Deferred:
        return self.done

    def registerProducer(self, producer, streaming) -> None:
        assert self.producer is None
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.held += len(data)
        if self.held >= self.buffer and self.producer is not None:
            self.producer.pauseProducing()

    def drain(self) -> None:
        self.held = 0
        if self.producer is not None:
            self.producer.resumeProducing()

    def finish(self) -> None:
        self.finished = True

    def loseConnection(self) -> None:
        self.lost = True

    @property
    def sent(self) -> int:
        return sum(len(d) for d in self.written)


class Channel:
    """
    An HTTP connection, as far as L{WebRates} sees one.
    """


def advance(clock: Clock, seconds: float, tick: float = 0.005) -> None:
    for _ in range(int(round(seconds / tick))):
        clock.advance(tick)


class ProducerTests(SynchronousTestCase):
    def start(self, size: int, throttle=None, request=None, clock=None):
        clock = clock or Clock()
        data = bytes(range(256)) * (size // 256)
        request = request or FakeRequest()
        producer = RangeProducer(request, io.BytesIO(data), 0, len(data), clock, throttle)
        producer.start()
        return clock, request, producer, data

    def test_unlimitedSendsEverything(self) -> None:
        clock, request, producer, data = self.start(3 * SEND_CHUNK + 512)
        self.assertTrue(request.streaming)
        advance(clock, 0.05)
        self.assertEqual(b"".join(request.written), data)
        self.assertEqual(max(len(d) for d in request.written), SEND_CHUNK)
        self.assertTrue(request.finished)
        self.assertIsNone(request.producer)

    def test_rateHeld(self) -> None:
        """
        At every moment no more than one step plus the rate times the time
        went out, and the body ends when the rate says it may.
        """
        clock = Clock()
        bucket = TokenBucket(RATE, clock)
        size = 3 * RATE
        clock, request, producer, data = self.start(size, Throttle([bucket]), clock=clock)
        tick = 0.01
        for n in range(1, 400):
            clock.advance(tick)
            self.assertLessEqual(request.sent, bucket.step + RATE * n * tick + 1)
            if request.finished:
                break
        self.assertTrue(request.finished)
        took = n * tick
        self.assertGreaterEqual(took, (size - bucket.step) / RATE)
        self.assertLessEqual(took, size / RATE * 1.02)
        self.assertEqual(b"".join(request.written), data)
        self.assertEqual(bucket.waiting, 0)

    def test_pausedWritesNothing(self) -> None:
        """
        A connection with a full buffer (a client slower than the limit)
        gets nothing more, whatever tokens come, until it drains.
        """
        clock = Clock()
        bucket = TokenBucket(RATE, clock)
        request = FakeRequest(buffer=1)
        clock, request, producer, data = self.start(2 * RATE, Throttle([bucket]), request, clock)
        advance(clock, 0.01)
        self.assertEqual(len(request.written), 1)
        advance(clock, 1.0)
        self.assertEqual(len(request.written), 1)
        request.drain()
        advance(clock, 0.01)
        self.assertEqual(len(request.written), 2)

    def test_clientGoneWhileWaiting(self) -> None:
        """
        A client that leaves while the producer waits for tokens: the file
        is closed, the bucket's line left, nothing written later.
        """
        clock = Clock()
        bucket = TokenBucket(RATE, clock)
        f = io.BytesIO(b"x" * RATE)
        request = FakeRequest()
        RangeProducer(request, f, 0, RATE, clock, Throttle([bucket])).start()
        clock.advance(0)
        clock.advance(0)
        self.assertEqual(bucket.waiting, 1)
        before = request.sent
        request.done.errback(ConnectionError("gone"))
        advance(clock, 2.0)
        self.assertEqual((request.sent, bucket.waiting, f.closed), (before, 0, True))
        self.assertEqual(clock.getDelayedCalls(), [])


def _account(name: str, rate=None) -> Account:
    return Account(name, Permissions("r", rate=rate))


class WebRatesTests(SynchronousTestCase):
    def test_noLimits(self) -> None:
        self.assertFalse(WebRates().throttleFor(FakeRequest(Channel()), None).limited)
        rates = ServerRates(Clock())
        self.assertFalse(WebRates(rates).throttleFor(FakeRequest(Channel()), _account("a")).limited)

    def test_connectionBucketKeptAcrossRequests(self) -> None:
        """
        Two requests on one HTTP connection share its bucket; another
        connection has its own.
        """
        clock = Clock()
        web = WebRates(ServerRates(clock, perConnection=RATE))
        one, other = Channel(), Channel()
        first = web.throttleFor(FakeRequest(one), None)
        first.spend(RATE)
        self.assertTrue(web.throttleFor(FakeRequest(one), None).inDebt)
        self.assertFalse(web.throttleFor(FakeRequest(other), None).inDebt)

    def test_totalSharedWithTheProtocol(self) -> None:
        """
        C{--limit-total}: what the web view sends comes out of the same
        bucket as the protocol connections' downloads.
        """
        clock = Clock()
        rates = ServerRates(clock, total=RATE)
        protocolSending = rates.forConnection(gate=None).sending
        self.assertFalse(protocolSending.inDebt)
        WebRates(rates).throttleFor(FakeRequest(Channel()), None).spend(RATE)
        self.assertTrue(protocolSending.inDebt)

    def test_accountRateSharedWithTheProtocol(self) -> None:
        """
        An account's C{rate=} holds its web downloads, in the same bucket as
        its protocol connections; another account is not held.
        """
        clock = Clock()
        rates = ServerRates(clock)
        web = WebRates(rates)
        alice = _account("alice", RATE)
        aliceWeb = web.throttleFor(FakeRequest(Channel()), alice)
        self.assertTrue(aliceWeb.limited)
        self.assertFalse(web.throttleFor(FakeRequest(Channel()), _account("bob")).limited)
        aliceWeb.spend(RATE)
        protocolSending, _ = rates.forAccount("alice", RATE)
        self.assertLess(protocolSending.tokens, 0)

    def test_totalSharedFairlyByTwoDownloads(self) -> None:
        """
        Two web downloads under one total: together at the rate, each
        getting about half.
        """
        clock = Clock()
        rates = ServerRates(clock, total=RATE)
        web = WebRates(rates)
        requests = [FakeRequest(Channel()) for _ in (1, 2)]
        for request in requests:
            RangeProducer(request, io.BytesIO(b"y" * (4 * RATE)), 0, 4 * RATE, clock, web.throttleFor(request, None)).start()
        advance(clock, 2.0)
        sent = [r.sent for r in requests]
        self.assertLessEqual(sum(sent), 2.0 * RATE + TokenBucket(RATE, Clock()).step)
        self.assertGreaterEqual(sum(sent), 1.9 * RATE)
        # In turns of one step each.
        self.assertLessEqual(abs(sent[0] - sent[1]), 2 * TokenBucket(RATE, Clock()).step)


class SlowFile(io.BytesIO):
    """
    A file whose bytes come from elsewhere, like an object store's
    read-ahead: C{whenReadable} gives a Deferred while C{read} would wait.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.pending: Deferred = Deferred()
        self.readsWhilePending = 0

    def whenReadable(self, reactor):
        return None if self.pending.called else self.pending

    def read(self, n: int = -1) -> bytes:
        if not self.pending.called:
            self.readsWhilePending += 1
        return super().read(n)


class ReadAheadTests(SynchronousTestCase):
    def test_readOnlyOnceReadable(self) -> None:
        """
        A file that would make C{read} wait is not read (the event loop
        would block) until it says its bytes are there.
        """
        clock = Clock()
        f = SlowFile(b"z" * 1000)
        request = FakeRequest()
        RangeProducer(request, f, 0, 1000, clock).start()
        advance(clock, 0.5)
        self.assertEqual((request.sent, f.readsWhilePending), (0, 0))
        f.pending.callback(None)
        advance(clock, 0.01)
        self.assertEqual((request.sent, request.finished), (1000, True))
