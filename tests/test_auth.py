"""
Accounts, permissions and login throttling on real loopback servers built
from the twistd options, as an operator would configure them. The login
delays and the per-address window run on a L{Clock} that the tests
advance, so the delays are asserted exactly and cost no wall time.
"""

import os
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogLevel, capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx.client import connect
from ftx.server import accounts
from ftx.server.accounts import AccessRules
from ftx.server.logins import LoginThrottle
from ftx.server.tap import Options, makeFactory
from tests.support import closeSocketsAfter, digestOf, sha1, temporaryFolder

ACCESS = """\
# name      rights   options
reader      r
writer      w
deleter     d
nobody      none
alice       rwd      home=alice
anonymous   r        home=pub
"""
USERS = "".join("{0}:{0}-pw\n".format(n) for n in ("reader", "writer", "deleter", "nobody", "alice"))


class _Server:
    """
    A server built from twistd options on a loopback port, whose login
    timers run on C{clock}.
    """

    def __init__(self, port, clock: Clock) -> None:
        self.port = port
        self.clock = clock
        self.address = "127.0.0.1:{}".format(port.getHost().port)

    def _timers(self):
        return [call for call in self.clock.getDelayedCalls() if call.active()]

    async def nextDelay(self, timeout: float = 10.0) -> float:
        """
        Wait (on the real reactor: the login crosses a real socket) until
        the server has set a login timer; its delay in seconds.
        """
        for _ in range(int(timeout / 0.005)):
            timers = self._timers()
            if timers:
                return round(min(call.getTime() for call in timers) - self.clock.seconds(), 9)
            await deferLater(reactor, 0.005, lambda: None)
        raise AssertionError("the server set no login timer")

    def passTimer(self) -> None:
        """
        Advance the clock exactly to the earliest login timer.
        """
        self.clock.advance(min(call.getTime() for call in self._timers()) - self.clock.seconds())

    async def passDelays(self, d, timeout: float = 10.0) -> None:
        """
        Wait until C{d} has fired, passing every login delay it waits for
        by advancing the clock; C{d} keeps its result.
        """
        # Not d.called: that is already true while d waits on a chained
        # Deferred (connect's login).
        fired = []
        d.addBoth(lambda result: fired.append(True) or result)
        for _ in range(int(timeout / 0.005)):
            if fired:
                return
            if self._timers():
                self.passTimer()
            else:
                await deferLater(reactor, 0.005, lambda: None)
        raise AssertionError("no answer from the server")

    async def outcome(self, d):
        """
        The exception class C{d} fails with, or C{"ok"}, its login delays
        passed on the clock.
        """
        await self.passDelays(d)
        return await _outcome(d)

    def session(self, **options):
        """
        L{connect} to this server, logging in with C{credentials}, its login
        delay (if any) passed on the clock: fires or fails as connect does.
        """
        d = connect(reactor, self.address, **options)
        return Deferred.fromCoroutine(self.passDelays(d)).addCallback(lambda _: d)


async def _outcome(d):
    try:
        await d
    except errors.FtxError as e:
        return type(e)
    return "ok"


def _operations(client, local):
    """
    Every command that touches storage, each as a thunk; names exist so
    that a permitted command succeeds.
    """
    return {
        "list": lambda: client.list(),
        "sget": lambda: client.sget("file.txt", str(local / "got.txt")),
        "mget": lambda: client.mget("*.txt", str(local / "batch")),
        "hash": lambda: client.hash("file.txt"),
        "cget": lambda: client.cget("file.txt", str(local / "cont.txt")),
        "put": lambda: client.put(str(local / "up.txt"), "up.txt"),
        "partial": lambda: client.partial("up.txt"),
        "delete": lambda: client.delete("victim.txt"),
    }


READS = {"list", "sget", "mget", "hash", "cget"}
WRITES = {"put", "partial"}


class _Raw(Protocol):
    def __init__(self):
        self.received = b""
        self.closed = Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(self.received)


