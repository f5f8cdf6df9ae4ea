"""
Accounts and access control, the L{twisted.cred} way.

A C{Portal} checks a user name and password with the checkers that
C{--auth} made (Twisted's C{strcred} plugins: C{file:users.txt},
C{memory:alice:secret}, ...). The L{FtxRealm} turns the account that
passed into an L{Account}: what it may do (read, write, delete) and the
storage it sees (the whole root or a home folder inside it), from the
access file (see L{AccessRules}). The server asks L{AccessControl.check}
before every storage call.

How failed logins are slowed down and counted is L{ftx.server.logins}.
"""

from __future__ import annotations

from typing import Dict, Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import inlineCallbacks
from zope.interface import Attribute, Interface, implementer

from ftx._io.ratelimit import parseRate
from ftx.errors import FtxError, LoginRequired, PermissionDenied
from ftx.protocol.names import splitName
from ftx.server.logins import LoginThrottle
from ftx.server.storage import IStorage

__all__ = [
    "Permissions",
    "AccessRules",
    "IFtxAvatar",
    "Account",
    "FtxRealm",
    "AccessControl",
    "checkOptions",
    "fromOptions",
]

ANONYMOUS = "anonymous"
DEFAULT = "*"
_ACTIONS = {"read": "r", "write": "w", "delete": "d"}


class Permissions:
    """
    What one account may do, and the folder (relative to the root) it is
    confined to; C{home} L{None} means the whole root.
    """

    def __init__(self, rights: str = "", home: Optional[bytes] = None, rate: Optional[int] = None) -> None:
        self.rights = frozenset(rights)
        self.home = home
        #: Bytes a second each way for all of the account's connections
        #: together (L{ftx.server.ratelimit}); None: no limit of its own.
        self.rate = rate

    @classmethod
    def parse(cls, text: str, home: Optional[bytes] = None, rate: Optional[int] = None) -> "Permissions":
        """
        C{rwd}, any subset of it (C{r}, C{rw}, ...), or C{none} / C{-}.

        @raise ValueError: another letter.
        """
        if text in ("none", "-"):
            return cls("", home, rate)
        if not text or set(text) - set("rwd"):
            raise ValueError("rights must be letters from 'rwd', or 'none': {!r}".format(text))
        return cls(text, home, rate)

    def allows(self, action: str) -> bool:
        letter = _ACTIONS.get(action)
        return letter is None or letter in self.rights

    def __repr__(self) -> str:
        return "Permissions({!r}, home={!r})".format("".join(sorted(self.rights)) or "none", self.home)


FULL = Permissions("rwd")
READ = Permissions("r")
NONE = Permissions("")


class AccessRules:
    """
    Who may do what, and where. One line per account in the access file::

        # NAME       RIGHTS  [home=FOLDER] [rate=SIZE/s]
        alice        rwd     home=alice  rate=2MB/s
        bob          r
        *            r                      # every other account
        anonymous    none                   # clients that did not log in

    RIGHTS is any of C{r} (list, sget, mget, cget, hash), C{w} (put,
    partial) and C{d} (delete), or C{none}. C{home=FOLDER} confines the
    account to that folder under the root (created when first needed).
    C{rate=SIZE/s} limits each direction of all the account's connections
    together (L{ftx._io.ratelimit.parseRate} reads it).

    Without an access file every account has C{rwd} on the whole root.
    With one, an account not named in it and without a C{*} line gets
    C{none}.
    """

    def __init__(
        self,
        users: Optional[Dict[str, Permissions]] = None,
        default: Permissions = FULL,
        anonymous: Optional[Permissions] = None,
    ) -> None:
        self.users = dict(users or {})
        self.default = default
        self.anonymous = anonymous

    @classmethod
    def parse(cls, text: str, source: str = "the access file") -> "AccessRules":
        """
        @raise ValueError: a line is malformed; the message names it.
        """
        users: Dict[str, Permissions] = {}
        default, anonymous = NONE, None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].split()
            if not line:
                continue
            where = "{} line {}".format(source, number)
            if len(line) < 2:
                raise ValueError("{}: expected NAME RIGHTS [home=FOLDER]".format(where))
            name, rights, options = line[0], line[1], line[2:]
            home = rate = None
            for option in options:
                key, _, value = option.partition("=")
                if key == "rate" and value:
                    try:
                        rate = parseRate(value) or None
                    except ValueError as e:
                        raise ValueError("{}: {}".format(where, e))
                    continue
                if key != "home" or not value:
                    raise ValueError("{}: unknown option {!r} (only home=FOLDER, rate=SIZE/s)".format(where, option))
                home = value.strip("/").encode("utf-8")
                try:
                    splitName(home)
                except FtxError as e:
                    raise ValueError("{}: bad home folder {!r}: {}".format(where, value, e))
            try:
                permissions = Permissions.parse(rights, home, rate)
            except ValueError as e:
                raise ValueError("{}: {}".format(where, e))
            if name in users or (name == DEFAULT and default is not NONE) or (name == ANONYMOUS and anonymous):
                raise ValueError("{}: {} is listed twice".format(where, name))
            if name == DEFAULT:
                default = permissions
            elif name == ANONYMOUS:
                anonymous = permissions
            else:
                users[name] = permissions
        return cls(users, default, anonymous)

    @classmethod
    def fromFile(cls, path: str) -> "AccessRules":
        with open(path, encoding="utf-8") as f:
            return cls.parse(f.read(), path)

    def forUser(self, name: str) -> Permissions:
        return self.users.get(name, self.default)


