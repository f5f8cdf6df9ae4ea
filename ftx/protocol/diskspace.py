"""
Disk space over UDP: a one-datagram question and a one-datagram answer,
for monitoring that should not open a connection (``ftx df --udp``). The
format is in ``docs/protocol.rst`` ("Disk space over UDP"); the server side
is L{ftx.server.udp}, the client side L{ftx.client.udp}.

Because a UDP source address can be forged, a request must be at least as
long as any answer: the server can never be used to send more bytes than
it was sent.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

__all__ = ["REQUEST_SIZE", "MAX_REQUEST_SIZE", "formatRequest", "parseRequest", "formatAnswer", "parseAnswer"]

#: Requests shorter than this are ignored; no answer is longer.
REQUEST_SIZE = 64
MAX_REQUEST_SIZE = 512
_TOKEN = re.compile(r"\A[A-Za-z0-9]{1,16}\Z")
_ANSWER = re.compile(r"\A212 (0|[1-9][0-9]{0,18}) (0|[1-9][0-9]{0,18}) ([A-Za-z0-9]{1,16})\Z")


def formatRequest(token: str) -> bytes:
    return ("df " + token).encode("ascii").ljust(REQUEST_SIZE, b" ")


def parseRequest(data: bytes) -> Optional[str]:
    """
    The token of a well-formed request, or L{None} for anything else.
    """
    if not REQUEST_SIZE <= len(data) <= MAX_REQUEST_SIZE:
        return None
    try:
        fields = data.decode("ascii").split()
    except UnicodeDecodeError:
        return None
    if len(fields) != 2 or fields[0] != "df" or not _TOKEN.match(fields[1]):
        return None
    return fields[1]


def parseAnswer(data: bytes) -> Optional[Tuple[int, int, str]]:
    try:
        match = _ANSWER.match(data.decode("ascii").rstrip())
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3)


def formatAnswer(total: int, free: int, token: str) -> bytes:
    return "212 {} {} {}".format(total, free, token).encode("ascii")
