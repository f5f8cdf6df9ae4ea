"""
Shared helpers for the tests: real servers on loopback, in this process or
as a ``twistd`` subprocess, and small file utilities.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

import xxhash
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater

from ftx.protocol import checksums
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from ftx.testing import InlineReactor  # noqa: F401 (tests import it from here)

BIN = os.path.dirname(sys.executable)
LISTENING = re.compile(r"ftx listening on .* \(port (\d+)\)")


def sha1(path: str) -> str:
    return digestOf(path, checksums.SHA1)


def digestOf(path: str, checksum: str) -> str:
    """
    The digest of a file by C{checksum} (C{"sha1"} or C{"xxh128"}),
    computed here, independently of the code under test.
    """
    h = hashlib.sha1() if checksum == checksums.SHA1 else xxhash.xxh3_128()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def writeRandom(path: str, size: int, seed: int = 0) -> str:
    """
    Write C{size} pseudo-random bytes (fast, reproducible) and return their
    SHA-1.
    """
    import random

    rng = random.Random(seed)
    h = hashlib.sha1()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            block = rng.randbytes(n)
            f.write(block)
            h.update(block)
            left -= n
    return h.hexdigest()


def listenInProcess(reactor, root: str, policy: Optional[ServerPolicy] = None, factory=None):
    """
    Start a server in this process on an ephemeral loopback port. Fires
    with the listening port; C{port.factory} is the server factory.
    """
    if factory is None:
        factory = FtxServerFactory(FilesystemStorage(root), reactor, policy)

    def listened(port):
        port.factory = factory
        return port

    return serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory).addCallback(listened)


class ServerProcess:
    """
    ``twistd -n ftx`` as a subprocess on an ephemeral port, as a user would
    run it. Stopped with SIGTERM by its own PID.
    """

    def __init__(self, root: str, *extra: str, port: str = "tcp:0:interface=127.0.0.1", timeout: float = 20.0):
        self.root = root
        logPath = os.path.join(os.path.dirname(os.path.abspath(root)), "twistd-{}.log".format(os.getpid()))
        self.logPath = logPath
        self.log = open(logPath, "wb")
        args = [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "ftx", "--port", port, "--root", root, *extra]
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.port = self._waitForPort(timeout)
        self.address = "127.0.0.1:{}".format(self.port)

    def _waitForPort(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.logPath, "rb") as f:
                match = LISTENING.search(f.read().decode("utf-8", "replace"))
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("ftx server did not start:\n" + self.output())

    def output(self) -> str:
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_NEUTRAL_HOME = tempfile.mkdtemp(prefix="ftx-test-home-")
atexit.register(shutil.rmtree, _NEUTRAL_HOME, True)


def ftxEnvironment() -> dict:
    """
    This process's environment without what would make the C{ftx} command
    behave differently on a developer's machine: the C{FTX_*} settings, the
    user's config file and C{~/.netrc} (an empty config folder and a netrc
    path that does not exist stand in for them).
    """
    environment = dict(os.environ)
    for key in ("FTX_SERVER", "FTX_USER", "FTX_PASSWORD"):
        environment.pop(key, None)
    environment["XDG_CONFIG_HOME"] = _NEUTRAL_HOME
    environment["NETRC"] = os.path.join(_NEUTRAL_HOME, "no-netrc")
    environment["XDG_CACHE_HOME"] = os.path.join(_NEUTRAL_HOME, "cache")
    return environment


def runFtx(args: List[str], cwd: Optional[str] = None, timeout: float = 120, env=None, input=None):
    """
    Run the installed ``ftx`` command; returns the CompletedProcess.
    """
    environment = ftxEnvironment()
    if env:
        environment.update(env)
    return subprocess.run(
        [os.path.join(BIN, "ftx"), *args],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        env=environment,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def temporaryFolder(case, prefix: str = "ftx-test-") -> str:
    """
    A new empty folder for C{case}, removed after it. (Trial's C{mktemp}
    names a folder under the current directory, which under pytest is the
    checkout.)
    """
    path = tempfile.mkdtemp(prefix=prefix)
    case.addCleanup(shutil.rmtree, path, True)
    return path


async def waitUntil(reactor, condition, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """
    Poll C{condition} on the running C{reactor} until it is true or
    C{timeout} seconds have passed; returns its last value. For what only
    real time can show: a real socket, a thread or another process.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return bool(condition())
        await deferLater(reactor, interval, lambda: None)
    return True


def _sockets(reactor) -> set:
    # Connections and listening ports; not the reactor's own wakers, which
    # come and go as trial starts and stops it.
    return {s for s in set(reactor.getReaders()) | set(reactor.getWriters()) if hasattr(s, "getHost")}


def closeSocketsAfter(case, reactor, timeout: float = 10.0) -> None:
    """
    Register, first, a cleanup that runs after all the others: it waits
    (bounded) until every socket opened during C{case} has closed and no
    timer set during it is due within a second, so that trial finds a
    clean reactor. A connection closed on one end goes away on the other
    only after a few turns of the reactor, and some timers (the body
    reader's stall check) end on their own shortly after a connection.
    """
    sockets = _sockets(reactor)
    timers = set(reactor.getDelayedCalls())

    def quiet() -> bool:
        soon = reactor.seconds() + 1.0
        late = [call for call in reactor.getDelayedCalls() if call not in timers and call.getTime() <= soon]
        return _sockets(reactor) <= sockets and not late

    def settle():
        return Deferred.fromCoroutine(waitUntil(reactor, quiet, timeout))

    case.addCleanup(settle)
