"""
Sizes and durations as people write and read them, the same on the server's
command line and the client's: C{10G}, C{1.5MiB}, C{64k}; C{90}, C{15m},
C{1h30m}.

Sizes are binary (C{1K} is 1024 bytes, as C{--quota 10G} has always meant)
and printed in binary units (KiB, MiB, ...), so that what ftx prints can be
typed back. C{humanfriendly} parses sizes and durations, imported on first
use: the C{ftx} command starts faster without it. Sizes are printed as
C{rich}'s progress bars print them, so a listing and a bar agree.
"""

from __future__ import annotations

import re

__all__ = ["BINARY_UNITS", "parseSize", "parseDuration", "formatSize"]

BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def parseSize(text: str) -> int:
    """
    A byte count from C{1000}, C{64K}, C{10M}, C{2G}, C{1.5GiB} (binary
    multiples whatever the spelling).

    @raise ValueError: not a size; the message gives examples.
    """
    from humanfriendly import InvalidSize, parse_size

    try:
        value = parse_size(str(text).strip(), binary=True)
    except InvalidSize:
        raise ValueError("not a size: {!r} (examples: 1000, 64K, 10M, 2G, 1.5GiB)".format(text))
    if value < 0:
        raise ValueError("not a size: {!r} (it is negative)".format(text))
    return int(value)


def parseDuration(text: str) -> float:
    """
    Seconds from C{90}, C{90s}, C{15m}, C{24h}, C{7d} or C{1h30m}.

    @raise ValueError: not a duration; the message gives examples.
    """
    from humanfriendly import InvalidTimespan, parse_timespan

    value = str(text).strip().lower()
    try:
        # humanfriendly reads one number and unit; "1h30m" is summed here.
        pieces = re.findall(r"\s*(\d+(?:\.\d*)?\s*[a-z]*)", value)
        if not pieces or "".join(pieces).replace(" ", "") != value.replace(" ", ""):
            raise InvalidTimespan(value)
        seconds = sum(parse_timespan(piece.strip()) for piece in pieces)
    except InvalidTimespan:
        raise ValueError("not a duration: {!r} (examples: 30, 30s, 15m, 24h, 7d, 1h30m)".format(text))
    if seconds != seconds or seconds == float("inf"):
        raise ValueError("not a duration: {!r}".format(text))
    return float(seconds)


def formatSize(size: int) -> str:
    """
    C{size} in binary units with one decimal: C{"512 B"}, C{"1.5 MiB"},
    the way C{rich}'s progress bars print sizes (the unit is the largest
    one the size reaches, as C{rich.filesize} picks it), so that a listing
    and a bar agree and this module's L{parseSize} reads them back. Done
    here rather than by C{rich}: a listing has no use for the rest of it.
    """
    if size < 1024:
        return "{} B".format(size)
    exponent = 1
    while exponent < len(BINARY_UNITS) - 1 and size >= 1024 ** (exponent + 1):
        exponent += 1
    return "{:.1f} {}".format(size / 1024**exponent, BINARY_UNITS[exponent])
