"""
Compressed bodies: zstd blocks, each sent raw when it does not shrink.

With C{compress zstd} (the C{zstd} feature, docs/protocol.rst,
"Compression") a body is a run of blocks instead of plain bytes. Each
block is a line C{151 FILE-BYTES STORED-BYTES} and then C{STORED-BYTES}
bytes: one zstd frame when C{STORED-BYTES} is less than C{FILE-BYTES}, the
file's bytes as they are when both are equal. The blocks' C{FILE-BYTES}
add up to the body length of the C{150} header (or C{put}), so sizes,
offsets and digests keep meaning positions in the file.

No I/O here; C{zstandard} is imported on first use, so commands that never
compress never load it.
"""

from __future__ import annotations

from typing import Optional, Tuple

from ftx.errors import BadRequest, IntegrityError

__all__ = [
    "ZSTD", "NONE", "AUTO", "MODES", "BLOCK", "BLOCK_SIZE", "MAX_BLOCK", "BlockEncoder", "CompressedBlock",
    "blockLine", "parseBlock", "isRaw", "decodeBlock", "sampleRatio", "available", "choose", "RUNS", "MAX_RUN",
    "chooseFields",
]

#: The greeting feature, and the argument of C{compress} that turns it on.
ZSTD = "zstd"
NONE = "none"
AUTO = "auto"
#: What C{--compress} and C{connect(compress=...)} take.
MODES = (AUTO, ZSTD, NONE)
#: The greeting feature, and the second argument of C{compress zstd}, that
#: lets a raw block hold up to L{MAX_RUN} file bytes on the connection.
RUNS = "raw-runs"
#: The code of a block line, in both directions.
BLOCK = 151
#: File bytes per block the reference sender cuts; the most a receiver
#: accepts in one block. 1 MiB: zstd's ratio on logs barely improves past
#: it, and it bounds what one block costs a receiver to hold and decode.
BLOCK_SIZE = 1 << 20
MAX_BLOCK = BLOCK_SIZE
#: The most file bytes one raw block holds after C{compress zstd raw-runs}.
#: Raw bytes are never held whole (they go on as they arrive), so a long
#: run costs a receiver nothing more; what it saves is a block line and its
#: handling on both sides every MiB, which cost a forced C{--compress zstd}
#: download of random bytes about 10 % against a plain one.
MAX_RUN = 64 << 20
#: zstd level 1: 490 MB/s a core on generated logs at a ratio of 0.076 here,
#: against 210 MB/s at level 3 for 0.087; the speed matters more.
LEVEL = 1
#: A block goes compressed only if that saves at least 1/32 (3 %): below
#: that the receiver's decoding costs more than the bytes saved.
SAVING = 32
#: After a block that did not shrink, the sender does not try the next 1,
#: 2, 4 ... up to this many blocks: random or already compressed data then
#: costs a trial compression on one block in 33 (about 1 % of its time).
MAX_SKIP = 32

_zstd = None


def zstandard():
    """
    The C{zstandard} module, imported on first use.
    """
    global _zstd
    if _zstd is None:
        import zstandard as module

        _zstd = module
    return _zstd


class BlockEncoder:
    """
    Turns file bytes into block payloads, one block at a time, in order.
    Not thread-safe: one encoder per body, used by one thread at a time.
    """

    def __init__(self, level: int = LEVEL) -> None:
        self._compressor = zstandard().ZstdCompressor(level=level, write_content_size=True)
        self._skip = 0
        self._skipping = 0
        #: File bytes and stored bytes so far, for logs and tests.
        self.fileBytes = 0
        self.storedBytes = 0

    def skipNext(self, size: int) -> bool:
        """
        Whether the next block, of C{size} file bytes, goes raw without a
        trial (one of the blocks skipped after a raw one); if so it is
        counted as sent raw. A sender that sends raw blocks straight from
        the file (L{ftx._io.directblocks}) asks this before reading it.
        """
        if not self._skipping:
            return False
        self._skipping -= 1
        self.fileBytes += size
        self.storedBytes += size
        return True

    def encode(self, data) -> bytes:
        """
        The payload for the block of file bytes C{data}: a zstd frame when
        it saves at least 1/L{SAVING}, else C{data} itself (as bytes).
        """
        size = len(data)
        payload = None
        if self._skipping:
            self._skipping -= 1
        elif size:
            packed = self._compressor.compress(data)
            if len(packed) <= size - size // SAVING - 1:
                payload = packed
                self._skip = 0
            else:
                self._skip = min(max(1, self._skip * 2), MAX_SKIP)
                self._skipping = self._skip
        if payload is None:
            payload = bytes(data)
        self.fileBytes += size
        self.storedBytes += len(payload)
        return payload


def blockLine(fileBytes: int, stored: int) -> bytes:
    """
    The line before a block's payload (without its line end).
    """
    return b"%d %d %d" % (BLOCK, fileBytes, stored)


