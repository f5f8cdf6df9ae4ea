"""
Helpers for the reliability suites (confinement, malformed input, faults,
limits, load, shutdown): the figures they report, a sentinel directory
whose every byte and timestamp is checked, and an in-memory connection
that can be cut at any byte.
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Optional, Tuple

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure
from twisted.test import iosim

from ftx.client.api import FtxClient, FtxClientProtocol

#: What the suites tried and what went wrong, printed at the end of a
#: pytest run by tests/conftest.py: name -> [tried, bad, unit, bad-unit].
FIGURES: Dict[str, list] = {}
#: Free-form measurements (server peak memory, ...): name -> text.
MEASURES: Dict[str, str] = {}


def record(name: str, tried: int, bad: int, unit: str = "tried", badUnit: str = "failures") -> None:
    entry = FIGURES.setdefault(name, [0, 0, unit, badUnit])
    entry[0] += tried
    entry[1] += bad


def measure(name: str, text: str) -> None:
    MEASURES[name] = text


def figureLines() -> List[str]:
    lines = []
    for name, (tried, bad, unit, badUnit) in sorted(FIGURES.items()):
        lines.append("{}: {} {} / {} {}".format(name, tried, unit, bad, badUnit))
    for name, text in sorted(MEASURES.items()):
        lines.append("{}: {}".format(name, text))
    return lines


def snapshot(top: str, skip: Optional[str] = None) -> Dict[str, Tuple]:
    """
    Every entry under C{top} (not following links) with its type, size,
    modification time and content digest: what must not change.
    """
    result = {}
    for directory, dirnames, filenames in os.walk(top, followlinks=False):
        if skip is not None and os.path.abspath(directory).startswith(os.path.abspath(skip)):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            if skip is not None and os.path.abspath(path) == os.path.abspath(skip):
                continue
            st = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha1(f.read()).hexdigest()
            elif os.path.islink(path):
                digest = os.readlink(path)
            result[os.path.relpath(path, top)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return result


def leftovers(top: str) -> List[str]:
    """
    Temporary files (partial uploads and downloads) anywhere under C{top}.
    """
    found = []
    for directory, _, filenames in os.walk(top):
        found.extend(os.path.join(directory, n) for n in filenames if n.endswith(".ftx-partial"))
    return found


class CutLink:
    """
    A client and a server protocol joined in memory, like iosim, except
    that the connection can be cut after exactly C{cutAfter} bytes have
    crossed it (either way), by either side.
    """

    def __init__(self, factory, reactor, cutAfter: Optional[int] = None, cutBy: str = "client") -> None:
        self.server = factory.buildProtocol(None)
        self.clientProtocol = FtxClientProtocol()
        self.sio = iosim.FakeTransport(self.server, isServer=True)
        self.cio = iosim.FakeTransport(self.clientProtocol, isServer=False)
        self.server.makeConnection(self.sio)
        self.clientProtocol.makeConnection(self.cio)
        self.client = FtxClient(self.clientProtocol, reactor)
        self.cutAfter = cutAfter
        self.cutBy = cutBy
        self.moved = 0
        self.cut = False
        self.closed = False

    def _deliver(self, transport, data: bytes) -> bool:
        if self.cutAfter is not None and self.moved + len(data) >= self.cutAfter:
            part = data[: self.cutAfter - self.moved]
            self.moved += len(part)
            if part:
                transport.bufferReceived(part)
            self.doCut()
            return False
        self.moved += len(data)
        transport.bufferReceived(data)
        return True

    def doCut(self) -> None:
        """
        Drop the connection now; what is still in flight is lost.
        """
        if self.closed:
            return
        self.cut = self.closed = True
        first, second = (self.cio, self.sio) if self.cutBy == "client" else (self.sio, self.cio)
        for t in (first, second):
            t.disconnecting = t.disconnected = True
            t.stream = []
        first.protocol.connectionLost(Failure(ConnectionLost("cut")))
        second.protocol.connectionLost(Failure(ConnectionLost("cut")))

    def pump(self) -> bool:
        """
        Move what is waiting; False once nothing moves (or after a cut).
        """
        if self.closed:
            return False
        self.cio._checkProducer()
        self.sio._checkProducer()
        toServer = self.cio.getOutBuffer()
        toClient = self.sio.getOutBuffer()
        if toServer and not self._deliver(self.sio, toServer):
            return False
        if toClient and not self._deliver(self.cio, toClient):
            return False
        if toServer or toClient:
            return True
        for a, b in ((self.sio, self.cio), (self.cio, self.sio)):
            if a.disconnecting and not self.closed:
                self.closed = True
                a.disconnected = b.disconnected = b.disconnecting = True
                a.protocol.connectionLost(Failure(ConnectionDone()))
                b.protocol.connectionLost(Failure(ConnectionDone()))
                return True
        return False

    def run(self, deferred, limit: int = 100000):
        """
        Pump until C{deferred} fires or nothing moves (bounded); returns
        C{deferred}.
        """
        fired = []
        deferred.addBoth(lambda r: fired.append(True) or r)
        for _ in range(limit):
            if fired or not self.pump():
                break
        return deferred

    def close(self) -> None:
        if not self.closed:
            self.cutAfter = 0
            self.doCut()


class TempDirs:
    """
    Mixed into SynchronousTestCases: C{mktemp} under a private temporary
    directory removed after the test, so that runs under pytest (where
    trial's C{mktemp} is relative to the current directory) leave nothing
    in the work tree.
    """

    def mktemp(self):
        import shutil
        import tempfile

        base = tempfile.mkdtemp(prefix="ftx-test-")
        self.addCleanup(shutil.rmtree, base, True)
        return os.path.join(base, "temp")