class AccountTests(TestCase):
    """
    A root with a file at the top, in alice's home and in the anonymous
    home; a users file and the access file above; servers from the
    twistd options.
    """

    def setUp(self):
        closeSocketsAfter(self, reactor)
        top = Path(temporaryFolder(self))
        root = top / "root"
        for folder in ("", "alice", "pub"):
            (root / folder).mkdir(exist_ok=True)
            (root / folder / "file.txt").write_bytes("in {}\n".format(folder or "root").encode())
        (top / "users.txt").write_text(USERS)
        (top / "access.txt").write_text(ACCESS)
        local = top / "local"
        local.mkdir()
        (local / "up.txt").write_bytes(b"uploaded\n")
        self.root, self.local = root, local
        self.args = ("--auth", "file:" + str(top / "users.txt"), "--access", str(top / "access.txt"))

    async def serve(self, *arguments) -> _Server:
        options = Options()
        options.parseOptions(["--root", str(self.root), "--port", "tcp:0:interface=127.0.0.1", *arguments])
        factory = makeFactory(options, reactor)
        # The same access policy, its login delays and address window on a
        # clock the test advances.
        clock = Clock()
        factory.access = accounts.fromOptions(options, factory.storage, clock)
        port = await serverFromString(reactor, options["port"]).listen(factory)
        self.addCleanup(port.stopListening)
        return _Server(port, clock)

    async def test_eachPermissionEnforcedForEveryCommand(self):
        """
        r allows exactly the reading commands, w exactly put and partial, d
        exactly delete, none nothing; a refused command changes nothing.
        """
        root, local = self.root, self.local
        server = await self.serve(*self.args)
        for user, allowed in (("reader", READS), ("writer", WRITES), ("deleter", {"delete"}), ("nobody", set())):
            (root / "victim.txt").write_bytes(b"x")
            if (root / "up.txt").exists():
                os.remove(root / "up.txt")
            client = await connect(reactor, server.address, credentials=(user, user + "-pw"))
            try:
                for verb, run in _operations(client, local).items():
                    expected = "ok" if verb in allowed else errors.PermissionDenied
                    self.assertEqual(await _outcome(run()), expected, (user, verb))
            finally:
                await client.quit()
            self.assertEqual((root / "victim.txt").exists(), "delete" not in allowed, user)
            self.assertEqual((root / "up.txt").exists(), "put" in allowed, user)
            self.assertEqual((root / "file.txt").read_bytes(), b"in root\n")

    async def test_loginSuccessAndFailure(self):
        server = await self.serve(*self.args)
        client = await connect(reactor, server.address)
        try:
            self.assertLessEqual({"login"}, set(client.protocol.features))
            self.assertNotIn("login-required", client.protocol.features)  # anonymous may read
            self.assertEqual(await server.outcome(client.login("alice", "wrong")), errors.LoginFailed)
            self.assertEqual(await server.outcome(client.login("mallory", "alice-pw")), errors.LoginFailed)
            self.assertEqual(await client.login("alice", "alice-pw"), "alice")
            self.assertEqual([e.name for e in await client.list()], ["file.txt"])
        finally:
            await client.quit()
        error = await self.assertFailure(server.session(credentials=("reader", "nope")), errors.LoginFailed)
        self.assertIn("wrong user name or password", str(error))

    async def test_everyAuthSourceIsConsulted(self):
        """
        Two --auth options: accounts from either log in (a Portal alone would
        keep only the last checker).
        """
        server = await self.serve(*self.args[:2], "--auth", "memory:carol:carol-pw")
        for user in ("reader", "carol"):
            client = await connect(reactor, server.address, credentials=(user, user + "-pw"))
            await client.quit()
        await self.assertFailure(server.session(credentials=("carol", "reader-pw")), errors.LoginFailed)

    async def test_homeDirectoryConfinesTheAccount(self):
        """
        alice sees, writes and deletes only under root/alice; names that climb
        out, and links that lead out, are refused. Anonymous reads only pub.
        """
        root, local = self.root, self.local
        os.symlink(str(root / "file.txt"), str(root / "alice" / "escape.txt"))
        server = await self.serve(*self.args)
        client = await connect(reactor, server.address, credentials=("alice", "alice-pw"))
        try:
            self.assertEqual(sorted(e.name for e in await client.list()), ["file.txt"])
            await client.sget("file.txt", str(local / "a.txt"))
            self.assertEqual((local / "a.txt").read_bytes(), b"in alice\n")
            transfer = await client.put(str(local / "up.txt"), "sub/up.txt")
            self.assertEqual(transfer.checksum, "xxh128")
            self.assertEqual(digestOf(str(root / "alice" / "sub" / "up.txt"), "xxh128"), transfer.digest)
            self.assertFalse((root / "sub").exists())
            for name in ("../file.txt", "escape.txt", "../pub/file.txt"):
                await self.assertFailure(client.hash(name), errors.PermissionDenied, errors.NotFound)
            await client.delete("sub/up.txt")
            self.assertTrue((root / "file.txt").exists() and (root / "pub" / "file.txt").exists())
        finally:
            await client.quit()
        anonymous = await connect(reactor, server.address)
        try:
            await anonymous.sget("file.txt", str(local / "p.txt"))
            self.assertEqual((local / "p.txt").read_bytes(), b"in pub\n")
            await self.assertFailure(anonymous.put(str(local / "up.txt")), errors.PermissionDenied)
        finally:
            await anonymous.quit()

    async def test_anonymousNoneRequiresLoginForEverything(self):
        server = await self.serve(*self.args, "--anonymous", "none")
        client = await connect(reactor, server.address)
        try:
            self.assertLessEqual({"login", "login-required"}, set(client.protocol.features))
            for verb, run in _operations(client, self.local).items():
                self.assertEqual(await _outcome(run()), errors.LoginRequired, verb)
            self.assertEqual(await _outcome(client.df()), errors.LoginRequired)
            await client.login("reader", "reader-pw")
            self.assertEqual(await client.hash("file.txt"), sha1(str(self.root / "file.txt")))
        finally:
            await client.quit()

    async def test_anonymousReadOnlyAlongsideAccounts(self):
        server = await self.serve("--auth", "memory:bob:pw", "--anonymous", "read")
        client = await connect(reactor, server.address)
        try:
            self.assertNotIn("login-required", client.protocol.features)
            outcomes = {verb: await _outcome(run()) for verb, run in _operations(client, self.local).items()}
            self.assertEqual(outcomes, {v: "ok" if v in READS else errors.PermissionDenied for v in outcomes})
            await client.login("bob", "pw")
            await client.put(str(self.local / "up.txt"))
            self.assertEqual((self.root / "up.txt").read_bytes(), b"uploaded\n")
        finally:
            await client.quit()

    async def test_withoutAuthEveryoneIsAnonymousAsBefore(self):
        server = await self.serve()
        client = await connect(reactor, server.address)
        try:
            self.assertNotIn("login", client.protocol.features)
            await client.put(str(self.local / "up.txt"))
            error = await self.assertFailure(client.login("bob", "pw"), errors.BadRequest)
            self.assertIn("no accounts", str(error))
        finally:
            await client.quit()
        error = await self.assertFailure(connect(reactor, server.address, credentials=("bob", "pw")), errors.LoginFailed)
        self.assertIn("no accounts", str(error))

    async def test_bruteForceIsSlowedAndCutOff(self):
        """
        Each failure on a connection waits twice as long as the one before;
        the third closes the connection; once the address has 5 failures even
        the right password gets 503 at once, until the failures are older
        than the address window (600 s).
        """
        limits = ("--login-delay", "0.1", "--max-login-failures", "3", "--max-address-failures", "5")
        server = await self.serve(*self.args, *limits)
        clock = server.clock
        client = await connect(reactor, server.address)
        delays = []
        for attempt in range(3):
            d = client.login("alice", "guess{}".format(attempt))
            delay = await server.nextDelay()
            # Not answered a moment before the delay is over.
            clock.advance(delay * 0.99)
            self.assertTrue(server._timers())
            self.assertFalse(d.called)
            server.passTimer()
            self.assertEqual(await _outcome(d), errors.LoginFailed)
            delays.append(delay)
        self.assertEqual(delays, [0.1, 0.2, 0.4])
        await self.assertFailure(client.df(), errors.ConnectionLost)

        client = await connect(reactor, server.address)
        for attempt in range(2):
            self.assertEqual(await server.outcome(client.login("alice", "again{}".format(attempt))), errors.LoginFailed)
        # Refused at once: no timer is set and the clock is not advanced.
        self.assertEqual(await _outcome(client.login("alice", "more")), errors.Unavailable)
        self.assertEqual(server._timers(), [])
        await self.assertFailure(client.df(), errors.ConnectionLost)

        error = await self.assertFailure(
            connect(reactor, server.address, credentials=("alice", "alice-pw")), errors.Unavailable
        )
        self.assertIn("too many failed logins", str(error))
        clock.advance(600)
        client = await connect(reactor, server.address, credentials=("alice", "alice-pw"))
        await client.quit()

    async def test_pipelinedLoginsCannotExceedTheLimit(self):
        """
        Ten logins sent in one packet get three 430 replies, after the full
        delays, and the connection closes; the rest are never checked.
        """
        server = await self.serve(*self.args, "--login-delay", "0.05")
        raw = _Raw()
        await TCP4ClientEndpoint(reactor, "127.0.0.1", server.port.getHost().port).connect(Factory.forProtocol(lambda: raw))
        raw.transport.write(b"".join(b"login alice guess%d\r\n" % i for i in range(10)))
        for answered, expected in enumerate((0.05, 0.1, 0.2)):
            self.assertEqual(await server.nextDelay(), expected)
            # No reply before its delay is over.
            self.assertLessEqual(raw.received.count(b"\r\n430"), answered)
            server.passTimer()
        lines = (await raw.closed).split(b"\r\n")
        self.assertEqual([line[:3] for line in lines if line], [b"220", b"430", b"430", b"430"])

    async def test_passwordInTheClearIsLoggedOncePerConnection(self):
        server = await self.serve(*self.args)
        with capturedLogs() as events:
            client = await connect(reactor, server.address)
            await client.login("reader", "reader-pw")
            await client.login("alice", "alice-pw")
            await client.quit()
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn and "without TLS" in e["log_format"]]
        self.assertEqual(len(warnings), 1)