class IFtxAvatar(Interface):
    """
    A client's identity on the server: a logged-in account or anonymous.
    """

    name = Attribute("The account name; 'anonymous' for clients that did not log in.")
    permissions = Attribute("The L{Permissions} that apply.")
    storage = Attribute("The storage this account sees, or None for the server's root storage.")


@implementer(IFtxAvatar)
class Account:
    def __init__(self, name: str, permissions: Permissions, storage=None) -> None:
        self.name = name
        self.permissions = permissions
        self.storage = storage

    def __repr__(self) -> str:
        return "Account({!r}, {!r})".format(self.name, self.permissions)


@implementer(IRealm)
class FtxRealm:
    """
    Gives each account that logged in an L{Account} built from the access
    rules; one storage per home folder (L{IStorage.child} of the root,
    which confines it), shared by everyone using it.
    """

    def __init__(self, rules: AccessRules, root: IStorage) -> None:
        self.rules = rules
        self.root = root
        self._homes: Dict[bytes, IStorage] = {}

    def account(self, name: str, permissions: Permissions) -> Account:
        """
        @raise PermissionDenied: the account's home folder leads outside
            the root.
        """
        storage = None
        if permissions.home is not None:
            storage = self._homes.get(permissions.home)
            if storage is None:
                storage = self._homes[permissions.home] = self.root.child(permissions.home)
        return Account(name, permissions, storage)

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IFtxAvatar not in interfaces:
            raise NotImplementedError("ftx only provides IFtxAvatar")
        name = avatarId.decode("utf-8", "surrogateescape") if isinstance(avatarId, bytes) else str(avatarId)
        return IFtxAvatar, self.account(name, self.rules.forUser(name)), lambda: None


class AccessControl:
    """
    The server's access policy. Without a C{portal} there are no accounts
    and everyone is anonymous with the anonymous permissions.

    @param root: the server's storage; home folders are its
        L{IStorage.child} views.
    @param reactor: times the delay after a failed login
        (L{ftx.server.logins.LoginThrottle}).
    @ivar anonymous: the L{Account} of clients that did not log in, or
        L{None} when they must log in first.
    """

    #: What the portal is asked for at login.
    avatarInterface = IFtxAvatar

    def __init__(
        self,
        root: Optional[IStorage] = None,
        rules: Optional[AccessRules] = None,
        checkers=(),
        anonymous: Optional[Permissions] = FULL,
        *,
        reactor,
        loginDelay: float = 1.0,
        maxFailures: int = 3,
        maxAddressFailures: int = 10,
        addressWindow: float = 600.0,
    ) -> None:
        self.reactor = reactor
        self.rules = rules or AccessRules()
        self.realm = FtxRealm(self.rules, root) if root is not None else None
        self.portal: Optional[Portal] = None
        if checkers:
            self.portal = Portal(self.realm, [_FirstMatch([_bytesChecker(c) for c in checkers])])
        self.anonymous: Optional[Account] = None
        if anonymous is not None and (anonymous.rights or self.portal is None):
            self.anonymous = self.realm.account(ANONYMOUS, anonymous) if self.realm else Account(ANONYMOUS, anonymous)
        self.loginDelay = loginDelay
        self.maxFailures = maxFailures
        self.throttle = LoginThrottle(reactor, maxAddressFailures, addressWindow)

    def features(self):
        """
        The greeting features this policy adds.
        """
        if self.portal is None:
            return ()
        return ("login",) if self.anonymous is not None else ("login", "login-required")

    @staticmethod
    def check(account: Optional[Account], action: str, name: Optional[bytes]) -> None:
        """
        Refuse C{action} (C{read}, C{write}, C{delete}) to C{account}.

        @raise LoginRequired: nobody is logged in and anonymous use is off.
        @raise PermissionDenied: the account lacks the right.
        """
        if account is None:
            raise LoginRequired("log in first: this server does not serve anonymous clients")
        if not account.permissions.allows(action):
            who = "anonymous clients" if account.name == ANONYMOUS else "the account {}".format(account.name)
            raise PermissionDenied("{} may not {} on this server".format(who, action))