def parseBlock(fields, remaining: int, rawMax: int = MAX_BLOCK) -> Tuple[int, int]:
    """
    The file bytes and stored bytes of a block line's fields, checked
    against what is left of the body. C{rawMax}: the most file bytes a raw
    block may hold (L{MAX_RUN} on a connection with L{RUNS}).

    @raise BadRequest: a field is missing or not a number, the block is
        empty, larger than L{MAX_BLOCK} (a raw one: C{rawMax}), beyond the
        body's end, or stores more bytes than it holds.
    """
    from ftx.protocol.wire import parseNumber

    if len(fields) != 2:
        raise BadRequest("a block line is '151 FILE-BYTES STORED-BYTES'")
    fileBytes = parseNumber(fields[0], "block size")
    stored = parseNumber(fields[1], "stored size")
    largest = rawMax if stored == fileBytes else MAX_BLOCK
    if not 0 < fileBytes <= largest:
        raise BadRequest("a block holds 1 to {} file bytes, not {}".format(largest, fileBytes))
    if fileBytes > remaining:
        raise BadRequest("a block of {} bytes goes beyond the body's end ({} left)".format(fileBytes, remaining))
    if not 0 < stored <= fileBytes:
        raise BadRequest("a block of {} bytes cannot be stored in {}".format(fileBytes, stored))
    return fileBytes, stored


def isRaw(fileBytes: int, stored: int) -> bool:
    return stored == fileBytes


class CompressedBlock:
    """
    A zstd block's payload on its way to a worker thread, which decodes
    it (L{decode}). Its length is the payload's, which is what it holds in
    memory while it waits.
    """

    __slots__ = ("payload", "fileBytes")

    def __init__(self, payload: bytes, fileBytes: int) -> None:
        self.payload = payload
        self.fileBytes = fileBytes

    def __len__(self) -> int:
        return len(self.payload)

    def decode(self) -> bytes:
        return decodeBlock(self.payload, self.fileBytes)


def decodeBlock(payload, fileBytes: int) -> bytes:
    """
    The C{fileBytes} file bytes of one zstd block.

    The frame must state its content size and it must be C{fileBytes}: the
    decoder then writes into a buffer of exactly that size and fails on a
    frame that would make more, so a block that claims little and inflates
    to much (a zip bomb) costs no more memory than an honest one.

    @raise IntegrityError: the payload is not one zstd frame of exactly
        C{fileBytes} bytes.
    """
    module = zstandard()
    try:
        declared: Optional[int] = module.frame_content_size(payload)
    except module.ZstdError:
        raise IntegrityError("a compressed block is not a zstd frame")
    if declared != fileBytes:
        raise IntegrityError(
            "a compressed block announced {} bytes but its frame says {}".format(fileBytes, declared)
        )
    try:
        data = module.ZstdDecompressor().decompress(payload, max_output_size=fileBytes)
    except module.ZstdError as e:
        raise IntegrityError("a compressed block could not be decoded: {}".format(e))
    if len(data) != fileBytes:
        raise IntegrityError("a compressed block decoded to {} bytes, not {}".format(len(data), fileBytes))
    return data


def sampleRatio(data) -> float:
    """
    Stored size over file size for C{data} compressed as a block would be:
    1.0 for data that does not shrink (the auto rule's sample).
    """
    if not data:
        return 1.0
    return min(1.0, len(zstandard().ZstdCompressor(level=LEVEL).compress(data)) / len(data))



def available() -> tuple:
    """
    The compression features this side can offer: C{("zstd", "raw-runs")}
    when the C{zstandard} package is installed (found without importing it).
    """
    import importlib.util

    return (ZSTD, RUNS) if importlib.util.find_spec("zstandard") is not None else ()


def choose(name: str, offered: tuple) -> str:
    """
    The compression C{compress NAME} asks for, if this side has it.

    @raise BadRequest: not C{none} nor an offered one.
    """
    if name not in (NONE, ZSTD) or (name != NONE and name not in offered):
        names = (NONE,) + tuple(n for n in offered if n != RUNS)
        raise BadRequest("unknown compression {!r}; this server offers {}".format(name[:40], ", ".join(names)))
    return name


def chooseFields(fields, offered: tuple) -> Tuple[str, int]:
    """
    What C{compress NAME [raw-runs]} asks for: the compression and the most
    file bytes a raw block may hold from then on, both ways.

    @raise BadRequest: an unknown or unoffered name, or C{raw-runs} where
        it does not apply (after C{none}, or not offered).
    """
    if not 1 <= len(fields) <= 2:
        raise BadRequest("compress takes a name and, after zstd, raw-runs")
    name = choose(fields[0], offered)
    if len(fields) == 1:
        return name, MAX_BLOCK
    if fields[1] != RUNS or name != ZSTD or RUNS not in offered:
        raise BadRequest("{!r} does not go after compress {}".format(fields[1][:40], name))
    return name, MAX_RUN
