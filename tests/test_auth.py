"""
Accounts, permissions and login throttling on real loopback servers built
from the twistd options, as an operator would configure them.
"""

import os
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.python import usage

from ftx import errors
from ftx.client.api import connect
from ftx.server.accounts import AccessRules
from ftx.server.logins import LoginThrottle
from ftx.server.tap import Options, makeFactory
from tests.support import digestOf, sha1

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


async def _serve(root, *arguments):
    options = Options()
    options.parseOptions(["--root", str(root), "--port", "tcp:0:interface=127.0.0.1", *arguments])
    port = await serverFromString(reactor, options["port"]).listen(makeFactory(options, reactor))
    return port, "127.0.0.1:{}".format(port.getHost().port)


@pytest.fixture
def site(tmp_path):
    """
    A root with a file at the top, in alice's home and in the anonymous
    home; a users file and the access file above.
    """
    root = tmp_path / "root"
    for folder in ("", "alice", "pub"):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "file.txt").write_bytes("in {}\n".format(folder or "root").encode())
    (tmp_path / "users.txt").write_text(USERS)
    (tmp_path / "access.txt").write_text(ACCESS)
    local = tmp_path / "local"
    local.mkdir()
    (local / "up.txt").write_bytes(b"uploaded\n")
    args = ("--auth", "file:" + str(tmp_path / "users.txt"), "--access", str(tmp_path / "access.txt"))
    return root, local, args


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