@implementer(ICredentialsChecker)
class _FirstMatch:
    """
    Several C{--auth} sources in the order given; the first that accepts
    the credentials wins. (A C{Portal} keeps one checker per credentials
    interface, so without this only the last C{--auth} would count.)
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, checkers) -> None:
        self.checkers = list(checkers)

    @inlineCallbacks
    def requestAvatarId(self, credentials):
        for checker in self.checkers:
            try:
                avatarId = yield checker.requestAvatarId(credentials)
            except UnauthorizedLogin:
                continue
            return avatarId
        raise UnauthorizedLogin()


def _bytesChecker(checker):
    """
    Twisted's C{memory:} plugin stores names and passwords as text while
    its checker (like C{file:}) compares them with the bytes of the
    credentials; give it bytes so both plugins work with the same login.
    """
    users = getattr(checker, "users", None)
    if isinstance(users, dict):
        checker.users = {
            (k.encode("utf-8") if isinstance(k, str) else k): (v.encode("utf-8") if isinstance(v, str) else v)
            for k, v in users.items()
        }
    return checker


def checkOptions(options) -> None:
    """
    Check and convert the access options of L{ftx.server.tap.Options} in place:
    C{access} becomes L{AccessRules}, C{anonymous} the anonymous
    L{Permissions}, the login limits numbers.

    @raise ValueError: with a message for the user.
    """
    path = options["access"]
    try:
        rules = AccessRules.fromFile(path) if path else AccessRules()
    except OSError as e:
        raise ValueError("cannot read --access {}: {}".format(path, e.strerror or e))
    hasAccounts = bool(options.get("credCheckers"))
    if path and not hasAccounts and (rules.users or rules.default.rights):
        raise ValueError("--access names accounts, but no --auth says how they log in")
    choice = options["anonymous"]
    home = rules.anonymous.home if rules.anonymous is not None else None
    rate = rules.anonymous.rate if rules.anonymous is not None else None
    if choice is None:
        # With accounts, those who do not log in may still read (issue 12):
        # writing and deleting are what accounts are for.
        anonymous = rules.anonymous or (READ if hasAccounts else FULL)
    elif choice in ("none", "read", "full"):
        anonymous = Permissions({"none": "", "read": "r", "full": "rwd"}[choice], home, rate)
    else:
        raise ValueError("--anonymous must be none, read or full: {!r}".format(choice))
    if not hasAccounts and not anonymous.rights:
        raise ValueError("with anonymous access off and no --auth, nobody could use the server")
    options["access"], options["anonymous"] = rules, anonymous
    for key, least in (("login-delay", 0.0), ("max-login-failures", 1), ("max-address-failures", 0)):
        try:
            value = float(options[key]) if key == "login-delay" else int(options[key])
        except ValueError:
            raise ValueError("--{} must be a number: {!r}".format(key, options[key]))
        if value < least:
            raise ValueError("--{} must be at least {}".format(key, least))
        options[key] = value


def fromOptions(options, root: IStorage, reactor) -> AccessControl:
    """
    The L{AccessControl} that checked options (L{checkOptions}) describe.
    """
    return AccessControl(
        root,
        options["access"],
        options.get("credCheckers") or (),
        options["anonymous"],
        reactor=reactor,
        loginDelay=options["login-delay"],
        maxFailures=options["max-login-failures"],
        maxAddressFailures=options["max-address-failures"],
    )
