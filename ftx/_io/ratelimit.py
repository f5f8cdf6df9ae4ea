"""
Rate limits: token buckets that hold producers back, never buffer.

A L{TokenBucket} fills at C{rate} bytes a second up to a small C{burst};
bytes may go only against tokens. One bucket may be shared by many
connections (the server's C{--limit-total}, an account's limit): while
any of them waits, the others wait behind it and the bucket wakes them one
at a time, in turn, each with at most one C{step} of tokens (round-robin
wake-ups), so a fast connection cannot take the whole rate from slower
ones. A L{Throttle} is one direction of one connection: every bucket that
applies to it at once.

Sending asks a throttle how much it may send now (L{Throttle.allowance}),
sends no more, and when the answer is 0 waits for the throttle to call it
back (L{Throttle.wait}) on the injected clock. Receiving counts what it read
(L{Throttle.spend}) and stops reading while the throttle is in debt.
The long-run rate is exact: tokens only come from the clock, so over any
span C{t} at most C{burst + rate * t} bytes move (plus one read), and a
transfer that starts on a fresh bucket moves at most C{step + rate * t}.

Twisted's C{policies.ThrottlingFactory} was not used: it counts bytes per
whole second and pauses whole connections for the rest of it (bursty, and
fair across connections only by accident), it does not see bytes sent by
C{sendfile}, which bypass C{transport.write}, and its write throttling
calls C{pauseProducing} on the producer, which pull producers (ftx's
L{ftx._io.filebody.BodySender}) do not have.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Callable, Iterable, Optional

__all__ = ["TokenBucket", "Throttle", "ReadPacer", "parseRate", "stepFor"]

#: A bucket wakes a waiter once it holds this many seconds of its rate ...
STEP_SECONDS = 0.02
#: ... but at least this many bytes (fewer, larger wake-ups at low rates),
#: or a quarter of a second's worth where that is less (so that a slow
#: limit still moves bytes several times a second) ...
MIN_STEP = 16 << 10
MIN_STEP_SECONDS = 0.25
#: ... and at most this many (what one sendfile turn moves).
MAX_STEP = 4 << 20
#: Seconds of its rate a bucket holds at most (and at least two steps): what
#: a connection that the reactor served late may catch up, so that a busy
#: machine does not lose the rate (at 0.1 s a server read 3.5% under its
#: upload limit on 2 cores at a load of 10). A bucket starts with one step
#: only, so a transfer's start is no burst.
BURST_SECONDS = 0.25


def stepFor(rate: float) -> int:
    """
    The bytes one wake-up hands out at C{rate}: about L{STEP_SECONDS} of it,
    within L{MIN_STEP} (or L{MIN_STEP_SECONDS} of it, at least 512 bytes)
    and L{MAX_STEP}.
    """
    least = max(512, min(MIN_STEP, rate * MIN_STEP_SECONDS))
    return int(min(MAX_STEP, max(least, rate * STEP_SECONDS)))


_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]*?)\s*(?:/\s*s|ps)?\s*$", re.IGNORECASE)


def parseRate(text: str, bareUnit: int = 1) -> int:
    """
    Bytes a second from a rate as people write it; C{0} means no limit.

      - C{500K}, C{10M}, C{1G} (one letter, optionally C{/s}): powers of
        1024, as curl, rsync and ftx's other sizes read them;
      - C{12.5MB/s}, C{800KB}: SI, powers of 1000, as network speeds are
        quoted (C{12.5MB/s} is exactly 100 Mbit/s);
      - C{1.5MiB/s}, C{64KiB}: powers of 1024;
      - C{100Mbit/s}, C{1Gbit}, C{512kbit}: bits, powers of 1000;
      - a bare number: that many C{bareUnit}s (bytes for C{--limit-rate},
        KiB for C{--bwlimit}, as rsync reads it).

    @raise ValueError: not a rate; the message gives examples.
    """
    from humanfriendly import InvalidSize, parse_size

    problem = "not a rate: {!r} (examples: 500K, 12.5MB/s, 1.5MiB/s, 100Mbit/s; 0: no limit)".format(text)
    match = _RATE.match(str(text))
    if match is None:
        raise ValueError(problem)
    number, unit = match.group(1), match.group(2)
    try:
        if not unit:
            value = float(number) * bareUnit
        elif unit.lower().endswith("bit"):
            prefix = unit[:-3]
            value = parse_size(number + prefix, binary=False) / 8.0
        elif unit.lower() in ("b", "bytes", "byte"):
            value = float(number)
        else:
            # One letter (K, M, G) is binary; KB/MB decimal; KiB binary.
            value = parse_size(number + unit, binary=len(unit) == 1)
    except InvalidSize:
        raise ValueError(problem)
    if value != value or value == float("inf"):
        raise ValueError(problem)
    return int(value)


class TokenBucket:
    """
    Tokens for C{rate} bytes a second, at most C{burst} held at a time
    (it starts with one C{step}), shared by the L{Throttle}s that use it.

    While some throttle waits for tokens, only the one whose turn it is may
    take any, and at most C{step}: each C{step} of tokens goes to the next
    waiter in line, which then queues again at the back if it wants more.
    A turn left unused passes to the next waiter after one step's time.

    @ivar rate: bytes a second.
    @ivar step: bytes handed out per wake-up (L{stepFor}).
    @ivar burst: the most tokens held; what moves at once after a pause.
    """

    def __init__(self, rate: float, clock, step: Optional[int] = None, burst: Optional[int] = None) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be positive: {!r}".format(rate))
        self.rate = float(rate)
        self.step = step or stepFor(rate)
        if burst is None:
            burst = max(int(rate * BURST_SECONDS), 2 * self.step)
        self.burst = max(burst, self.step)
        self._clock = clock
        self._tokens = float(self.step)
        self._stamp = clock.seconds()
        self._queue: "OrderedDict[object, Callable[[], None]]" = OrderedDict()
        self._turn: Optional[object] = None
        self._timer = None

    @property
    def tokens(self) -> float:
        """
        Tokens held now: negative while in debt (bytes read beyond them).
        """
        self._refill()
        return self._tokens

    @property
    def waiting(self) -> int:
        """
        How many throttles wait for a turn.
        """
        return len(self._queue)

    def _refill(self) -> None:
        now = self._clock.seconds()
        if now > self._stamp:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = max(now, self._stamp)

    def allowance(self, who: object, want: int) -> int:
        """
        How many of C{want} bytes C{who} may move now (0 to wait). Never
        fewer than a step (or C{want}, if smaller): a caller asked again at
        once must not trickle the few bytes that came in the meantime.
        """
        self._refill()
        if self._queue:
            if who is not self._turn:
                return 0
            want = min(want, self.step)
        if self._tokens < min(want, self.step):
            return 0
        return min(want, int(self._tokens))

    def spend(self, who: object, count: int) -> None:
        """
        C{count} bytes moved for C{who} (more than allowed for a read that
        could not be smaller: the bucket goes into debt). Uses up its turn.
        """
        self._refill()
        self._tokens -= count
        if who is self._turn:
            self._turn = None
            self._arm()

    def wait(self, who: object, wake: Callable[[], None]) -> None:
        """
        Call C{wake} when it is C{who}'s turn to take tokens. Waiting again
        keeps C{who}'s place in the line.
        """
        # Assigning to a key already there keeps its place.
        self._queue[who] = wake
        if self._timer is None:
            self._arm()

    def passTurn(self, who: object) -> None:
        """
        C{who} cannot use its turn now (another bucket holds it back):
        the next waiter gets it.
        """
        if self._turn is who:
            self._turn = None
            self._arm()

    def forget(self, who: object) -> None:
        """
        C{who} is gone (its connection closed): out of the line, no turn.
        """
        self._queue.pop(who, None)
        if self._turn is who:
            self._turn = None
        if not self._queue:
            self._cancel()

    def _cancel(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._cancel()
        if not self._queue:
            return
        delay = (self.step - self._tokens) / self.rate
        if self._turn is not None:
            # The waiter woken last gets one step's time to use its turn.
            delay = max(delay, self.step / self.rate)
        self._timer = self._clock.callLater(max(0.0, delay), self._wakeNext)

    def _wakeNext(self) -> None:
        self._timer = None
        self._refill()
        if not self._queue:
            return
        who, wake = self._queue.popitem(last=False)
        self._turn = who
        wake()
        if self._timer is None:
            self._arm()


class Throttle:
    """
    One direction (sending or receiving) of one connection, held back by
    every bucket that applies to it: its own limit, the server's total, its
    account's. Without buckets it allows everything.
    """

    def __init__(self, buckets: Iterable[Optional[TokenBucket]] = ()) -> None:
        self._buckets = [b for b in buckets if b is not None]
        self._wake: Optional[Callable[[], None]] = None
        self._wanted = 1

    @property
    def limited(self) -> bool:
        return bool(self._buckets)

    @property
    def step(self) -> int:
        """
        The smallest step of its buckets: a good size for one read.
        """
        return min((b.step for b in self._buckets), default=MAX_STEP)

    def add(self, bucket: Optional[TokenBucket]) -> None:
        """
        Also obey C{bucket} from now on (an account's, once logged in).
        """
        if bucket is not None and bucket not in self._buckets:
            self._buckets.append(bucket)

    def allowance(self, want: int) -> int:
        self._wanted = max(1, want)
        for bucket in self._buckets:
            want = bucket.allowance(self, want)
            if not want:
                break
        return want

    def spend(self, count: int) -> None:
        for bucket in self._buckets:
            bucket.spend(self, count)

    @property
    def inDebt(self) -> bool:
        """
        Whether this direction must stop moving bytes until L{wait} calls back.
        """
        return self.limited and self.allowance(1) == 0

    def wait(self, wake: Callable[[], None]) -> None:
        """
        Call C{wake} once (from the clock) when bytes may move again.
        """
        self._wake = wake
        # Wait in the line of each bucket that holds it back (of the first,
        # for a caller that waits while allowed: it is woken at its turn).
        blocking = [b for b in self._buckets if b.allowance(self, self._wanted) == 0] or self._buckets[:1]
        for bucket in self._buckets:
            if bucket in blocking:
                bucket.wait(self, self._tokensCame)
            else:
                # A turn this throttle cannot use goes to the next in line.
                bucket.passTurn(self)

    def _tokensCame(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    def cancel(self) -> None:
        """
        Stop waiting (the body ended, the connection is gone): leave every
        bucket's line and never call the last C{wake}. The throttle may be
        used again.
        """
        self._wake = None
        for bucket in self._buckets:
            bucket.forget(self)


class ReadPacer:
    """
    Holds a transport's reading to a L{Throttle}: counts what was read
    and stops the transport reading while the throttle is in debt.

    It pauses the transport itself, beside whatever else pauses the
    protocol; when the tokens come it reads again only if C{mayRead()}
    says nothing else holds reading, and a protocol that resumes for its
    own reasons must leave the transport paused while L{holding}.
    """

    def __init__(self, throttle: Throttle, transport, mayRead: Callable[[], bool]) -> None:
        self.throttle = throttle
        self._transport = transport
        self._mayRead = mayRead
        #: Whether the rate stopped reading now.
        self.holding = False

    def received(self, count: int) -> None:
        if not self.throttle.limited:
            return
        self.throttle.spend(count)
        if self.throttle.inDebt and not self.holding:
            self.holding = True
            self._transport.pauseProducing()
            self.throttle.wait(self._readAgain)

    def _readAgain(self) -> None:
        self.holding = False
        if self._mayRead():
            self._transport.resumeProducing()

    def cancel(self) -> None:
        self.throttle.cancel()
        self.holding = False
