"""
Helpers shared by the command-line tests (no tests here): a server per test
module, running the real ``ftx`` executable in a pipe or a pseudo-terminal,
and bounded waits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from tests.support import BIN, ServerProcess, runFtx

FTX = os.path.join(BIN, "ftx")
UDP_LISTENING = re.compile(r"answering df over UDP on .* \(port (\d+)\)")


def startServer(tmp_path_factory, *extra: str, files=None):
    """
    A ``twistd ftx`` subprocess on a fresh root (its own parent folder, so
    that its log file is its own), with C{files} (name -> bytes) in it.
    """
    root = tmp_path_factory.mktemp("server") / "root"
    root.mkdir()
    for name, data in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return ServerProcess(str(root), *extra), root


def ftx(server, *args, cwd=None, env=None, timeout=60):
    """
    Run ``ftx --server ADDRESS ARGS`` in a pipe; never a traceback.
    """
    result = runFtx(["--server", server.address, *args], cwd=str(cwd) if cwd else None, env=env, timeout=timeout)
    result.out = result.stdout.decode("utf-8", "replace")
    result.err = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in result.err, result.err
    return result


def spawn(args, cwd, env=None, timeout=20):
    """
    The real ``ftx`` on a pseudo-terminal (pexpect), 120 columns wide.
    """
    import pexpect

    environment = dict(os.environ)
    environment.pop("FTX_SERVER", None)
    environment.update({"TERM": "xterm", "COLUMNS": "120", "LINES": "30"})
    environment.update(env or {})
    return pexpect.spawn(FTX, list(args), cwd=str(cwd), env=environment, timeout=timeout, dimensions=(30, 120))


def waitFor(predicate, timeout: float = 10.0, interval: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def partialSize(path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def startFtx(server, *args, cwd):
    environment = dict(os.environ)
    environment.pop("FTX_SERVER", None)
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
    found = []

    def logged():
        match = UDP_LISTENING.search(server.output())
        if match:
            found.append(int(match.group(1)))
        return bool(found)

    assert waitFor(logged, timeout, 0.05), server.output()
    return found[0]


_CONNECTED = re.compile(r" connected$", re.MULTILINE)


def connections(server) -> int:
    """
    How many connections the server has logged so far.
    """
    return len(_CONNECTED.findall(server.output()))
