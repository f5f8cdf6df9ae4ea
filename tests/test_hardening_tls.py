"""
TLS hardening (issue 12, items 14 and 15, and the TLS quit bug): a
C{quit} over TLS closes both ends at once; every TLS failure of the
C{ftx} command exits 3, as README and C{--help} promise; a plain client
that reaches a TLS port gives up within about a second with a hint.
"""

import datetime
import os
import time

import trustme
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx import errors
from ftx.cli.status import EXIT_CONNECT
from ftx.client.api import ClientTLS, _greeted, connect
from ftx.client.protocol import FtxClientProtocol
from tests.connections import Connections
from tests.support import ServerProcess, runFtx, waitUntil
from tests.test_tls import refused, workspace


class QuitOverTLSTests(TestCase):
    def setUp(self) -> None:
        self.base, self.pki, self.root = workspace(self)
        self.connections = Connections(self, reactor)

    async def test_quitClosesBothEnds(self):
        """
        The server's write-backpressure producer is detached before it
        closes, so TLS sends its close alert and both ends see the
        connection end promptly, long before any abort timer.
        """
        factory = self.connections.factory(self.root)
        servers = []
        build = factory.buildProtocol

        def buildProtocol(addr):
            protocol = build(addr)
            servers.append(protocol)
            return protocol

        factory.buildProtocol = buildProtocol
        port, number = await self.connections.listenTLS(self.root, self.pki.server, factory=factory)
        client = await connect(reactor, "127.0.0.1:{}".format(number), tls=ClientTLS(cafile=self.pki.serverCA))
        self.assertEqual([e.name for e in await client.list()], ["hello.txt"])
        started = time.monotonic()
        await client.quit()
        closed = await waitUntil(
            reactor, lambda: client.protocol._lost and all(s.disconnected for s in servers), timeout=3.0, interval=0.01
        )
        self.assertTrue(closed, "a quit over TLS left the connection open")
        self.assertLess(time.monotonic() - started, 3.0)


def _certificates(base: str):
    """
    A CA, a certificate for 127.0.0.1 that expired yesterday, and one
    valid for it.
    """
    ca = trustme.CA()
    caPath = os.path.join(base, "expiring-ca.pem")
    ca.cert_pem.write_to_path(caPath)
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = ca.issue_cert(
        "127.0.0.1", "localhost", not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1)
    )
    expiredPath = os.path.join(base, "expired.pem")
    expired.private_key_and_cert_chain_pem.write_to_path(expiredPath)
    return caPath, expiredPath


class CommandLineTLSFailureTests(TestCase):
    """
    The real C{ftx} command against servers in this process: each way TLS
    can fail is one line and exit status 3.
    """

    def setUp(self) -> None:
        self.base, self.pki, self.root = workspace(self)
        self.connections = Connections(self, reactor)

    async def _ftx(self, number, *args):
        address = "127.0.0.1:{}".format(number)
        # In a thread, so that this reactor serves the command meanwhile.
        result = await deferToThread(runFtx, ["--server", address, *args, "--quiet", "list"], None, 60)
        stderr = result.stderr.decode("utf-8", "replace")
        self.assertNotIn("Traceback", stderr)
        return result.returncode, stderr

    async def test_everyTLSFailureExits3(self):
        pki, listen = self.pki, self.connections.listenTLS
        caPath, expiredPath = _certificates(self.base)
        runs = {}
        _, number = await listen(self.root, pki.otherName)
        runs["wrong host"] = Deferred.fromCoroutine(self._ftx(number, "--tls", "--cafile", pki.serverCA))
        _, number = await listen(self.root, expiredPath)
        runs["expired"] = Deferred.fromCoroutine(self._ftx(number, "--tls", "--cafile", caPath))
        _, number = await listen(self.root, pki.server, clientCA=pki.clientCA)
        runs["unknown CA"] = Deferred.fromCoroutine(self._ftx(number, "--tls", "--cafile", pki.strangerCA))
        runs["no client certificate"] = Deferred.fromCoroutine(self._ftx(number, "--tls", "--cafile", pki.serverCA))
        plain = await self.connections.listen(self.root)
        runs["TLS to a plain port"] = Deferred.fromCoroutine(self._ftx(plain.getHost().port, "--tls", "--cafile", pki.serverCA))
        # The commands run side by side: each is mostly Python starting up.
        seen = {case: await run for case, run in runs.items()}
        for case, (status, stderr) in seen.items():
            self.assertEqual(status, EXIT_CONNECT, "{}: {}".format(case, stderr))
            self.assertEqual(len(stderr.strip().splitlines()), 1, "{}: {}".format(case, stderr))
        self.assertIn("not valid for the host name", seen["wrong host"][1])
        self.assertIn("could not be verified", seen["expired"][1])
        self.assertIn("could not be verified", seen["unknown CA"][1])
        self.assertIn("client certificate", seen["no client certificate"][1])
        self.assertIn("did not answer in TLS", seen["TLS to a plain port"][1])


class PlainClientAgainstTLSTests(TestCase):
    def setUp(self) -> None:
        self.base, self.pki, self.root = workspace(self)
        self.connections = Connections(self, reactor)

    async def test_plainClientGivesUpQuicklyWithAHint(self):
        """
        With the usual greeting timeout (15 s), a plain client against a
        TLS port still fails within two seconds, saying to use --tls.
        """
        port, number = await self.connections.listenTLS(self.root, self.pki.server)
        started = time.monotonic()
        error = await refused("127.0.0.1:{}".format(number))
        elapsed = time.monotonic() - started
        self.assertIsInstance(error, errors.TLSError)
        self.assertIn("--tls", str(error))
        self.assertLess(elapsed, 2.0)

    def test_commandLineAgainstTLSPort(self):
        with ServerProcess(self.root, port="ssl:0:interface=127.0.0.1:privateKey=" + self.pki.server) as server:
            started = time.monotonic()
            result = runFtx(["--server", server.address, "--quiet", "list"], timeout=60)
            elapsed = time.monotonic() - started
        stderr = result.stderr.decode("utf-8", "replace")
        self.assertEqual(result.returncode, EXIT_CONNECT, stderr)
        self.assertIn("--tls", stderr)
        self.assertLess(elapsed, 5.0)


class ProbeTests(SynchronousTestCase):
    """
    The probe on a Clock: a plain ftx server that is only slow to greet
    keeps working, its answer to the probe dropped.
    """

    def setUp(self):
        self.clock = Clock()
        self.protocol = FtxClientProtocol(self.clock)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.connected = _greeted(self.protocol, self.clock, 15.0, secure=False)

    def test_slowPlainServerStillServes(self):
        self.clock.advance(0.9)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        self.assertEqual(self.transport.value(), b"noop\r\n")
        self.protocol.dataReceived(b"220 ftx/1 list,quit\r\n401 login-required log in first\r\n")
        client = self.successResultOf(self.connected)
        listed = client.list()
        self.protocol.dataReceived(b"210 a.txt 5 1700000000\r\n211 1\r\n")
        self.assertEqual([entry.name for entry in self.successResultOf(listed)], ["a.txt"])
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tlsAlertFailsAtOnce(self):
        self.clock.advance(1.0)
        self.protocol.dataReceived(b"\x15\x03\x01\x00\x02\x02\x46")
        error = self.failureResultOf(self.connected, errors.TLSError).value
        self.assertIn("--tls", str(error))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_greetingInTimeSendsNoProbe(self):
        self.protocol.dataReceived(b"220 ftx/1 list,quit\r\n")
        self.successResultOf(self.connected)
        self.clock.advance(20)
        self.assertEqual(self.transport.value(), b"")
