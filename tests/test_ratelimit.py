"""
Rate limits on a L{Clock}: the token arithmetic, bursts, waking on time,
debt, fairness of a shared bucket, the body sender held to a rate, the
server's read gate and the client's read pacer, and the options that set
them (L{ftx._io.ratelimit}, L{ftx.server.ratelimit}).
"""

from __future__ import annotations

import hashlib
import io

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ftx._io.filebody import BodySender
from ftx._io.ratelimit import MAX_STEP, MIN_STEP, ReadPacer, Throttle, TokenBucket, parseRate, stepFor
from ftx.cli.parser import buildParser
from ftx.server.accounts import AccessRules
from ftx.server.ratelimit import RATE_LIMITED, ServerRates
from ftx.server.readgate import ReadGate
from ftx.server.tap import Options, makeFactory


class ParseRateTests(SynchronousTestCase):
    def test_forms(self):
        self.assertEqual(parseRate("1000"), 1000)
        self.assertEqual(parseRate("500K"), 500 * 1024)
        self.assertEqual(parseRate("10M/s"), 10 << 20)
        self.assertEqual(parseRate("12.5MB/s"), 12500000)
        self.assertEqual(parseRate("1.5MiB/s"), 1572864)
        self.assertEqual(parseRate("100Mbit/s"), 12500000)
        self.assertEqual(parseRate("100 Mbit"), 12500000)
        self.assertEqual(parseRate("512kbit"), 64000)
        self.assertEqual(parseRate("64KiBps"), 65536)
        self.assertEqual(parseRate("0"), 0)

    def test_bareUnit(self):
        # rsync's --bwlimit: a bare number is KiB/s; a suffix says itself.
        self.assertEqual(parseRate("100", 1024), 102400)
        self.assertEqual(parseRate("1M", 1024), 1 << 20)

    def test_refusesOtherText(self):
        for text in ("", "fast", "-5K", "10 M/h", "1e9", "10X"):
            with self.assertRaises(ValueError) as caught:
                parseRate(text)
            self.assertIn("not a rate", str(caught.exception))

    def test_step(self):
        self.assertEqual(stepFor(1000), 512)
        self.assertEqual(stepFor(40000), 10000)
        self.assertEqual(stepFor(100000), MIN_STEP)
        self.assertEqual(stepFor(12500000), 250000)
        self.assertEqual(stepFor(10 << 30), MAX_STEP)


class TokenBucketTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.bucket = TokenBucket(1000, self.clock, step=100, burst=200)

    def test_startsWithAStepAndRefillsExactly(self):
        me = object()
        self.assertEqual(self.bucket.allowance(me, 10**9), 100)
        self.bucket.spend(me, 100)
        self.assertEqual(self.bucket.allowance(me, 10**9), 0)
        self.clock.advance(0.05)
        # Less than a step is handed out only to who wants no more.
        self.assertEqual(self.bucket.allowance(me, 10**9), 0)
        self.assertEqual(self.bucket.allowance(me, 40), 40)
        self.assertEqual(self.bucket.allowance(me, 60), 0)
        self.clock.advance(0.1)
        self.assertEqual(self.bucket.allowance(me, 10**9), 150)
        self.assertEqual(self.bucket.allowance(me, 70), 70)

    def test_burstIsCapped(self):
        me = object()
        self.bucket.spend(me, 200)
        self.clock.advance(3600)
        self.assertEqual(self.bucket.tokens, 200)

    def test_wakesWhenAStepIsThere(self):
        me, woken = object(), []
        self.bucket.spend(me, 100)
        self.bucket.wait(me, lambda: woken.append(self.clock.seconds()))
        self.clock.advance(0.099)
        self.assertEqual(woken, [])
        self.clock.advance(0.001)
        self.assertEqual(woken, [0.1])

    def test_debtIsPaidFirst(self):
        me, woken = object(), []
        self.bucket.spend(me, 400)
        self.assertEqual(self.bucket.tokens, -300)
        self.bucket.wait(me, lambda: woken.append(self.clock.seconds()))
        self.clock.advance(0.399)
        self.assertEqual(woken, [])
        self.clock.advance(0.001)
        self.assertEqual(woken, [0.4])

    def test_othersWaitBehindTheLine(self):
        first, second, late = object(), object(), object()
        self.bucket.spend(first, 100)
        self.bucket.wait(first, lambda: None)
        self.bucket.wait(second, lambda: None)
        self.clock.advance(0.15)
        # Tokens are there, but they are first's turn, then second's.
        self.assertEqual(self.bucket.allowance(late, 10), 0)
        self.assertEqual(self.bucket.allowance(second, 10), 0)
        self.assertEqual(self.bucket.allowance(first, 1000), 100)

    def test_forgottenWaiterIsNeverWoken(self):
        me, woken = object(), []
        self.bucket.spend(me, 200)
        self.bucket.wait(me, lambda: woken.append(1))
        self.bucket.forget(me)
        self.clock.advance(10)
        self.assertEqual(woken, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_rejectsNoRate(self):
        self.assertRaises(ValueError, TokenBucket, 0, self.clock)


class _Greedy:
    """
    A connection that always has more to send: takes what its throttle
    allows, then waits for it.
    """

    def __init__(self, throttle: Throttle, want: int) -> None:
        self.throttle = throttle
        self.want = want
        self.moved = 0

    def go(self):
        for _ in range(100):
            allowed = self.throttle.allowance(self.want)
            if not allowed:
                break
            self.throttle.spend(allowed)
            self.moved += allowed
        self.throttle.wait(self.go)


class SharedBucketTests(SynchronousTestCase):
    def test_fairTurnsAndTheTotalHeld(self):
        clock = Clock()
        # Powers of two: the clock's sums are exact.
        total = TokenBucket(32768, clock, step=512, burst=1024)
        senders = [_Greedy(Throttle([total]), want) for want in (10**6, 10**6, 10**6, 100)]
        for sender in senders:
            sender.go()
        for _ in range(1280):
            clock.advance(1 / 128)
        moved = [s.moved for s in senders]
        # 10 s at 32768 B/s and the first step, to the byte: what did not
        # move is still in the bucket.
        self.assertEqual(sum(moved) + total.tokens, 32768 * 10 + 512)
        self.assertLess(total.tokens, 1024)
        # Turns go round: the large askers get a step each turn, the one
        # that asks for 100 bytes at a time gets 100 bytes, as many turns.
        self.assertLessEqual(max(moved[:3]) - min(moved[:3]), 1024)
        self.assertAlmostEqual(moved[3] / 100, min(moved[:3]) / 512, delta=2)

    def test_ownLimitAndTotalTogether(self):
        clock = Clock()
        total = TokenBucket(10000, clock, step=200, burst=400)
        slow = _Greedy(Throttle([TokenBucket(1000, clock, step=100, burst=200), total]), 10**6)
        fast = _Greedy(Throttle([total]), 10**6)
        slow.go()
        fast.go()
        for _ in range(1000):
            clock.advance(0.01)
        # The slow one keeps to its own 1000 B/s; the other takes the rest.
        self.assertLessEqual(slow.moved, 1000 * 10 + 200)
        self.assertGreaterEqual(slow.moved, 1000 * 10 * 0.95)
        self.assertLessEqual(slow.moved + fast.moved, 10000 * 10 + 400)
        self.assertGreaterEqual(slow.moved + fast.moved, 10000 * 10 * 0.95)


class BodySenderTests(SynchronousTestCase):
    def test_sendsNoFasterThanTheRate(self):
        clock = Clock()
        data = bytes(range(256)) * 40  # 10240 bytes
        transport = StringTransport()
        throttle = Throttle([TokenBucket(1024, clock, step=128, burst=256)])
        sender = BodySender(io.BytesIO(data), 0, len(data), hashlib.sha1(), None, lambda n: None, None, throttle)
        done = sender.begin(transport)
        sent = []
        for _ in range(2000):
            # The transport's side: ask the producer while one is registered.
            for _ in range(10):
                if transport.producer is None:
                    break
                transport.producer.resumeProducing()
            sent.append(len(transport.value()))
            if done.called:
                break
            clock.advance(1 / 128)
        # 128 at once, then 128 each 1/8 s: 10240 bytes take 9.875 s.
        self.assertEqual(sent[0], 128)
        self.assertEqual(sent[15], 128)
        self.assertEqual(sent[16], 256)
        self.assertEqual(sent[160], 128 + 10 * 128)
        self.assertEqual(transport.value(), data)
        self.assertEqual(self.successResultOf(done), hashlib.sha1(data).hexdigest())
        self.assertEqual(clock.seconds(), 9.875)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stopWhileWaitingFails(self):
        clock = Clock()
        transport = StringTransport()
        throttle = Throttle([TokenBucket(1000, clock, step=100, burst=200)])
        sender = BodySender(io.BytesIO(b"x" * 1000), 0, 1000, hashlib.sha1(), None, lambda n: None, None, throttle)
        done = sender.begin(transport)
        transport.producer.resumeProducing()
        transport.producer.resumeProducing()
        self.assertIsNone(transport.producer)
        sender.stopProducing()
        self.failureResultOf(done, ConnectionError)
        clock.advance(10)
        self.assertIsNone(transport.producer)
        self.assertEqual(clock.getDelayedCalls(), [])


class ServerReadTests(SynchronousTestCase):
    def test_readingStopsInDebtAndStartsOnTime(self):
        clock = Clock()
        calls = []
        gate = ReadGate(lambda: calls.append(("stop", clock.seconds())), lambda: calls.append(("start", clock.seconds())))
        rates = ServerRates(clock, perConnection=100000)
        rate = rates.forConnection(gate)
        step = stepFor(100000)
        self.assertEqual(step, MIN_STEP)
        rate.received(step)  # the first step: nothing left
        self.assertEqual(calls, [("stop", 0)])
        self.assertTrue(gate.pausedFor(RATE_LIMITED))
        clock.advance(step / 100000.0)
        self.assertEqual(calls, [("stop", 0), ("start", step / 100000.0)])
        rate.connectionLost()

    def test_totalSharedAcrossConnections(self):
        clock = Clock()
        rates = ServerRates(clock, total=100000)
        one = rates.forConnection(ReadGate(lambda: None, lambda: None))
        two = rates.forConnection(ReadGate(lambda: None, lambda: None))
        one.received(3 * MIN_STEP)
        self.assertTrue(two.receiving.inDebt)
        self.assertFalse(rates.forConnection(ReadGate(lambda: None, lambda: None)).sending.inDebt)

    def test_accountLimitApplies(self):
        clock = Clock()
        rates = ServerRates(clock)
        rules = AccessRules.parse("alice rw rate=10K\nbob r\n")
        self.assertEqual(rules.forUser("alice").rate, 10240)
        self.assertIsNone(rules.forUser("bob").rate)

        class Account:
            name = "alice"
            permissions = rules.forUser("alice")

        first = rates.forConnection(ReadGate(lambda: None, lambda: None))
        second = rates.forConnection(ReadGate(lambda: None, lambda: None))
        self.assertFalse(first.sending.limited)
        first.loggedIn(Account(), StringTransport())
        second.loggedIn(Account(), StringTransport())
        self.assertTrue(first.sending.limited)
        # Both of alice's connections draw on one bucket.
        first.sending.spend(2 * MIN_STEP)
        self.assertTrue(second.sending.inDebt)


class ClientReadTests(SynchronousTestCase):
    def test_pacerPausesTheTransportOnly(self):
        clock = Clock()
        transport = StringTransport()
        pacer = ReadPacer(Throttle([TokenBucket(1000, clock, step=100, burst=200)]), transport, lambda: True)
        pacer.received(50)
        self.assertEqual(transport.producerState, "producing")
        pacer.received(100)
        self.assertEqual(transport.producerState, "paused")
        self.assertTrue(pacer.holding)
        # 50 bytes of debt, then a step: 0.15 s.
        clock.advance(0.149)
        self.assertEqual(transport.producerState, "paused")
        clock.advance(0.001)
        self.assertEqual(transport.producerState, "producing")

    def test_pacerLeavesOtherPausesAlone(self):
        clock = Clock()
        transport = StringTransport()
        pacer = ReadPacer(Throttle([TokenBucket(1000, clock, step=100, burst=200)]), transport, lambda: False)
        pacer.received(300)
        clock.advance(1)
        self.assertFalse(pacer.holding)
        self.assertEqual(transport.producerState, "paused")


class OptionTests(SynchronousTestCase):
    def test_serverOptions(self):
        options = Options()
        options.parseOptions(["--root", ".", "--limit-rate", "12.5MB/s", "--limit-total", "100Mbit/s"])
        self.assertEqual(options["limit-rate"], 12500000)
        self.assertEqual(options["limit-total"], 12500000)
        options = Options()
        options.parseOptions(["--root", ".", "--limit-rate", "0"])
        self.assertIsNone(options["limit-rate"])

    def test_twistdPassesTheLimitsOn(self):
        options = Options()
        options.parseOptions(["--root", ".", "--limit-rate", "1M", "--limit-total", "10M"])
        factory = makeFactory(options, Clock())
        self.assertEqual((factory.policy.limitRate, factory.policy.limitTotal), (1 << 20, 10 << 20))
        self.assertEqual(factory.rates.perConnection, 1 << 20)
        self.assertEqual(factory.rates.total, 10 << 20)

    def test_serverRefusesABadRate(self):
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--root", ".", "--limit-rate", "quick"])
        self.assertIn("--limit-rate", str(caught.exception))

    def test_accessFileRefusesABadRate(self):
        with self.assertRaises(ValueError) as caught:
            AccessRules.parse("alice rw rate=lots\n", "access.txt")
        self.assertIn("access.txt line 1", str(caught.exception))

    def test_clientOptions(self):
        parser = buildParser()
        self.assertEqual(parser.parse_args(["--limit-rate", "1000", "list"]).limit_rate, 1000)
        self.assertEqual(parser.parse_args(["--bwlimit", "1000", "list"]).limit_rate, 1024000)
        self.assertEqual(parser.parse_args(["list", "--bwlimit", "2M"]).limit_rate, 2 << 20)


class SmallFilesTests(SynchronousTestCase):
    def test_waitForTheRateEndsWithTheConnection(self):
        clock = Clock()
        rate = ServerRates(clock, perConnection=100000).forConnection(ReadGate(lambda: None, lambda: None))
        self.assertIsNone(self.successResultOf(rate.afterSending(100)))
        waiting = rate.afterSending(3 * MIN_STEP)
        self.assertNoResult(waiting)
        rate.connectionLost()
        self.assertIsNone(self.successResultOf(waiting))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_waitForTheRateEndsOnTime(self):
        clock = Clock()
        rate = ServerRates(clock, perConnection=100000).forConnection(ReadGate(lambda: None, lambda: None))
        waiting = rate.afterSending(MIN_STEP)
        clock.advance(MIN_STEP / 100000.0 - 0.001)
        self.assertNoResult(waiting)
        clock.advance(0.001)
        self.successResultOf(waiting)
