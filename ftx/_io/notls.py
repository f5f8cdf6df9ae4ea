"""
Keeping the TLS stack out of a process that will not use it.

Twisted's TCP transport imports pyOpenSSL, and with it the cryptography
library, whenever they are installed, whether or not anything uses TLS.
Measured here that is about 13 MiB of a plain server's 48 MiB resident
memory, and 0.1 s of every C{ftx} command's start-up. A process that knows
before importing the reactor that it needs no TLS can mark pyOpenSSL as
absent, and Twisted then builds its transports without it.

Only whole programs may do this (C{twistd ftx}, the C{ftx} command): a
library or a test suite that builds a server in-process cannot know what
else in its process wants TLS. Whether an address asks for TLS is
L{ftx._io.endpoints.isTLS}.
"""

from __future__ import annotations

import sys

__all__ = ["leaveOutTLS"]


def leaveOutTLS() -> bool:
    """
    Keep pyOpenSSL from being imported from now on, unless it or Twisted's
    TCP support already is. Returns whether it is left out.
    """
    if "OpenSSL" in sys.modules or "twisted.internet.tcp" in sys.modules:
        return sys.modules.get("OpenSSL", "") is None
    sys.modules["OpenSSL"] = None  # type: ignore[assignment]
    return True
