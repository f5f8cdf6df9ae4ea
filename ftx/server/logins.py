"""
Logging in without inviting password guessing: each failure on a
connection doubles the delay before its C{430} reply (a timer, never a
blocked reactor), a connection is closed after C{maxFailures}, and an
address with too many recent failures gets C{503} for every login until
they age out (L{LoginThrottle}). The accounts themselves are L{ftx.server.accounts}.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Deque

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.task import deferLater

from ftx.errors import BadRequest, FtxError, LoginFailed, ServerError, Unavailable
from ftx.server.logsafe import SafeLogger

__all__ = ["LoginThrottle", "LoginAttempts"]


class LoginThrottle:
    """
    Failed logins per client address over a sliding window. An address
    with C{limit} failures in the last C{window} seconds may not try again
    until the oldest of them is older than that. At most C{maxAddresses}
    addresses are tracked (the least recently failing are forgotten), so
    an attacker cycling through addresses cannot grow it without bound.
    """

    def __init__(self, clock, limit: int = 10, window: float = 600.0, maxAddresses: int = 10000) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.maxAddresses = maxAddresses
        self._failures: "OrderedDict[str, Deque[float]]" = OrderedDict()

    def _recent(self, address: str) -> Deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        horizon = self.clock.seconds() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[address]
        return times

    def blocked(self, address: str) -> bool:
        return self.limit > 0 and len(self._recent(address)) >= self.limit

    def failed(self, address: str) -> None:
        if self.limit <= 0:
            return
        times = self._recent(address)
        self._failures[address] = times
        self._failures.move_to_end(address)
        times.append(self.clock.seconds())
        while len(times) > self.limit:
            times.popleft()
        while len(self._failures) > self.maxAddresses:
            self._failures.popitem(last=False)


class LoginAttempts:
    """
    The logins of one connection: the delays, counts and the warning about
    passwords sent in the clear.
    """

    # The user name is the client's text (ftx.server.logsafe).
    _log = SafeLogger()

    def __init__(self, access, peer: str, address: str, secure: bool) -> None:
        self.access = access
        self.peer = peer
        self.address = address
        self.secure = secure
        self.failures = 0
        #: Set once the connection may not try again; the server closes it.
        self.exhausted = False
        self._warned = False

    def attempt(self, user: bytes, password: bytes):
        """
        Check C{user} and C{password}. Fires with the L{Account}, or fails
        after the delay with L{LoginFailed}, or at once with L{Unavailable}
        when this connection or address has failed too often.
        """
        access = self.access
        if access.portal is None:
            raise BadRequest("this server has no accounts; carry on without logging in")
        if self.exhausted or self.failures >= access.maxFailures:
            self.exhausted = True
            raise Unavailable("too many failed logins on this connection")
        if access.throttle.blocked(self.address):
            self.exhausted = True
            self._log.warn("{peer} login refused: too many failures from {address}", peer=self.peer, address=self.address)
            raise Unavailable("too many failed logins from your address; try again later")
        if not self.secure and not self._warned:
            self._warned = True
            self._log.warn(
                "{peer} sent a password over a connection without TLS; listen with --port ssl:... to protect it",
                peer=self.peer,
            )
        shown = user.decode("utf-8", "replace")[:64]
        d = access.portal.login(UsernamePassword(user, password), None, access.avatarInterface)

        def succeeded(result):
            _, account, _ = result
            self._log.info("{peer} logged in as {user}", peer=self.peer, user=account.name)
            return account

        def failed(failure):
            if not failure.check(UnauthorizedLogin, UnhandledCredentials):
                if failure.check(FtxError):
                    return failure
                self._log.failure("{peer} login as {user} broke", failure=failure, peer=self.peer, user=shown)
                raise ServerError("the server could not complete the login; its log has the details")
            self.failures += 1
            access.throttle.failed(self.address)
            if self.failures >= access.maxFailures:
                self.exhausted = True
            delay = min(access.loginDelay * 2 ** (self.failures - 1), 30.0)
            self._log.warn(
                "{peer} failed login as {user} ({failures} on this connection); answering in {delay:.2f}s",
                peer=self.peer, user=shown, failures=self.failures, delay=delay,
            )

            def refuse():
                raise LoginFailed("wrong user name or password")

            return deferLater(access.reactor, delay, refuse)

        return d.addCallbacks(succeeded, failed)
