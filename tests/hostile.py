"""
A fake malicious ftx server for the client's tests (no tests here).

It speaks just enough of ``docs/protocol.rst`` for ``list``, ``sget``,
``cget``, ``mget``, ``hash`` and ``quit``, and answers with whatever names
and text a test gives it: names that climb out of the folder, absolute
names, names that do not match the mask, names holding terminal escapes,
error messages that rewrite the screen. Everything else gets an error
whose message carries ESC, BEL and CR. It listens on 127.0.0.1, port 0,
in the test's own reactor, so the real ``ftx`` must run beside it as a
child process of that reactor (L{runCli}), not through a blocking
C{subprocess.run}.
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Optional, Sequence, Tuple

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver

from ftx.protocol.wire import decodeName, encodeName
from tests.support import BIN

#: Text that would act on a terminal printed raw: set the window title
#: (OSC ... BEL), clear the screen (CSI), return to the line start (CR),
#: a C1 CSI, and a right-to-left override.
EVIL_TEXT = "\x1b]0;pwned\x07\x1b[2J\rgone\x9b31m\u202egpj.exe"
#: What must never reach stdout or stderr raw.
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")

File = Tuple[bytes, bytes]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class HostileProtocol(LineReceiver):
    delimiter = b"\r\n"

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self._send("220 {} list,sget,mget,hash,cget,put,resume,delete,df,quit".format(self.factory.version))

    def connectionLost(self, reason=None) -> None:
        if self in self.factory.connections:
            self.factory.connections.remove(self)

    def _send(self, line: str) -> None:
        # Raw: a hostile server is under no obligation to escape anything.
        self.transport.write(line.encode("utf-8", "surrogateescape") + b"\r\n")

    def lineReceived(self, line: bytes) -> None:
        verb, *fields = line.decode("utf-8").split(" ")
        self.factory.commands.append(line)
        handler = getattr(self, "do_" + verb.lower(), None)
        if verb in self.factory.raw:
            for reply in self.factory.raw[verb]:
                self._send(reply)
        elif handler is None:
            self._send("403 permission-denied {}".format(EVIL_TEXT))
        else:
            handler(fields)

    def do_list(self, fields: List[str]) -> None:
        for name, data in self.factory.listed:
            self._send("210 {} {} 0".format(encodeName(name), len(data)))
        self._send("211 {}".format(len(self.factory.listed)))

    def _body(self, name: bytes, data: bytes, offset: int = 0) -> None:
        if self.factory.offset is not None:
            offset = self.factory.offset
        self._send("150 {} {} {}".format(encodeName(name), len(data), offset))
        self.transport.write(data[offset:])
        self._send("250 {}".format(sha1(data)))

    def do_mget(self, fields: List[str]) -> None:
        for name, data in self.factory.sent:
            self._body(name, data)
        self._send("226 {} {}".format(len(self.factory.sent), sum(len(d) for _, d in self.factory.sent)))

    def _answer(self, fields: List[str]) -> Optional[File]:
        asked = decodeName(fields[0])
        if asked in self.factory.answers:
            return self.factory.answers[asked]
        for name, data in self.factory.sent + self.factory.listed:
            if name == asked:
                return name, data
        self._send("404 not-found {}".format(EVIL_TEXT))
        return None

    def do_sget(self, fields: List[str]) -> None:
        answer = self._answer(fields)
        if answer is not None:
            self._body(*answer)

    def do_cget(self, fields: List[str]) -> None:
        answer = self._answer(fields)
        if answer is not None:
            # Whatever prefix the client holds "matches": a hostile server
            # says what makes the client write.
            self._body(answer[0], answer[1], min(int(fields[1]), len(answer[1])))

    def do_hash(self, fields: List[str]) -> None:
        self._send("213 {} 0".format(EVIL_TEXT.replace(" ", "")))

    def do_quit(self, fields: List[str]) -> None:
        self._send("221 bye")
        self.transport.loseConnection()


class HostileFactory(protocol.ServerFactory):
    """
    C{listed}: what C{list} answers; C{sent}: the files C{mget} sends (and
    C{sget} of one of their names); C{answers}: for C{sget}/C{cget} of a
    name, the name and content sent back instead; C{offset}: where every
    body claims to start, whatever was asked; C{raw}: for a command, the
    reply lines sent instead of an answer.
    """

    protocol = HostileProtocol

    def __init__(
        self,
        listed: Sequence[File] = (),
        sent: Optional[Sequence[File]] = None,
        answers: Optional[Dict[bytes, File]] = None,
        version: str = "ftx/1",
        offset: Optional[int] = None,
        raw: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        self.offset = offset
        self.raw = dict(raw or {})
        self.listed = list(listed)
        self.sent = list(listed if sent is None else sent)
        self.answers = dict(answers or {})
        self.version = version
        self.commands: List[bytes] = []
        self.connections: List[HostileProtocol] = []


def listenHostile(testCase, reactor, factory: HostileFactory) -> str:
    """
    Listen on a fresh loopback port, closed (with every connection) after
    the test; returns the address for C{ftx --server}.
    """
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")

    def close():
        for connection in list(factory.connections):
            connection.transport.abortConnection()
        return port.stopListening()

    testCase.addCleanup(close)
    return "127.0.0.1:{}".format(port.getHost().port)


class _Collect(protocol.ProcessProtocol):
    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.out: List[bytes] = []
        self.err: List[bytes] = []
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason) -> None:
        self.done.callback((b"".join(self.out), b"".join(self.err), reason.value.exitCode))


class CliResult:
    def __init__(self, out: bytes, err: bytes, code: int) -> None:
        self.stdout, self.stderr, self.code = out, err, code
        self.out = out.decode("utf-8", "surrogateescape")
        self.err = err.decode("utf-8", "surrogateescape")


async def runCli(testCase, reactor, address: str, *args: str, cwd: str, stdin: bytes = b"", timeout: float = 60):
    """
    Run the real ``ftx --server ADDRESS ARGS`` as a child of C{reactor},
    so the hostile server in the same reactor can answer it. Killed (by its
    PID) if it runs past C{timeout}. Never a traceback.
    """
    environment = dict(os.environ)
    environment.pop("FTX_SERVER", None)
    collect = _Collect(stdin)
    ftx = os.path.join(BIN, "ftx")
    process = reactor.spawnProcess(collect, ftx, [ftx, "--server", address, *args], env=environment, path=cwd)
    timer = reactor.callLater(timeout, process.signalProcess, "KILL")
    try:
        out, err, code = await collect.done
    finally:
        if timer.active():
            timer.cancel()
    result = CliResult(out, err, code)
    if "Traceback" in result.err:
        raise AssertionError("ftx printed a traceback:\n" + result.err)
    return result
