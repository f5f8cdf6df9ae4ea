"""
Text from the server made safe to print on a terminal.

File names, error messages and the greeting are the server's choice. Raw,
an ESC or a C1 control starts a terminal sequence (set the window title,
rewrite lines, answer back), CR and BEL rewrite or ring, LF forges a line,
and a right-to-left override makes a name ending in C{gpj.exe} read as
one ending in C{exe.jpg} (the class of scp's CVE-2019-6109). L{printable} writes each of them as a
visible escape instead. C{--json} output needs none of this: JSON escapes
control characters itself, and C{ensure_ascii} everything else.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls and DEL, C1 controls (0x80-0x9f), the line and paragraph
# separators, the bidirectional marks, embeddings, overrides and isolates,
# and lone surrogates (undecodable bytes that would fail to print).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return "\\x{:02x}".format(code) if code < 0x100 else "\\u{:04x}".format(code)


def printable(text: object) -> str:
    """
    C{text} as a string with every character that could act on a terminal
    written as C{\\xNN} or C{\\uNNNN}; anything else is left as it is.
    """
    return _UNSAFE.sub(_escape, str(text))
