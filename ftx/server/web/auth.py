"""
The server's accounts over HTTP: Basic authentication through
L{twisted.web.guard}, checked by the same C{twisted.cred} checkers as the
protocol's login (C{--auth}), turned into the same
L{ftx.server.accounts.Account} (rights and home folder, from C{--access})
by the same realm. Failed logins count in the protocol's
L{ftx.server.logins.LoginThrottle}, by client address, and each one's
401 comes after the same delay as the protocol's C{430}.
"""

from __future__ import annotations

from twisted.cred.checkers import ANONYMOUS, AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.resource import IResource
from zope.interface import implementer

from ftx.server.accounts import IFtxAvatar

__all__ = ["WebRealm", "guarded"]


@implementer(IRealm)
class WebRealm:
    """
    Gives each login the resource of its account: C{makeView(account)}.
    Anonymous logins get the server's anonymous account.
    """

    def __init__(self, access, makeView) -> None:
        self.access = access
        self.makeView = makeView

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IResource not in interfaces:
            raise NotImplementedError("the web view only provides IResource")
        if avatarId is ANONYMOUS:
            account = self.access.anonymous
        else:
            _, account, _ = self.access.realm.requestAvatar(avatarId, mind, IFtxAvatar)
        return IResource, self.makeView(account), lambda: None


@implementer(IUsernamePassword)
class _AddressedPassword:
    """
    A user name and password with the address they came from, for the
    throttle.
    """

    def __init__(self, inner, address: str) -> None:
        self.inner = inner
        self.username = inner.username
        self.password = inner.password
        self.address = address

    def checkPassword(self, password) -> bool:
        return self.inner.checkPassword(password)


class _AddressedBasic(BasicCredentialFactory):
    def decode(self, response: bytes, request):
        credentials = super().decode(response, request)
        return _AddressedPassword(credentials, getattr(request.getClientAddress(), "host", "?"))


@implementer(ICredentialsChecker)
class _Throttled:
    """
    The protocol's checkers behind its login throttle: an address with too
    many recent failures is refused without checking, and every failure
    waits C{delay} seconds (a timer) before it is answered.
    """

    credentialInterfaces = (IUsernamePassword,)
    _log = Logger()

    def __init__(self, checker, throttle, delay: float, reactor) -> None:
        self.checker = checker
        self.throttle = throttle
        self.delay = delay
        self.reactor = reactor

    @inlineCallbacks
    def requestAvatarId(self, credentials):
        address = getattr(credentials, "address", "?")
        if self.throttle.blocked(address):
            raise UnauthorizedLogin("too many failed logins from this address")
        try:
            avatarId = yield self.checker.requestAvatarId(credentials)
        except UnauthorizedLogin:
            self.throttle.failed(address)
            self._log.warn("web login failed for {user!r} from {address}", user=credentials.username, address=address)
            yield deferLater(self.reactor, self.delay, lambda: None)
            raise
        return avatarId


def guarded(access, makeView, reactor, readable) -> HTTPAuthSessionWrapper:
    """
    The resource that asks for Basic credentials and serves each account's
    view. Clients that send none are served as the anonymous account when
    C{readable(access.anonymous)}; otherwise they get 401 and the browser
    asks for a password.

    @param access: an L{ftx.server.accounts.AccessControl} with a portal.
    """
    checkers = [
        _Throttled(checker, access.throttle, access.loginDelay, reactor)
        for checker in {id(c): c for c in access.portal.checkers.values()}.values()
    ]
    if access.anonymous is not None and readable(access.anonymous):
        checkers.append(AllowAnonymousAccess())
    portal = Portal(WebRealm(access, makeView), checkers)
    return HTTPAuthSessionWrapper(portal, [_AddressedBasic(b"ftx")])
