"""
End-to-end encryption through the embedded API on a real server in this
process: C{client.put(..., encryptTo=...)} stores only ciphertext,
C{client.sget(..., identities=...)} brings the plaintext back, and both
resume: a download continues on the ciphertext, an upload continues from
what the server holds because the saved plan makes the same ciphertext.
"""

from __future__ import annotations

import os
import stat

from twisted.internet import reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from ftx.client.api import connect
from ftx.client.e2e import NoIdentity, NotDecryptable, decryptFile, encryptFile, generateIdentity, newPlan
from ftx.client.e2e.stream import CHUNK
from ftx.client.e2e.transfers import ciphertextPath
from ftx.client.e2e.uploads import UploadState, stateFolder
from ftx.client.localfiles import partialPath
from ftx.errors import ConnectionLost
from tests.connections import Connections
from tests.support import temporaryFolder, waitUntil


class EncryptedTransferTests(TestCase):
    async def connected(self):
        self.top = temporaryFolder(self, "ftx-e2e-api-")
        self.root = os.path.join(self.top, "root")
        self.here = os.path.join(self.top, "here")
        os.mkdir(self.root)
        os.mkdir(self.here)
        previous = os.environ.get("XDG_STATE_HOME")
        os.environ["XDG_STATE_HOME"] = os.path.join(self.top, "state")
        self.addCleanup(self._restore, previous)
        connections = Connections(self, reactor)
        port = await connections.listen(self.root)
        self.address = "127.0.0.1:{}".format(port.getHost().port)
        self.client = await connect(reactor, self.address)
        self.identity = generateIdentity()
        self.data = os.urandom(5 * CHUNK + 123)
        self.source = os.path.join(self.here, "plain.bin")
        with open(self.source, "wb") as f:
            f.write(self.data)

    def _restore(self, previous) -> None:
        if previous is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = previous

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    async def test_roundTrip(self) -> None:
        """
        The server holds ciphertext that opens with the identity; the
        download writes the plaintext and leaves nothing else behind.
        """
        await self.connected()
        sent = await self.client.put(self.source, "p.age", encryptTo=[str(self.identity.recipient())])
        stored = os.path.join(self.root, "p.age")
        self.assertEqual(sent.size, os.path.getsize(stored))
        self.assertEqual(sent.path, self.source)
        self.assertNotIn(self.data[:64], self.read(stored))
        target = os.path.join(self.here, "back.bin")
        got = await self.client.sget("p.age", target, identities=[str(self.identity)])
        self.assertEqual(got.path, target)
        self.assertEqual(self.read(target), self.data)
        self.assertEqual(sorted(os.listdir(self.here)), ["back.bin", "plain.bin"])
        self.assertEqual(os.listdir(stateFolder()), [])

    async def test_wrongIdentityWritesNothing(self) -> None:
        await self.connected()
        await self.client.put(self.source, "p.age", encryptTo=[self.identity.recipient()])
        target = os.path.join(self.here, "back.bin")
        with self.assertRaises(NoIdentity):
            await self.client.sget("p.age", target, identities=[generateIdentity()])
        self.assertEqual(os.listdir(self.here), ["plain.bin"])

    async def test_tamperedOnServer(self) -> None:
        """
        The server's copy altered after upload: the transfer digest matches
        (it covers what the server sends) but the chunk does not
        authenticate; no plaintext is left.
        """
        await self.connected()
        await self.client.put(self.source, "p.age", encryptTo=[self.identity.recipient()])
        stored = os.path.join(self.root, "p.age")
        with open(stored, "r+b") as f:
            f.seek(-CHUNK, os.SEEK_END)
            byte = f.read(1)
            f.seek(-CHUNK, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0x40]))
        with self.assertRaises(NotDecryptable):
            await self.client.sget("p.age", os.path.join(self.here, "back.bin"), identities=[self.identity])
        self.assertEqual(os.listdir(self.here), ["plain.bin"])

    async def test_downloadContinuesOnCiphertext(self) -> None:
        """
        Part of the ciphertext from an interrupted attempt: only the rest
        crosses the connection.
        """
        await self.connected()
        await self.client.put(self.source, "p.age", encryptTo=[self.identity.recipient()])
        stored = self.read(os.path.join(self.root, "p.age"))
        target = os.path.join(self.here, "back.bin")
        with open(partialPath(ciphertextPath(target)), "wb") as f:
            f.write(stored[: 2 * CHUNK])
        got = await self.client.sget("p.age", target, identities=[self.identity])
        self.assertEqual(got.transferred, len(stored) - 2 * CHUNK)
        self.assertEqual(self.read(target), self.data)

    async def test_cutDownloadKeepsCiphertextOnly(self) -> None:
        """
        A download cut off while it is being decrypted leaves the
        ciphertext's partial file (for the next attempt) and no plaintext;
        the next attempt continues it and writes the plaintext.
        """
        await self.connected()
        data = os.urandom(6 << 20)
        with open(self.source, "wb") as f:
            f.write(data)
        await self.client.put(self.source, "big.age", encryptTo=[self.identity.recipient()])
        size = os.path.getsize(os.path.join(self.root, "big.age"))
        target = os.path.join(self.here, "back.bin")

        def progress(name, done, total):
            if done >= 2 << 20:
                self.client.protocol.transport.abortConnection()

        with self.assertRaises(ConnectionLost):
            await self.client.sget("big.age", target, progress, identities=[self.identity])
        # The server logs the send it could not finish.
        await waitUntil(reactor, lambda: bool(self.flushLoggedErrors(ConnectionError)), 2)
        # The aborted body read leaves its one-shot stall check behind
        # (ftx._io.bodyreads does not cancel it on connection loss).
        self.assertTrue(await waitUntil(reactor, lambda: not any(
            "_checkStall" in repr(call) for call in reactor.getDelayedCalls()), 5))
        kept = partialPath(ciphertextPath(target))
        self.assertTrue(await waitUntil(reactor, lambda: os.path.exists(kept), 5))
        self.assertEqual(sorted(os.listdir(self.here)), sorted(["plain.bin", os.path.basename(kept)]))
        client = await connect(reactor, self.address)
        got = await client.sget("big.age", target, identities=[self.identity])
        self.assertLess(got.transferred, size)
        self.assertEqual(self.read(target), data)
        self.assertEqual(sorted(os.listdir(self.here)), ["back.bin", "plain.bin"])

    async def test_uploadContinuesFromWhatTheServerHolds(self) -> None:
        """
        An interrupted encrypted upload left its plan (readable only by the
        user) and the server a prefix of the ciphertext: the next attempt
        makes the same ciphertext and sends only the rest.
        """
        await self.connected()
        state = UploadState(self.source, "p.age", [self.identity.recipient()])
        plan = state.plan(resume=True)
        self.assertEqual(stat.S_IMODE(os.stat(state.saved).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(stateFolder()).st_mode), 0o700)
        whole = os.path.join(self.top, "whole.age")
        encryptFile(self.source, whole, plan)
        held = 3 * CHUNK
        with open(os.path.join(self.root, ".p.age.ftx-partial"), "wb") as f:
            f.write(self.read(whole)[:held])
        sent = await self.client.put(self.source, "p.age", resume=True, encryptTo=[self.identity.recipient()])
        self.assertEqual(sent.transferred, os.path.getsize(whole) - held)
        self.assertEqual(self.read(os.path.join(self.root, "p.age")), self.read(whole))
        self.assertFalse(os.path.exists(state.saved))
        decryptFile(os.path.join(self.root, "p.age"), os.path.join(self.top, "check"), [self.identity])
        self.assertEqual(self.read(os.path.join(self.top, "check")), self.data)

    async def test_otherRecipientsStartOver(self) -> None:
        """
        A saved plan for other recipients is not used: their header would
        not let the new recipient in. The upload starts from byte 0.
        """
        await self.connected()
        UploadState(self.source, "p.age", [generateIdentity().recipient()]).plan(resume=True)
        sent = await self.client.put(self.source, "p.age", resume=True, encryptTo=[self.identity.recipient()])
        self.assertEqual(sent.transferred, sent.size)
        decryptFile(os.path.join(self.root, "p.age"), os.path.join(self.top, "check"), [self.identity])

    async def test_streamedEqualsTemporaryCopy(self) -> None:
        """
        A fresh upload encrypts while it sends (L{ftx.client.e2e.sending});
        what it sends is byte for byte what the resume path makes from the
        same plan, so an upload cut off while streaming continues from the
        server's prefix. Large enough for several batches.
        """
        await self.connected()
        data = os.urandom(40 * CHUNK + 17)
        with open(self.source, "wb") as f:
            f.write(data)
        state = UploadState(self.source, "s.age", [self.identity.recipient()])
        plan = state.plan(resume=True)
        sent = await self.client.put(self.source, "s.age", resume=True, encryptTo=[self.identity.recipient()])
        self.assertEqual(sent.transferred, sent.size)
        whole = os.path.join(self.top, "whole.age")
        encryptFile(self.source, whole, plan)
        self.assertEqual(self.read(os.path.join(self.root, "s.age")), self.read(whole))
        self.assertEqual(os.listdir(stateFolder()), [])