@pytest_twisted.ensureDeferred
async def test_eachPermissionEnforcedForEveryCommand(site):
    """
    r allows exactly the reading commands, w exactly put and partial, d
    exactly delete, none nothing; a refused command changes nothing.
    """
    root, local, args = site
    port, address = await _serve(root, *args)
    try:
        for user, allowed in (("reader", READS), ("writer", WRITES), ("deleter", {"delete"}), ("nobody", set())):
            (root / "victim.txt").write_bytes(b"x")
            if (root / "up.txt").exists():
                os.remove(root / "up.txt")
            client = await connect(reactor, address, credentials=(user, user + "-pw"))
            try:
                for verb, run in _operations(client, local).items():
                    expected = "ok" if verb in allowed else errors.PermissionDenied
                    assert await _outcome(run()) == expected, (user, verb)
            finally:
                await client.quit()
            assert (root / "victim.txt").exists() == ("delete" not in allowed), user
            assert (root / "up.txt").exists() == ("put" in allowed), user
            assert (root / "file.txt").read_bytes() == b"in root\n"
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_loginSuccessAndFailure(site):
    root, local, args = site
    port, address = await _serve(root, *args)
    try:
        client = await connect(reactor, address)
        try:
            assert {"login"} <= set(client.protocol.features)
            assert "login-required" not in client.protocol.features  # anonymous may read
            with pytest.raises(errors.LoginFailed):
                await client.login("alice", "wrong")
            with pytest.raises(errors.LoginFailed):
                await client.login("mallory", "alice-pw")
            assert await client.login("alice", "alice-pw") == "alice"
            assert [e.name for e in await client.list()] == ["file.txt"]
        finally:
            await client.quit()
        with pytest.raises(errors.LoginFailed, match="wrong user name or password"):
            await connect(reactor, address, credentials=("reader", "nope"))
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_everyAuthSourceIsConsulted(site):
    """
    Two --auth options: accounts from either log in (a Portal alone would
    keep only the last checker).
    """
    root, local, args = site
    port, address = await _serve(root, *args[:2], "--auth", "memory:carol:carol-pw")
    try:
        for user in ("reader", "carol"):
            client = await connect(reactor, address, credentials=(user, user + "-pw"))
            await client.quit()
        with pytest.raises(errors.LoginFailed):
            await connect(reactor, address, credentials=("carol", "reader-pw"))
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_homeDirectoryConfinesTheAccount(site):
    """
    alice sees, writes and deletes only under root/alice; names that climb
    out, and links that lead out, are refused. Anonymous reads only pub.
    """
    root, local, args = site
    os.symlink(str(root / "file.txt"), str(root / "alice" / "escape.txt"))
    port, address = await _serve(root, *args)
    try:
        client = await connect(reactor, address, credentials=("alice", "alice-pw"))
        try:
            assert sorted(e.name for e in await client.list()) == ["file.txt"]
            await client.sget("file.txt", str(local / "a.txt"))
            assert (local / "a.txt").read_bytes() == b"in alice\n"
            transfer = await client.put(str(local / "up.txt"), "sub/up.txt")
            assert transfer.checksum == "xxh128"
            assert digestOf(str(root / "alice" / "sub" / "up.txt"), "xxh128") == transfer.digest
            assert not (root / "sub").exists()
            for name in ("../file.txt", "escape.txt", "../pub/file.txt"):
                with pytest.raises((errors.PermissionDenied, errors.NotFound)):
                    await client.hash(name)
            await client.delete("sub/up.txt")
            assert (root / "file.txt").exists() and (root / "pub" / "file.txt").exists()
        finally:
            await client.quit()
        anonymous = await connect(reactor, address)
        try:
            await anonymous.sget("file.txt", str(local / "p.txt"))
            assert (local / "p.txt").read_bytes() == b"in pub\n"
            with pytest.raises(errors.PermissionDenied):
                await anonymous.put(str(local / "up.txt"))
        finally:
            await anonymous.quit()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_anonymousNoneRequiresLoginForEverything(site):
    root, local, args = site
    port, address = await _serve(root, *args, "--anonymous", "none")
    try:
        client = await connect(reactor, address)
        try:
            assert {"login", "login-required"} <= set(client.protocol.features)
            for verb, run in _operations(client, local).items():
                assert await _outcome(run()) == errors.LoginRequired, verb
            assert await _outcome(client.df()) == errors.LoginRequired
            await client.login("reader", "reader-pw")
            assert await client.hash("file.txt") == sha1(str(root / "file.txt"))
        finally:
            await client.quit()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_anonymousReadOnlyAlongsideAccounts(site):
    root, local, args = site
    port, address = await _serve(root, "--auth", "memory:bob:pw", "--anonymous", "read")
    try:
        client = await connect(reactor, address)
        try:
            assert "login-required" not in client.protocol.features
            outcomes = {verb: await _outcome(run()) for verb, run in _operations(client, local).items()}
            assert outcomes == {v: "ok" if v in READS else errors.PermissionDenied for v in outcomes}
            await client.login("bob", "pw")
            await client.put(str(local / "up.txt"))
            assert (root / "up.txt").read_bytes() == b"uploaded\n"
        finally:
            await client.quit()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_withoutAuthEveryoneIsAnonymousAsBefore(site):
    root, local, args = site
    port, address = await _serve(root)
    try:
        client = await connect(reactor, address)
        try:
            assert "login" not in client.protocol.features
            await client.put(str(local / "up.txt"))
            with pytest.raises(errors.BadRequest, match="no accounts"):
                await client.login("bob", "pw")
        finally:
            await client.quit()
        with pytest.raises(errors.LoginFailed, match="no accounts"):
            await connect(reactor, address, credentials=("bob", "pw"))
    finally:
        await port.stopListening()


async def _timedLogin(client, user, password):
    started = time.monotonic()
    outcome = await _outcome(client.login(user, password))
    return outcome, time.monotonic() - started


@pytest_twisted.ensureDeferred
async def test_bruteForceIsSlowedAndCutOff(site):
    """
    Each failure on a connection waits twice as long as the one before;
    the third closes the connection; once the address has 5 failures even
    the right password gets 503 at once.
    """
    root, local, args = site
    limits = ("--login-delay", "0.1", "--max-login-failures", "3", "--max-address-failures", "5")
    port, address = await _serve(root, *args, *limits)
    try:
        client = await connect(reactor, address)
        delays = []
        for attempt in range(3):
            outcome, delay = await _timedLogin(client, "alice", "guess{}".format(attempt))
            assert outcome == errors.LoginFailed
            delays.append(delay)
        assert delays[0] >= 0.1 and delays[1] >= 0.2 and delays[2] >= 0.4, delays
        assert delays[0] < delays[1] < delays[2]
        with pytest.raises(errors.ConnectionLost):
            await client.df()

        client = await connect(reactor, address)
        for attempt in range(2):
            assert (await _timedLogin(client, "alice", "again{}".format(attempt)))[0] == errors.LoginFailed
        outcome, delay = await _timedLogin(client, "alice", "more")
        assert outcome == errors.Unavailable and delay < 0.1
        with pytest.raises(errors.ConnectionLost):
            await client.df()

        with pytest.raises(errors.Unavailable, match="too many failed logins"):
            await connect(reactor, address, credentials=("alice", "alice-pw"))
    finally:
        await port.stopListening()


