"""
Log injection (issue 12, item 3): whatever a client sends, the server's
log lines carry no raw control character; client text shows escaped,
repr-style (C{\\x1b}).
"""

import os
import re
import socket
import time

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from ftx.server.logsafe import escapeControls
from ftx.server.tap import Options, makeFactory
from ftx.testing import InlineReactor
from tests.reliability import record
from tests.support import ServerProcess, temporaryFolder

# Controls a terminal or a log reader acts on, and the separators and
# bidirectional marks that make a line read as something else.
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

#: Lines a hostile client sends: control characters raw and
#: percent-encoded, through login, bad and good names, masks and unknown
#: command words.
HOSTILE = [
    b"login al\x1bice\x07 pw",
    b"login %0D%0A2026-01-01T00:00:00+0000%20[-]%20fake%1B[31m pw",
    b"login %00x%1B]0;title%07 pw",
    b"login \xe2\x80\xaeevil pw",
    b"login alice pw",
    b"sget \x1b]0;x\x07%zz",
    b"sget %1B%0D%07evil",
    b"sget ok%C2%9Bname",
    b"hash \x1b[2Jgone",
    b"list \x1b[2J*",
    b"list %1B%07*%0D",
    b"mget %1B[31m*",
    b"delete %0Dx%1B",
    b"put %1Bx%0D 3",
    b"checksum \x1b[2J",
    b"\x1b[2Jfoo bar",
    b"wh\x07at%0D now",
    b"\x7fdel",
]


class EscapeTests(SynchronousTestCase):
    def test_controlsAreEscapedReprStyle(self):
        self.assertEqual(escapeControls("a\x1bb\rc\x07\x00\x7f\x9b"), "a\\x1bb\\x0dc\\x07\\x00\\x7f\\x9b")
        self.assertEqual(escapeControls("r\u00e9sum\u00e9 \\x41 \u202eevil"), "r\u00e9sum\u00e9 \\x41 \\u202eevil")


class LogInjectionTests(SynchronousTestCase):
    def setUp(self):
        root = temporaryFolder(self)
        with open(os.path.join(root, "ok"), "wb") as f:
            f.write(b"ok")
        options = Options()
        options.parseOptions(
            ["--root", root, "--port", "tcp:0", "--auth", "memory:alice:pw", "--anonymous", "none",
             "--max-login-failures", "20", "--login-delay", "0.01"]
        )
        self.reactor = InlineReactor()
        self.factory = makeFactory(options, self.reactor)

    def _serve(self):
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
        protocol.makeConnection(transport)
        return protocol, transport

    def test_noRawControlCharacterReachesTheLog(self):
        with capturedLogs() as events:
            protocol, transport = self._serve()
            for line in HOSTILE:
                protocol.dataReceived(line + b"\r\n")
                # Past any login delay.
                self.reactor.advance(1)
            protocol.dataReceived(b"quit\r\n")
            protocol.connectionLost(None)
        lines = [formatEvent(event) for event in events]
        dirty = [line for line in lines if RAW_CONTROL.search(line)]
        record("log lines checked for control characters", len(lines), len(dirty), "lines", "with raw controls")
        self.assertEqual(dirty, [])
        text = "\n".join(lines)
        # The client's text was logged, escaped: the check above saw it.
        for shown in ("al\\x1bice\\x07", "\\x0d\\x0a2026", "\\u202eevil", "\\x1b]0;x\\x07%zz", "\\x1b\\x0d\\x07evil",
                      "ok\\x9bname", "\\x1b[2jfoo", "wh\\x07at%0d"):
            self.assertIn(shown, text)
        self.assertIn(b"230 ", transport.value())


class TwistdLogTests(SynchronousTestCase):
    def test_twistdLogFileStaysClean(self):
        """
        The same lines over a real socket to C{twistd ftx}: its whole log
        file, Twisted's own lines included, carries no raw control
        character.
        """
        root = temporaryFolder(self)
        with ServerProcess(root, "--auth", "memory:alice:pw", "--login-delay", "0", "--max-login-failures", "20") as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"".join(line + b"\r\n" for line in HOSTILE) + b"quit\r\n")
                received = b""
                while b"221 " not in received:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    received += chunk
            deadline = time.monotonic() + 10
            while "disconnected" not in server.output() and time.monotonic() < deadline:
                time.sleep(0.05)
            lines = server.output().splitlines()
        dirty = [line for line in lines if RAW_CONTROL.search(line)]
        record("log lines checked for control characters", len(lines), len(dirty), "lines", "with raw controls")
        self.assertEqual(dirty, [])
        self.assertTrue(any("al\\x1bice\\x07" in line for line in lines), lines)
