"""
What C{twistd ftx} runs: L{ftx.tap}'s options and service, and one thing
more that only a whole server process may do.

Twisted's TCP transport imports pyOpenSSL, and with it the cryptography
library, whenever they are installed, whether or not anything uses TLS:
about 13 MiB of a plain server's 48 MiB resident memory, measured here. A
server whose endpoint is not TLS marks pyOpenSSL as absent before the
reactor is imported, so Twisted builds its transports without it. This is
done here, not in L{ftx.tap}, because programs and tests that build a
server in-process may want TLS elsewhere in the same process.
"""

from __future__ import annotations

import sys

from ftx.tap import Options as _Options
from ftx.tap import makeService

__all__ = ["Options", "makeService"]

_TLS_SCHEMES = ("ssl", "tls", "txtorcon", "tor", "onion")


def _usesTLS(options) -> bool:
    scheme = options["port"].split(":", 1)[0].lower()
    return scheme in _TLS_SCHEMES or options.get("client-ca") is not None


class Options(_Options):
    def postOptions(self) -> None:
        super().postOptions()
        if not _usesTLS(self) and "OpenSSL" not in sys.modules and "twisted.internet.tcp" not in sys.modules:
            sys.modules["OpenSSL"] = None  # type: ignore[assignment]