class ThrottleAndRulesTests(SynchronousTestCase):
    """
    The address throttle on a clock, the access file format and the
    checks of the twistd options.
    """

    def test_addressThrottleForgetsOldFailures(self):
        clock = Clock()
        throttle = LoginThrottle(clock, limit=2, window=60.0, maxAddresses=3)
        throttle.failed("10.0.0.1")
        clock.advance(30)
        throttle.failed("10.0.0.1")
        self.assertTrue(throttle.blocked("10.0.0.1") and not throttle.blocked("10.0.0.2"))
        clock.advance(31)
        self.assertFalse(throttle.blocked("10.0.0.1"))
        for n in range(10):
            throttle.failed("10.0.1.{}".format(n))
        self.assertEqual(len(throttle._failures), 3)

    def test_accessFileFormat(self):
        rules = AccessRules.parse("alice rw home=a/b  # comment\n* r\n\nanonymous none\n")
        self.assertEqual(rules.forUser("alice").rights, {"r", "w"})
        self.assertEqual(rules.forUser("alice").home, b"a/b")
        self.assertEqual(rules.forUser("zed").rights, {"r"})
        self.assertEqual(rules.anonymous.rights, frozenset())
        for bad in ("alice rwx", "alice", "alice r home=../x", "alice r colour=red", "bob r\nbob w"):
            error = self.assertRaises(ValueError, AccessRules.parse, bad)
            self.assertIn("line", str(error), bad)

    def assertRefused(self, arguments, message):
        root = temporaryFolder(self)
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--root", root] + arguments)
        self.assertIn(message, str(error))

    def test_anonymousNoneWithoutAuthIsRefused(self):
        self.assertRefused(["--anonymous", "none"], "nobody could use")

    def test_unknownAnonymousChoiceIsRefused(self):
        self.assertRefused(["--anonymous", "some"], "none, read or full")

    def test_anonymousAuthSourceIsRefused(self):
        self.assertRefused(["--auth", "anonymous"], "not supported")

    def test_loginDelayMustBeANumber(self):
        self.assertRefused(["--auth", "memory:a:b", "--login-delay", "soon"], "must be a number")

    def test_maxLoginFailuresMustBePositive(self):
        self.assertRefused(["--auth", "memory:a:b", "--max-login-failures", "0"], "at least 1")

    def test_accessFileNamingAccountsNeedsAuth(self):
        top = temporaryFolder(self)
        access = os.path.join(top, "access.txt")
        with open(access, "w") as f:
            f.write(ACCESS)
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--root", top, "--access", access])
        self.assertIn("no --auth", str(error))
        missing = os.path.join(top, "missing")
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--root", top, "--access", missing])
        self.assertIn("cannot read --access", str(error))

    def test_publicNamesExported(self):
        import ftx._io.tls
        import ftx.client.api
        import ftx.server.accounts
        import ftx.server.logins

        for module in (ftx.server.accounts, ftx.server.logins, ftx.client.api, ftx._io.tls):
            self.assertTrue(module.__all__)
            for name in module.__all__:
                self.assertTrue(hasattr(module, name), (module.__name__, name))
