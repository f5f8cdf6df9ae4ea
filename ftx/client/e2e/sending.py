"""
Encrypting while sending: a fresh encrypted upload streams the ciphertext
as a worker thread makes it, instead of writing a temporary copy first and
sending that. Encrypting and sending overlap (on two cores the upload
takes about as long as the slower of the two, not their sum) and nothing
is written to the local disk.

The worker encrypts a batch at a time and hashes the ciphertext for the
trailer; at most L{_AHEAD} batches wait in memory for the connection, and
the transport's own backpressure pauses the writing. Resuming from what
the server holds needs the ciphertext's prefix hashed and sent from an
offset, which the temporary-copy path in L{ftx.client.e2e.transfers} does.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, List, Optional

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from ftx.client.e2e.header import hkdf
from ftx.client.e2e.stream import CHUNK, Plan, pieces, streamNonce
from ftx.client.exchanges import UploadRequest
from ftx.protocol import wire

__all__ = ["EncryptingUpload"]

#: Batches encrypted ahead of the connection: bounds the memory an upload
#: holds (about 1 MiB each) while keeping the worker busy.
_AHEAD = 8


class _Cancelled(Exception):
    pass


@implementer(interfaces.IPushProducer)
class EncryptingSender:
    """
    Writes C{plan}'s encryption of the file at C{path} (C{plainSize} bytes)
    to a transport; L{begin} fires with the digest of what was sent.
    """

    def __init__(
        self, reactor, path: str, plainSize: int, plan: Plan, hasher, progress: Callable[[int], None], throttle=None
    ):
        self.reactor = reactor
        self.path = path
        self.plainSize = plainSize
        self.plan = plan
        self.hasher = hasher
        self.progress = progress
        self.transport = None
        self.deferred: Optional[Deferred] = None
        self._pending: List[bytes] = []
        self._paused = False
        self._done: Optional[str] = None
        self._room = threading.Semaphore(_AHEAD)
        self._cancelled = False
        #: The connection's L{ftx._io.ratelimit.Throttle}, or L{None}.
        self.throttle = throttle
        self._waiting = False

    def begin(self, transport) -> Deferred:
        self.transport = transport
        self.deferred = Deferred()
        transport.registerProducer(self, True)
        self.reactor.getThreadPool().callInThread(self._work)
        return self.deferred

    # -- the worker thread ---------------------------------------------

    def _work(self) -> None:
        try:
            digest = self._encrypt()
        except _Cancelled:
            return
        except BaseException as e:
            self.reactor.callFromThread(self._fail, Failure(e))
            return
        self.reactor.callFromThread(self._encrypted, digest)

    def _emit(self, batch: List[bytes]) -> None:
        while not self._room.acquire(timeout=0.5):
            if self._cancelled:
                raise _Cancelled()
        if self._cancelled:
            raise _Cancelled()
        data = b"".join(batch)
        self.hasher.update(data)
        self.reactor.callFromThread(self._deliver, data)

    def _encrypt(self) -> str:
        aead = ChaCha20Poly1305(hkdf(self.plan.fileKey, self.plan.nonce, b"payload"))
        batch = [self.plan.header + self.plan.nonce]
        with open(self.path, "rb", buffering=0) as f:
            try:
                for counter, chunk, last in pieces(f, self.plainSize, CHUNK):
                    batch.append(aead.encrypt(streamNonce(counter, last), chunk, None))
                    if len(batch) >= 16:
                        self._emit(batch)
                        batch = []
            except EOFError:
                raise OSError("{} shrank while it was being encrypted".format(self.path))
            if f.read(1):
                raise OSError("{} grew while it was being encrypted".format(self.path))
        if batch:
            self._emit(batch)
        return self.hasher.hexdigest()

    # -- the reactor thread --------------------------------------------

    def _deliver(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self._paused or self._pending or self._waiting:
            self._pending.append(data)
        elif self.throttle is not None and self.throttle.limited:
            self._pending.append(data)
            self._drain()
        else:
            self._write(data)

    def _drain(self) -> None:
        """
        Write what waits while the transport and the rate limit allow; a
        batch larger than the limit's allowance goes a piece at a time.
        """
        limited = self.throttle is not None and self.throttle.limited
        while self._pending and not self._paused and not self._waiting and self.transport is not None:
            data = self._pending[0]
            allowed = self.throttle.allowance(len(data)) if limited else len(data)
            if not allowed:
                self._waiting = True
                self.throttle.wait(self._tokensCame)
                return
            if limited:
                self.throttle.spend(allowed)
            if allowed < len(data):
                self._pending[0] = data[allowed:]
                self.transport.write(data[:allowed])
                self.progress(allowed)
            else:
                self._write(self._pending.pop(0))
        self._finishIfDrained()

    def _tokensCame(self) -> None:
        self._waiting = False
        self._drain()

    def _write(self, data: bytes) -> None:
        self.transport.write(data)
        self._room.release()
        self.progress(len(data))

    def _encrypted(self, digest: str) -> None:
        self._done = digest
        self._finishIfDrained()

    def _finishIfDrained(self) -> None:
        if self._done is not None and not self._pending and self.transport is not None:
            self.transport.unregisterProducer()
            self.transport = None
            self.deferred.callback(self._done)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._drain()

    def stopProducing(self) -> None:
        self._fail(Failure(ConnectionError("connection lost while sending")))

    def _fail(self, failure: Failure) -> None:
        self._cancelled = True
        if self.throttle is not None:
            self.throttle.cancel()
        for _ in range(_AHEAD):
            self._room.release()
        if self.transport is None:
            return
        self.transport.unregisterProducer()
        self.transport = None
        self._pending = []
        self.deferred.errback(failure)


class EncryptingUpload(UploadRequest):
    """
    C{put} of a ciphertext made as it is sent: the plain upload's request
    and replies, with an L{EncryptingSender} for the body.
    """

    def __init__(self, line, name, f, size, hasher, progress, plainSize: int, plan: Plan):
        super().__init__(line, name, f, size, 0, hasher, progress)
        self.plainSize = plainSize
        self.plan = plan

    def replyReceived(self, reply: wire.Reply) -> None:
        if reply.code == wire.SEND_BODY and self.sender is None:
            if self.progress:
                self.progress(self.name, 0, self.size)
            self.sender = EncryptingSender(
                self.protocol.reactor, os.fsdecode(self.file.name), self.plainSize, self.plan, self.hasher,
                self._sentSome, self.protocol.sending,
            )
            self.sender.begin(self.protocol.transport).addCallbacks(self._bodySent, self._bodyFailed)
        else:
            super().replyReceived(reply)
