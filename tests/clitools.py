"""
Helpers shared by the command-line tests (no tests here): a ``twistd ftx``
server shared by the tests of one TestCase class, fresh local folders, the
real ``ftx`` executable in a pipe or a pseudo-terminal, and bounded waits.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from tests import support
from tests.support import BIN, ServerProcess, ftxEnvironment, runFtx

FTX = os.path.join(BIN, "ftx")
UDP_LISTENING = re.compile(r"answering df over UDP on .* \(port (\d+)\)")


def temporaryFolder(testCase) -> Path:
    """
    L{tests.support.temporaryFolder} as a C{Path}, which the command-line
    tests build paths with.
    """
    return Path(support.temporaryFolder(testCase, "ftx-cli-"))


def startServer(*extra: str, files: Optional[Dict[str, bytes]] = None) -> ServerProcess:
    """
    A ``twistd ftx`` subprocess on a fresh root (in its own temporary
    folder, so that its log file is its own) holding C{files} (name ->
    bytes). C{server.rootPath} is the root; L{stopServer} stops it and
    removes the folder.
    """
    root = Path(tempfile.mkdtemp(prefix="ftx-server-")) / "root"
    root.mkdir()
    for name, data in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    try:
        server = ServerProcess(str(root), *extra)
    except BaseException:
        shutil.rmtree(str(root.parent), True)
        raise
    server.rootPath = root
    return server


def stopServer(server: ServerProcess) -> None:
    server.stop()
    shutil.rmtree(str(server.rootPath.parent), True)


def serverFor(testCase, *extra: str, files: Optional[Dict[str, bytes]] = None) -> ServerProcess:
    """
    A server of C{testCase}'s own (L{startServer}), stopped after it.
    """
    server = startServer(*extra, files=files)
    testCase.addCleanup(stopServer, server)
    return server


def _testNames(testClass) -> set:
    return {
        (testClass, name) for name in dir(testClass) if name.startswith("test") and callable(getattr(testClass, name))
    }


class SharedServer:
    """
    One ``twistd ftx`` subprocess for all the tests of the TestCase classes
    it L{serves}, as a module-scoped fixture was: trial has no
    C{setUpClass}, so the first test that asks starts it and the last of
    those tests to finish stops it (by its PID, as L{ServerProcess} does).
    When a run selects only some of the tests, it is stopped when the
    interpreter exits.

    Tests that change the server's root undo their changes, so that the
    tests pass in any order (trial runs them by name, pytest as written).
    """

    def __init__(self, *extra: str, files: Optional[Dict[str, bytes]] = None,
                 prepare: Optional[Callable[[ServerProcess], None]] = None) -> None:
        self.extra = extra
        self.files = files
        self.prepare = prepare
        self.server: Optional[ServerProcess] = None
        self._classes: list = []
        self._left: set = set()

    def serves(self, testClass):
        """
        Class decorator: the tests of C{testClass} share this server; it
        stays up until all of them have run.
        """
        self._classes.append(testClass)
        return testClass

    def __call__(self, testCase) -> ServerProcess:
        """
        The running server, started if need be, for C{testCase} to use
        until it ends.
        """
        if type(testCase) not in self._classes:
            raise TypeError("{} does not say it uses this server (decorate it with serves)".format(type(testCase)))
        if self.server is None:
            self._left = set().union(*(_testNames(c) for c in self._classes))
            server = startServer(*self.extra, files=self.files)
            atexit.register(self._stop)
            self.server = server
            if self.prepare is not None:
                self.prepare(server)
        testCase.addCleanup(self._finished, (type(testCase), testCase._testMethodName))
        return self.server

    def _finished(self, test) -> None:
        self._left.discard(test)
        if not self._left:
            self._stop()

    def _stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            atexit.unregister(self._stop)
            stopServer(server)


def ftx(server, *args, cwd=None, env=None, timeout=60):
    """
    Run ``ftx --server ADDRESS ARGS`` in a pipe; never a traceback.
    """
    result = runFtx(["--server", server.address, *args], cwd=str(cwd) if cwd else None, env=env, timeout=timeout)
    result.out = result.stdout.decode("utf-8", "replace")
    result.err = result.stderr.decode("utf-8", "replace")
    if "Traceback" in result.err:
        raise AssertionError("ftx printed a traceback:\n" + result.err)
    return result


def spawn(args, cwd, env=None, timeout=20):
    """
    The real ``ftx`` on a pseudo-terminal (pexpect), 120 columns wide.
    """
    import pexpect

    environment = ftxEnvironment()
    environment.update({"TERM": "xterm", "COLUMNS": "120", "LINES": "30"})
    environment.update(env or {})
    return pexpect.spawn(FTX, list(args), cwd=str(cwd), env=environment, timeout=timeout, dimensions=(30, 120))


def waitFor(predicate, timeout: float = 10.0, interval: float = 0.001) -> bool:
    """
    Whether C{predicate()} came true within C{timeout} seconds, asked every
    C{interval} seconds. The condition is a file or a log a subprocess
    writes, which offers nothing to wait on but itself.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def partialSize(path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def startFtx(server, *args, cwd):
    environment = ftxEnvironment()
    return subprocess.Popen(
        [FTX, "--server", server.address, *args], cwd=str(cwd), env=environment,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def interruptMidway(server, args, cwd, partial, sig=signal.SIGKILL, attempts: int = 3):
    """
    Start ``ftx ARGS`` and send it C{sig} once C{partial} holds some bytes.
    Loopback is fast, so the transfer may finish before we look; then the
    finished files are removed and it is tried again, a bounded number of
    times. Returns the finished process and its stderr.
    """
    for _ in range(attempts):
        process = startFtx(server, *args, cwd=cwd)
        try:
            caught = waitFor(lambda: partialSize(partial) > 0 or process.poll() is not None, timeout=20)
            if caught and process.poll() is None:
                process.send_signal(sig)
        finally:
            _, err = process.communicate(timeout=20)
        if partialSize(partial) > 0:
            return process, err.decode("utf-8", "replace")
        for name in os.listdir(cwd):
            path = os.path.join(cwd, name)
            if os.path.isfile(path):
                os.unlink(path)
    raise AssertionError("the transfer always finished before it could be interrupted")


def udpPort(server, timeout: float = 10.0) -> int:
    match = []

    def logged():
        match[:] = [UDP_LISTENING.search(server.output())]
        return match[0] is not None

    if not waitFor(logged, timeout, 0.05):
        raise AssertionError("the server did not log its UDP port:\n" + server.output())
    return int(match[0].group(1))


_CONNECTED = re.compile(r" connected$", re.MULTILINE)
_DISCONNECTED = re.compile(r" disconnected$", re.MULTILINE)


def connections(server) -> int:
    """
    How many connections the server has logged so far.
    """
    return len(_CONNECTED.findall(server.output()))


def disconnections(server) -> int:
    """
    How many connections the server has logged as closed so far.
    """
    return len(_DISCONNECTED.findall(server.output()))


def connectedTo(pid: int, server) -> bool:
    """
    Whether process C{pid} holds a TCP socket to C{server}'s port; a client
    closes its socket once it has seen the server close the connection.
    """
    import psutil

    return any(c.raddr and c.raddr[1] == server.port for c in psutil.Process(pid).net_connections("tcp"))
