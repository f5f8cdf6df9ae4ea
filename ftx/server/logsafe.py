"""
Log lines a client cannot forge: every string a server log event carries
has its control characters escaped, repr-style, before any observer sees
it.

A client chooses much of what the server logs (user names, file names,
masks, the text of refused commands, its TLS certificate's subject). Raw,
a CR or an ESC in one of them could start a fake log line or rewrite the
terminal of whoever reads the log (C{tail -f}); escaped, it shows as
C{\\r} or C{\\x1b}. Escaping in the logger rather than at each call means
a log line added later is covered without anyone remembering to.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger

__all__ = ["SafeLogger", "escapeControls"]

# C0 and C1 controls, DEL, the line and paragraph separators, and the
# invisible marks that reorder text on screen (bidirectional overrides and
# isolates), which can make a log line read as something it is not.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return "\\x{:02x}".format(code) if code < 0x100 else "\\u{:04x}".format(code)


def escapeControls(text: str) -> str:
    """
    C{text} with every control character written as Python writes it in a
    C{repr} (C{\\x1b}, C{\\x0d}, C{\\u202e}); other characters, backslashes
    included, are left as they are, so names read as they were sent.
    """
    return _UNSAFE.sub(_escape, text)


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return escapeControls(value)
    if isinstance(value, (bytes, bytearray)):
        return escapeControls(bytes(value).decode("utf-8", "backslashreplace"))
    return value


class SafeLogger(Logger):
    """
    A L{Logger} whose events carry only escaped strings (L{escapeControls}):
    for every logger of the server that may be handed client text. Values
    that are not strings (numbers, failures) pass unchanged; a format
    string is the program's own and is not touched.
    """

    def emit(self, level, format=None, **kwargs) -> None:
        Logger.emit(self, level, format, **{key: _safe(value) for key, value in kwargs.items()})
