"""
Endpoint strings taken apart, for the parts of ftx that need a host, a
port or an interface out of one (the UDP side channel, TLS).
"""

from __future__ import annotations

from typing import Tuple

__all__ = ["endpointFields"]


def endpointFields(description: str) -> Tuple[str, list, dict]:
    """
    Split a Twisted endpoint string into kind, positional and keyword
    fields, honouring backslash escapes (C{interface=\\:\\:1}).
    """
    parts, current, escaped = [], "", False
    for char in description:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    positional = [p for p in parts[1:] if "=" not in p]
    keywords = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    return parts[0], positional, keywords
