"""
The requests the client sends: one class per kind of reply sequence.

Each request object receives the reply lines (and body bytes) for its own
command and fires its Deferred; L{ftx.client.protocol.FtxClientProtocol} only routes
lines to the request in flight.
"""

from __future__ import annotations

from typing import List, NoReturn, Optional

from twisted.internet.defer import Deferred, succeed

from ftx._io.background import HIGH_WATER, LOW_WATER, BackgroundWriter
from ftx._io.filebody import BodySender
from ftx._io.threadedbody import ThreadedWriter
from ftx.client import compressed, localfiles
from ftx.client.results import Transfer
from ftx.client.smallfiles import SmallFile, SmallFileStore
from ftx.errors import ConnectionLost, FtxError, IntegrityError, UnsafeName, errorFromReply
from ftx.protocol import checksums, compression, wire
from ftx.protocol.wire import nameText

__all__ = ["Request", "DownloadRequest", "UploadRequest", "StreamedFile"]


class Request:
    """
    One command in flight. Subclasses handle the reply lines (and bodies)
    their command produces; C{deferred} fires with the result.
    """

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.deferred: Deferred = Deferred()
        self.protocol: Optional["object"] = None

    def start(self, protocol: "object") -> None:
        self.protocol = protocol
        protocol.sendLine(self.line)

    def replyReceived(self, reply: wire.Reply) -> None:
        if self.broken:
            return
        if reply.isError:
            self.fail(errorFromReply(reply.code, reply.errorMessage(), reply.fields[0] if reply.fields else ""))
            return
        try:
            result = self.parse(reply)
        except (IndexError, ValueError, FtxError) as e:
            # A field missing or not a number: the server's fault.
            self.malformed("{} in {}".format(e.__class__.__name__, ascii(reply.text[:80])))
        self.complete(result)

    def parse(self, reply: wire.Reply):
        return reply

    def complete(self, result) -> None:
        self.protocol._requestDone(self)
        self.deferred.callback(result)

    def fail(self, error) -> None:
        self.connectionLost()
        self.protocol._requestDone(self)
        self.deferred.errback(error)

    def connectionLost(self) -> None:
        """
        Release what the request holds (open files); called on any failure.
        """

    @property
    def broken(self) -> bool:
        """
        Whether the request failed on a malformed answer (L{malformed}) and
        ignores what the server goes on sending until the connection closes.
        """
        return self.deferred.called and self.protocol is not None and self.protocol._active is self

    def malformed(self, text: str) -> NoReturn:
        """
        Fail on an answer that breaks the protocol, with a message that says
        so, and raise it so that the protocol closes the connection: what
        follows can no longer be framed.
        """
        # ConnectionLost, since the connection goes: a batch that carries on
        # after a failed file must stop here.
        error = ConnectionLost("malformed answer from the server: {}; the connection was closed".format(text))
        if not self.deferred.called:
            self.connectionLost()
            self.deferred.errback(error)
        raise error