class EncryptingSenderTests(TestCase):
    """
    L{ftx.client.e2e.sending.EncryptingSender} on a L{StringTransport}:
    bounded while the transport is paused, and a file that shrinks fails
    the body rather than sending a short one.
    """

    def setUp(self) -> None:
        self.folder = temporaryFolder(self, "ftx-e2e-send-")
        self.path = os.path.join(self.folder, "p")
        # More batches (16 chunks each) than may wait while paused.
        self.data = os.urandom(200 * CHUNK + 3)
        with open(self.path, "wb") as f:
            f.write(self.data)
        self.plan = newPlan([generateIdentity().recipient()])

    def sender(self, plainSize: int):
        from ftx.client.e2e.sending import EncryptingSender
        from ftx.protocol import checksums

        return EncryptingSender(reactor, self.path, plainSize, self.plan, checksums.new(checksums.XXH128), lambda n: None)

    async def test_pausedHoldsFewBatches(self) -> None:
        from ftx.client.e2e.sending import _AHEAD
        from ftx.protocol import checksums

        transport = StringTransport()
        sender = self.sender(len(self.data))
        sender.pauseProducing()
        done = sender.begin(transport)
        self.assertTrue(await waitUntil(reactor, lambda: len(sender._pending) == _AHEAD, 10))
        # The worker waits for room: nothing more arrives while paused.
        await waitUntil(reactor, lambda: len(sender._pending) > _AHEAD, 0.3)
        self.assertEqual(len(sender._pending), _AHEAD)
        self.assertEqual(transport.value(), b"")
        sender.resumeProducing()
        digest = await done
        whole = os.path.join(self.folder, "whole")
        encryptFile(self.path, whole, self.plan)
        with open(whole, "rb") as f:
            expected = f.read()
        self.assertEqual(transport.value(), expected)
        hasher = checksums.new(checksums.XXH128)
        hasher.update(expected)
        self.assertEqual(digest, hasher.hexdigest())

    async def test_shrunkFileFails(self) -> None:
        transport = StringTransport()
        with self.assertRaises(OSError):
            await self.sender(len(self.data) + 100).begin(transport)


class OverTLSTests(TestCase):
    async def test_encryptedRoundTripOverTLS(self) -> None:
        """
        The streaming sender writes through a TLS transport (no
        C{sendfile} there) as well as through a plain socket.
        """
        from ftx.client.api import ClientTLS
        from tests.test_tls import workspace

        base, pki, root = workspace(self)
        connections = Connections(self, reactor)
        _, number = await connections.listenTLS(root, pki.server)
        client = await connect(reactor, "ssl:host=127.0.0.1:port={}".format(number), tls=ClientTLS(cafile=pki.serverCA))
        identity = generateIdentity()
        data = os.urandom(30 * CHUNK + 1)
        source = os.path.join(base, "plain")
        with open(source, "wb") as f:
            f.write(data)
        await client.put(source, "t.age", encryptTo=[identity.recipient()])
        target = os.path.join(base, "back")
        await client.sget("t.age", target, identities=[identity])
        with open(target, "rb") as f:
            self.assertEqual(f.read(), data)
