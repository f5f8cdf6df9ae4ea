"""
A stalled upload's name taken over by a new connection of the same user
(issue 12, item 9): a client that vanished mid-upload no longer keeps its
name locked until the idle timeout. Time is a Clock.
"""

import hashlib

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from ftx.server import tap
from ftx.server.accounts import AccessRules, AccessControl, FtxRealm, Permissions
from ftx.server.protocol import FtxServerFactory, ServerPolicy
from ftx.testing import MemoryStorage
from tests.support import InlineReactor

BODY = bytes(range(256)) * 4


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


class TakeoverTests(SynchronousTestCase):
    def setUp(self):
        self.clock = InlineReactor()
        self.storage = MemoryStorage()
        self.factory = FtxServerFactory(self.storage, self.clock, ServerPolicy(idleTimeout=300))

    def connect(self):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        proto.makeConnection(transport)
        transport.clear()
        return proto, transport

    def send(self, connection, data: bytes) -> bytes:
        proto, transport = connection
        transport.clear()
        proto.dataReceived(data)
        return transport.value()

    def stall(self):
        """
        A connection that sent 100 bytes of its upload and went silent.
        """
        old = self.connect()
        self.assertEqual(self.send(old, b"put f.bin 1024\r\n"), b"350 0\r\n")
        self.send(old, BODY[:100])
        return old

    def test_staleUploadIsTakenOver(self):
        old = self.stall()
        self.clock.advance(5)
        new = self.connect()
        # Not stalled long enough yet: the name is still taken.
        self.assertEqual(self.send(new, b"put f.bin 1024\r\n"), b"409 conflict an upload to f.bin is already in progress\r\n")
        self.clock.advance(5)
        with capturedLogs() as events:
            self.assertEqual(self.send(new, b"partial f.bin\r\n"), b"214 100 " + _sha1(BODY[:100]) + b"\r\n")
            reply = self.send(new, b"put f.bin 1024 100 " + _sha1(BODY[:100]) + b"\r\n")
            # The old connection is cut; once it has let go of the name, the
            # new one resumes from what it left.
            self.assertTrue(old[1].disconnecting)
            self.assertEqual(reply, b"")
            old[0].connectionLost(None)
        self.assertEqual(new[1].value(), b"350 100\r\n")
        self.assertTrue(any("taken over" in str(e.get("log_format")) for e in events))
        reply = self.send(new, BODY[100:] + b"sha1 " + _sha1(BODY) + b"\r\n")
        self.assertEqual(reply, b"226 f.bin 1024 " + _sha1(BODY) + b"\r\n")
        self.assertEqual(self.storage.getContent(b"f.bin"), BODY)

    def test_freshStartTakesOverToo(self):
        old = self.stall()
        self.clock.advance(11)
        new = self.connect()
        self.assertEqual(self.send(new, b"put f.bin 5\r\n"), b"")
        old[0].connectionLost(None)
        self.assertEqual(new[1].value(), b"350 0\r\n")
        self.assertEqual(self.send(new, b"hello" + b"sha1 " + _sha1(b"hello") + b"\r\n")[:4], b"226 ")

    def test_movingUploadIsNotTakenOver(self):
        old = self.stall()
        for i in range(4):
            self.clock.advance(5)
            self.send(old, BODY[100 + i : 101 + i])
        new = self.connect()
        self.assertTrue(self.send(new, b"put f.bin 1024\r\n").startswith(b"409 "))
        self.assertFalse(old[1].disconnecting)

    def test_otherUsersCannotTakeOver(self):
        rules = AccessRules()
        realm = FtxRealm(rules, self.storage)
        self.factory.access = AccessControl(reactor=self.clock)
        old = self.stall()
        old[0].account = realm.account("alice", Permissions("rw"))
        self.clock.advance(60)
        new = self.connect()
        new[0].account = realm.account("bob", Permissions("rw"))
        self.assertTrue(self.send(new, b"put f.bin 1024\r\n").startswith(b"409 "))
        self.assertFalse(old[1].disconnecting)

    def test_takeoverCanBeTurnedOff(self):
        self.factory.policy.uploadTakeover = None
        old = self.stall()
        self.clock.advance(200)
        self.assertTrue(self.send(self.connect(), b"put f.bin 1024\r\n").startswith(b"409 "))
        self.assertFalse(old[1].disconnecting)

    def test_option(self):
        options = tap.Options()
        options.parseOptions(["--root", ".", "--upload-takeover", "30s"])
        self.assertEqual(tap.makeFactory(options, self.clock).policy.uploadTakeover, 30)
        options = tap.Options()
        options.parseOptions(["--root", ".", "--upload-takeover", "0"])
        self.assertIsNone(tap.makeFactory(options, self.clock).policy.uploadTakeover)
        options = tap.Options()
        options.parseOptions(["--root", "."])
        self.assertEqual(tap.makeFactory(options, self.clock).policy.uploadTakeover, 10)