class DownloadRequest(Request):
    """
    C{sget}, C{cget} and C{mget}: one or more C{150} headers, each followed
    by a body and a C{250} trailer. C{destination(name, size)} picks the
    local path for each file (L{None} discards it).
    """

    def __init__(
        self, line, destination, progress, offset=0, hasher=None, batch=False, received=None, refused=None, stream=None
    ):
        super().__init__(line)
        #: A binary file object the body goes to as it arrives (stdout),
        #: instead of a file under C{destination}'s path.
        self.stream = stream
        self.received = received
        self.refused = refused
        #: In a batch, the first failed file's error, raised at the end.
        self.batchError: Optional[BaseException] = None
        self.destination = destination
        self.progress = progress
        self.offset = offset
        self.prefixHasher = hasher
        self.batch = batch
        self.current: Optional[localfiles.PartialFile] = None
        self.small: Optional[SmallFile] = None
        self.header: Optional[wire.FileHeader] = None
        self.discarding = False
        #: Why the file being received is dropped: its name was refused.
        self.refusal: Optional[BaseException] = None
        self.results: List[Transfer] = []
        self.writer: Optional[BackgroundWriter] = None
        self._holding = False
        self._smallFiles: Optional[SmallFileStore] = None
        self._smallPaused = False
        #: The blocks of the body being received when it is compressed.
        self.blocks: Optional[compressed.CompressedDownload] = None

    def replyReceived(self, reply: wire.Reply) -> None:
        if self.broken:
            return
        if reply.code == wire.BODY_FOLLOWS:
            try:
                header = wire.parseFileHeader(reply)
            except FtxError as e:
                self.malformed(str(e))
            if header.bodyLength > wire.SMALL_BODY and self._smallFiles is not None and not self._smallFiles.idle:
                # Small files received earlier go into place before a large
                # one starts: if the large one is cut off, everything before
                # it is on disk.
                self.protocol.pauseProducing()
                self._holding = True
                self._smallFiles.whenIdle().addCallback(lambda _: self._beginAfterSmallFiles(header))
            else:
                self._beginFile(header)
        elif reply.code == compression.BLOCK and self.blocks is not None:
            self.blocks.blockLine(reply)
        elif reply.code == wire.TRAILER and self.header is not None:
            if self.blocks is not None:
                blocks, self.blocks = self.blocks, None
                blocks.trailer()
            self._endFile(wire.parseDigest(reply.fields[0] if reply.fields else "", self.protocol.checksum))
        elif reply.code == wire.BATCH_END and self.batch:
            self._whenSmallFilesStored().addCallback(lambda _: self._batchEnded())
        elif reply.code == wire.SKIPPED and self.batch:
            pass
        elif reply.isError:
            super().replyReceived(reply)
        else:
            self.malformed("{} {} in answer to a download".format(reply.code, ascii(reply.text[:80])))

    def _beginFile(self, header: wire.FileHeader) -> None:
        if header.offset != self.offset:
            # A body from elsewhere than asked cannot be checked against
            # what is here.
            self.malformed("{} from byte {}, not {} as asked".format(
                ascii(nameText(header.name)), header.offset, self.offset))
        self.header = header
        name = nameText(header.name)
        self.refusal = None
        try:
            path = self.destination(header.name, header.size)
        except UnsafeName as e:
            path = None
            self._dropFile(e)
            if self.refused is not None:
                self.refused(e)
        checksum = self.protocol.checksum
        if path is not None and header.offset == 0 and header.bodyLength <= wire.SMALL_BODY and self.stream is None:
            self.small = SmallFile(header.name, path, header.size, checksum)
        elif path is not None:
            hasher = self.prefixHasher if header.offset else checksums.new(checksum)
            try:
                if self.stream is not None:
                    self.current = StreamedFile(self.stream, path, hasher)
                else:
                    self.current = localfiles.PartialFile(path, header.offset, hasher)
            except OSError as e:
                # A local problem (a link in place of the partial file, a
                # folder that cannot be written) fails this file only.
                self._dropFile(localfiles.localError(e, localfiles.partialPath(path)))
            else:
                # Writing and hashing run in worker threads while this
                # thread receives (XXH3 right after the write in the same
                # worker, SHA-1 in one of its own): on two cores that
                # overlaps the costs.
                if compressed.isCompressed(self.protocol) and self.protocol.readsBodyInThread(header.bodyLength, checksum):
                    # Blocks followed by a thread (ftx._io.threadedblocks).
                    self.writer = ThreadedWriter(compressed.decodingSink(self.current, hasher), None, self.protocol.reactor)
                elif compressed.isCompressed(self.protocol):
                    # Blocks: the worker decodes, stores and hashes the file's bytes.
                    self.writer = BackgroundWriter(
                        compressed.decodingSink(self.current, hasher), self.protocol.reactor,
                        self.protocol.pauseProducing, self._writerCaughtUp,
                    )
                elif self.protocol.readsBodyInThread(header.bodyLength, checksum):
                    self.writer = ThreadedWriter(self.current, hasher, self.protocol.reactor)
                else:
                    self.writer = BackgroundWriter(
                        self.current, self.protocol.reactor, self.protocol.pauseProducing, self._writerCaughtUp,
                        hasher, cheapHash=checksums.cheap(checksum),
                    )
        self.discarding = self.small is None and self.current is None
        self._done = header.offset
        self._reportEvery = max(header.size // 1000, 1 << 20)
        self._nextReport = header.offset
        if self.progress:
            self.progress(name, header.offset, header.size)
        if compressed.isCompressed(self.protocol):
            self.blocks = compressed.CompressedDownload(self, header.bodyLength)
        else:
            self.protocol._receiveBody(header.bodyLength, self)

    def _dropFile(self, error: BaseException) -> None:
        """
        Read the coming body and drop it, so the connection stays in step;
        the file fails with C{error} at its trailer, or at the end of a
        batch.
        """
        self.refusal = error
        if self.batch:
            self.batchError = self.batchError or error

    def _beginAfterSmallFiles(self, header: wire.FileHeader) -> None:
        self._holding = False
        if self.protocol._lost or self.deferred.called:
            return
        self._beginFile(header)
        self.protocol.resumeProducing()

    def _writerCaughtUp(self) -> None:
        if not self._holding and not self._smallPaused and not self.protocol._lost:
            self.protocol.resumeProducing()

    def bodyData(self, data, release=None) -> None:
        if self.small is not None:
            if release is not None:
                data = bytes(data)
                release()
            self.small.pieces.append(data)
        elif self.writer is not None:
            self.writer.write(data, release)
        elif release is not None:
            release()
        self.bodyProgress(len(data))

    def bodyProgress(self, count: int) -> None:
        """
        C{count} more bytes of the body arrived (and, read by a thread, are
        already stored; in compressed blocks, counted as file bytes).
        """
        self._done += count
        if self.progress and self._done >= self._nextReport:
            self._nextReport = self._done + self._reportEvery
            self.progress(nameText(self.header.name), self._done, self.header.size)

    def bodyDone(self) -> None:
        if self.progress:
            self.progress(nameText(self.header.name), self.header.size, self.header.size)

    def _endFile(self, digest: str) -> None:
        header, self.header = self.header, None
        small, self.small = self.small, None
        if small is not None:
            small.digest = digest
            self._storeSmall(small)
            return
        current, writer = self.current, self.writer
        if current is None:
            refusal, self.refusal = self.refusal, None
            if refusal is not None and not self.batch:
                self.fail(refusal)
            return
        # Hold further lines until the file is complete on disk, so that
        # files of a batch finish in order and the next body cannot start
        # before this one is renamed into place.
        self._holding = True
        self.protocol.pauseProducing()
        writer.whenDrained().addCallback(lambda _: self._whenSmallFilesStored()).addCallback(
            lambda _: self._finishFile(header, current, writer, digest)
        )

    def _finishFile(self, header, current, writer, digest: str) -> None:
        self._holding = False
        self.current = self.writer = None
        if self.protocol._lost:
            current.keep()
            return
        error = None
        if writer.error is not None:
            current.keep()
            error = localfiles.localError(writer.error, current.path) if isinstance(writer.error, OSError) else writer.error
        elif not current.finish(digest):
            error = IntegrityError(
                "{} arrived corrupted ({} mismatch); it was not kept".format(
                    nameText(header.name), checksums.label(self.protocol.checksum)
                )
            )
        else:
            self._fileDone(
                Transfer(nameText(header.name), current.path, header.size, digest, header.bodyLength, self.protocol.checksum)
            )
        if error is not None:
            if self.batch:
                # The server goes on sending the batch; failing now would
                # leave its bodies to whatever request comes next.
                self.batchError = self.batchError or error
            else:
                self.fail(error)
        self.protocol.resumeProducing()

    def _fileDone(self, transfer: Transfer) -> None:
        self.results.append(transfer)
        if self.received is not None:
            self.received(transfer)
        if not self.batch:
            self.complete(transfer)

    # -- small files: stored by one worker while the next ones arrive ----

    def _storeSmall(self, job: SmallFile) -> None:
        store = self._smallFiles
        if store is None:
            store = self._smallFiles = SmallFileStore(self.protocol.reactor, self._smallStored, self._smallChanged)
        store.add(job)
        if store.waiting > HIGH_WATER and not self._smallPaused:
            self._smallPaused = True
            self.protocol.pauseProducing()

    def _smallStored(self, job: SmallFile) -> None:
        if self.deferred.called:
            return
        if job.error is None:
            self._fileDone(Transfer(nameText(job.name), job.path, job.size, job.digest, job.size, job.checksum))
        elif self.batch:
            self.batchError = self.batchError or job.error
        else:
            self.fail(job.error)

    def _smallChanged(self) -> None:
        store = self._smallFiles
        if store.error is not None and not self.deferred.called and store.idle:
            # Not a file's failure but the worker's own: nothing more can
            # be stored.
            self.fail(store.error)
        if self._smallPaused and store.waiting < LOW_WATER:
            self._smallPaused = False
            if not self._holding and not self.protocol._lost:
                self.protocol.resumeProducing()

    def _whenSmallFilesStored(self) -> Deferred:
        return self._smallFiles.whenIdle() if self._smallFiles is not None else succeed(None)

    def _batchEnded(self) -> None:
        if self.deferred.called:
            return
        error = self.batchError or (self._smallFiles.error if self._smallFiles is not None else None)
        if error is not None:
            self.fail(error)
        else:
            self.complete(self.results)

    def connectionLost(self) -> None:
        current, writer = self.current, self.writer
        self.current = self.writer = None
        if current is None:
            return
        if writer is None:
            current.keep()
        elif not self._holding:
            # Let queued bytes reach the partial file before closing it, so
            # that cget continues from everything that arrived.
            writer.whenDrained().addCallback(lambda _: current.keep())


class StreamedFile:
    """
    Where a download to a stream (stdout) goes, in place of a
    L{localfiles.PartialFile}: bytes are written as they arrive, so the
    digest can only be checked at the end; L{finish} says whether it
    matched, and the caller fails the download if not.
    """

    def __init__(self, stream, path: str, hasher) -> None:
        self.stream = stream
        self.path = path
        self.hasher = hasher
        self.received = 0

    def store(self, data) -> None:
        # In a worker thread (BackgroundWriter): a slow reader of the pipe
        # holds the worker, and the connection is paused behind it.
        self.stream.write(data)
        self.received += len(data)

    def finish(self, expected: str) -> bool:
        self.stream.flush()
        return self.hasher.hexdigest() == expected

    def keep(self) -> None:
        pass


class UploadRequest(Request):
    """
    C{put}: wait for C{350}, stream the file with a L{BodySender} (so a slow
    server pushes back on the client rather than filling its memory, and a
    plain socket gets C{sendfile}), then send the trailer (C{sha1 DIGEST},
    or the connection's other checksum, and C{mtime} when given: the
    C{mtime} feature) and wait for C{226}.
    """

    def __init__(self, line, name, f, size, offset, hasher, progress, mtime: Optional[int] = None):
        super().__init__(line)
        self.mtime = mtime
        self.name = name
        self.file = f
        self.size = size
        self.offset = offset
        self.hasher = hasher
        self.progress = progress
        self.sent = offset
        self.sender: Optional[BodySender] = None

    def replyReceived(self, reply: wire.Reply) -> None:
        if reply.code == wire.SEND_BODY and self.sender is None:
            if self.progress:
                self.progress(self.name, self.sent, self.size)
            if compressed.isCompressed(self.protocol):
                self.sender = compressed.blockSender(
                    self.protocol.transport, self.file, self.offset, self.size - self.offset, self.hasher,
                    self._sentSome, self.protocol.reactor, self.protocol.sending, self.protocol.rawRun,
                )
            else:
                # A process that waits for this one connection (the ftx
                # command sets bodyThreads) sends a large body from a thread
                # of its own; the library's default (None) keeps the reactor.
                threaded = getattr(self.protocol, "bodyThreads", None) is True
                self.sender = BodySender(
                    self.file, self.offset, self.size - self.offset, self.hasher, None, self._sentSome,
                    self.protocol.reactor, self.protocol.sending, sendThread=threaded,
                )
            self.sender.begin(self.protocol.transport).addCallbacks(self._bodySent, self._bodyFailed)
        elif reply.code == wire.STORED:
            self.file.close()
            digest = reply.fields[2] if len(reply.fields) > 2 else ""
            # The name the server stored it under: another one when it
            # was asked to rename rather than replace.
            try:
                stored = nameText(wire.decodeName(reply.fields[0])) if reply.fields else self.name
            except FtxError as e:
                self.malformed("{} in {}".format(e, ascii(reply.text[:80])))
            self.complete(
                Transfer(stored, self.file.name, self.size, digest, self.size - self.offset, self.protocol.checksum)
            )
        elif reply.isError:
            super().replyReceived(reply)
        else:
            self.malformed("{} {} in answer to put".format(reply.code, ascii(reply.text[:80])))

    def _sentSome(self, count: int) -> None:
        self.sent += count
        if self.progress:
            self.progress(self.name, self.sent, self.size)

    def _bodySent(self, digest: str) -> None:
        if not self.protocol._lost:
            trailer = self.protocol.checksum.encode("ascii") + b" " + digest.encode("ascii")
            if self.mtime is not None:
                trailer += b" %d" % (self.mtime,)
            self.protocol.sendLine(trailer)

    def _bodyFailed(self, failure) -> None:
        # The file shrank or could not be read: the body can no longer be
        # framed, so the connection goes, and the put fails saying why (a
        # ConnectionLost, as for a malformed answer: a batch stops here).
        if not self.protocol._lost:
            if not self.deferred.called:
                self.connectionLost()
                self.deferred.errback(ConnectionLost(failure.getErrorMessage() + "; the connection was closed"))
            self.protocol.transport.abortConnection()

    def connectionLost(self) -> None:
        if self.sender is not None and self.sender.transport is not None:
            # A body waiting for its rate limit's tokens is not the
            # transport's producer: the transport cannot stop it.
            self.sender.stopProducing()
        if not self.file.closed:
            self.file.close()