class _Raw(Protocol):
    def __init__(self):
        self.received = b""
        self.closed = Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(self.received)


@pytest_twisted.ensureDeferred
async def test_pipelinedLoginsCannotExceedTheLimit(site):
    """
    Ten logins sent in one packet get three 430 replies, after the full
    delays, and the connection closes; the rest are never checked.
    """
    root, local, args = site
    port, address = await _serve(root, *args, "--login-delay", "0.05")
    try:
        raw = _Raw()
        started = time.monotonic()
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(Factory.forProtocol(lambda: raw))
        raw.transport.write(b"".join(b"login alice guess%d\r\n" % i for i in range(10)))
        lines = (await raw.closed).split(b"\r\n")
        assert time.monotonic() - started >= 0.05 + 0.1 + 0.2
        assert [line[:3] for line in lines if line] == [b"220", b"430", b"430", b"430"]
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_passwordInTheClearIsLoggedOncePerConnection(site):
    root, local, args = site
    port, address = await _serve(root, *args)
    try:
        with capturedLogs() as events:
            client = await connect(reactor, address)
            await client.login("reader", "reader-pw")
            await client.login("alice", "alice-pw")
            await client.quit()
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn and "without TLS" in e["log_format"]]
        assert len(warnings) == 1
    finally:
        await port.stopListening()


def test_addressThrottleForgetsOldFailures():
    clock = Clock()
    throttle = LoginThrottle(clock, limit=2, window=60.0, maxAddresses=3)
    throttle.failed("10.0.0.1")
    clock.advance(30)
    throttle.failed("10.0.0.1")
    assert throttle.blocked("10.0.0.1") and not throttle.blocked("10.0.0.2")
    clock.advance(31)
    assert not throttle.blocked("10.0.0.1")
    for n in range(10):
        throttle.failed("10.0.1.{}".format(n))
    assert len(throttle._failures) == 3


def test_accessFileFormat():
    rules = AccessRules.parse("alice rw home=a/b  # comment\n* r\n\nanonymous none\n")
    assert rules.forUser("alice").rights == {"r", "w"} and rules.forUser("alice").home == b"a/b"
    assert rules.forUser("zed").rights == {"r"}
    assert rules.anonymous.rights == frozenset()
    for bad in ("alice rwx", "alice", "alice r home=../x", "alice r colour=red", "bob r\nbob w"):
        with pytest.raises(ValueError, match="line"):
            AccessRules.parse(bad)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--anonymous", "none"], "nobody could use"),
        (["--anonymous", "some"], "none, read or full"),
        (["--auth", "anonymous"], "not supported"),
        (["--auth", "memory:a:b", "--login-delay", "soon"], "must be a number"),
        (["--auth", "memory:a:b", "--max-login-failures", "0"], "at least 1"),
    ],
)
def test_badOptionsAreRefusedClearly(tmp_path, arguments, message):
    with pytest.raises(usage.UsageError, match=message):
        Options().parseOptions(["--root", str(tmp_path)] + arguments)


def test_accessFileNamingAccountsNeedsAuth(tmp_path):
    access = tmp_path / "access.txt"
    access.write_text(ACCESS)
    with pytest.raises(usage.UsageError, match="no --auth"):
        Options().parseOptions(["--root", str(tmp_path), "--access", str(access)])
    with pytest.raises(usage.UsageError, match="cannot read --access"):
        Options().parseOptions(["--root", str(tmp_path), "--access", str(tmp_path / "missing")])


def test_publicNamesExported():
    import ftx._io.tls
    import ftx.client.api
    import ftx.server.accounts
    import ftx.server.logins

    for module in (ftx.server.accounts, ftx.server.logins, ftx.client.api, ftx._io.tls):
        assert module.__all__
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
