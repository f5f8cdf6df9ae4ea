"""
C{sget} of many named files, the commands sent ahead of their answers.

One C{sget} at a time costs a round trip and both ends' turn-around per
file: the server waits for the next command while the client stores the
file just received. For a mirror's re-run of a hundred small changed files
in a hundred folders (no C{mget} mask fits them) that was most of the
time. A server with the C{pipeline} feature reads commands that arrive
before its answer is complete and answers them in order
(docs/protocol.rst, Commands), so up to L{GetsRequest.WINDOW} C{sget}
lines go out at once, and the answers are taken as an C{mget} batch's
files are: small files stored by one worker while the next ones arrive.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

from ftx.client.exchanges import DownloadRequest
from ftx.client.smallfiles import SmallFileStore
from ftx.errors import UnsafeName, errorFromReply
from ftx.protocol import wire
from ftx.protocol.wire import encodeName, nameText

__all__ = ["PIPELINE", "GetsRequest"]

#: The greeting's feature for commands sent ahead of their answers.
PIPELINE = "pipeline"


class GetsRequest(DownloadRequest):
    """
    C{sget NAME} for each C{(name, path)} of C{files}, pipelined. Fires,
    once every answer is in and every file stored or dropped, with the
    L{ftx.client.results.Transfer}s made; C{failed(name, error)} is called
    for each file that failed (the server's error, a failed check, a local
    error, a body under another name than asked for: as for one C{sget},
    it is read and dropped), and the rest go on. Fails only when the
    connection does, or on an answer that breaks the protocol.
    """

    #: Commands on the wire ahead of their answers; enough to keep both
    #: ends busy, few enough that the server's socket buffer holds them.
    WINDOW = 64

    def __init__(
        self, files: List[Tuple[str, str]], progress=None, received=None,
        failed: Optional[Callable[[str, BaseException], None]] = None,
    ) -> None:
        super().__init__(b"", self._destination, progress, batch=True, received=received)
        self.files = [(name.encode("utf-8", "surrogateescape"), name, path) for name, path in files]
        self.lines = [wire.formatCommand("sget", encodeName(raw)) for raw, _, _ in self.files]
        self.failed = failed
        self._sent = 0
        self._answered = 0
        #: The name asked for of the file an error of the base class is
        #: about (L{batchError}).
        self._blame = ""
        #: The name asked for of each small file waiting to be stored.
        self._smallNames: Dict[int, str] = {}

    # The base class keeps the first error of a batch with
    # C{self.batchError = self.batchError or error}: reading None makes it
    # hand over every error, each passed on for the file it is about.
    @property
    def batchError(self):
        return None

    @batchError.setter
    def batchError(self, error) -> None:
        if error is not None and self.failed is not None:
            self.failed(self._blame, error)

    def start(self, protocol) -> None:
        self.protocol = protocol
        if not self.lines:
            self.complete([])
            return
        self._fill()

    def _fill(self) -> None:
        while self._sent < len(self.lines) and self._sent - self._answered < self.WINDOW:
            self.protocol.sendLine(self.lines[self._sent])
            self._sent += 1

    def _destination(self, name: bytes, size: int) -> str:
        # As for one sget: a body under another name is read and dropped.
        raw, text, path = self.files[self._answered]
        self._blame = text
        if name != raw:
            raise UnsafeName("asked for {}, the server sent {}; it was not written".format(
                ascii(text), ascii(nameText(name))), name)
        return path

    def replyReceived(self, reply: wire.Reply) -> None:
        if self.broken:
            return
        if self._answered >= len(self.lines):
            self.malformed("{} {} after the answer to every sget".format(reply.code, ascii(reply.text[:80])))
        if reply.isError and self.header is None:
            # This file's answer: the next one's comes after it.
            raw, name, _ = self.files[self._answered]
            if self.failed is not None:
                self.failed(name, errorFromReply(reply.code, reply.errorMessage(), reply.fields[0] if reply.fields else ""))
            self._answer()
            return
        if reply.code in (wire.BATCH_END, wire.SKIPPED):
            self.malformed("{} {} in answer to sget".format(reply.code, ascii(reply.text[:80])))
        super().replyReceived(reply)

    def _endFile(self, digest: str) -> None:
        answered = self._answered
        super()._endFile(digest)
        if not self._holding and self._answered == answered:
            # A large file is answered once it is in place (_finishFile):
            # later, or already, when its body was stored before the
            # trailer came.
            self._answer()

    def _finishFile(self, header, current, writer, digest: str) -> None:
        # Counted before the base class reads on: the next line answers
        # the next command.
        self._blame = self.files[self._answered][1]
        self._answered += 1
        super()._finishFile(header, current, writer, digest)
        self._goOn()

    def _storeSmall(self, job) -> None:
        self._smallNames[id(job)] = self.files[self._answered][1]
        if self._smallFiles is None:
            # Two lanes: each file here mostly replaces one that exists.
            self._smallFiles = SmallFileStore(self.protocol.reactor, self._smallStored, self._smallChanged, lanes=2)
        super()._storeSmall(job)

    def _smallStored(self, job) -> None:
        self._blame = self._smallNames.pop(id(job), "")
        super()._smallStored(job)

    def _answer(self) -> None:
        self._answered += 1
        self._goOn()

    def _goOn(self) -> None:
        if self.deferred.called or self.protocol._lost:
            return
        if self._answered < len(self.lines):
            self._fill()
            return
        self._whenSmallFilesStored().addCallback(lambda _: self._allStored())

    def _allStored(self) -> None:
        if self.deferred.called:
            return
        if self._smallFiles is not None and self._smallFiles.error is not None:
            self.fail(self._smallFiles.error)
            return
        self.complete(self.results)
