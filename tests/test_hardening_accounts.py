"""
Accounts and passwords (issue 12, item 16): the C{ftx} command warns
before it sends a password in the clear, and a server with C{--auth}
lets anonymous clients read, not write, unless told otherwise.
"""

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.server.tap import Options, makeFactory
from ftx.testing import InlineReactor
from tests.support import closeSocketsAfter, runFtx, temporaryFolder

WARNING = "password is sent unencrypted"


def _options(root, *arguments) -> Options:
    options = Options()
    options.parseOptions(["--root", root, "--port", "tcp:0:interface=127.0.0.1", "--auth", "memory:alice:pw", *arguments])
    return options


class AnonymousDefaultTests(SynchronousTestCase):
    def serve(self, *arguments):
        root = temporaryFolder(self)
        with open(root + "/a.txt", "wb") as f:
            f.write(b"hello")
        factory = makeFactory(_options(root, *arguments), InlineReactor())
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
        protocol.makeConnection(transport)
        return protocol, transport

    def test_withAuthAnonymousMayReadOnly(self):
        protocol, transport = self.serve()
        greeting = transport.value().split(b"\r\n")[0]
        self.assertNotIn(b"login-required", greeting)
        for line in (b"list", b"put b.txt 1", b"delete a.txt"):
            protocol.dataReceived(line + b"\r\n")
        replies = transport.value().split(b"\r\n")
        self.assertTrue(any(r.startswith(b"210 a.txt 5 ") for r in replies), replies)
        self.assertEqual(sum(r.startswith(b"403 ") for r in replies), 2, replies)

    def test_noneStillAvailable(self):
        protocol, transport = self.serve("--anonymous", "none")
        self.assertIn(b"login-required", transport.value().split(b"\r\n")[0])
        protocol.dataReceived(b"list\r\n")
        self.assertIn(b"401 ", transport.value())


class PasswordWarningTests(TestCase):
    async def test_warnsOnlyWithoutTLS(self):
        closeSocketsAfter(self, reactor)
        root = temporaryFolder(self)
        options = _options(root, "--anonymous", "none")
        port = await serverFromString(reactor, options["port"]).listen(makeFactory(options, reactor))
        self.addCleanup(port.stopListening)
        address = "127.0.0.1:{}".format(port.getHost().port)
        result = await deferToThread(
            runFtx, ["--server", address, "--user", "alice", "--quiet", "list"], None, 60, {"FTX_PASSWORD": "pw"}
        )
        stderr = result.stderr.decode("utf-8", "replace")
        self.assertEqual(result.returncode, 0, stderr)
        self.assertIn(WARNING, stderr)
        self.assertIn("--tls", stderr)
        self.assertEqual(len(stderr.strip().splitlines()), 1, stderr)
