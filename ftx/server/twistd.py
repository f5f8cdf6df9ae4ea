"""
What C{twistd ftx} runs: L{ftx.server.tap}'s options and service, and, for a
server whose endpoint is not TLS, no TLS stack in the process
(L{ftx._io.notls}). It lives apart from L{ftx.server.tap} because programs and tests
that build a server in-process use L{ftx.server.tap} and may want TLS elsewhere.
"""

from __future__ import annotations

from ftx._io import notls
from ftx._io.endpoints import isTLS
from ftx.server.tap import Options as _Options
from ftx.server.tap import TLSNotInstalled
from ftx.server.tap import makeService

__all__ = ["Options", "makeService"]


class Options(_Options):
    def postOptions(self) -> None:
        try:
            super().postOptions()
        except TLSNotInstalled as e:
            # One line, not twistd's page of usage: nothing was mistyped.
            raise SystemExit("twistd ftx: {}".format(e))
        if not isTLS(self["port"]) and not isTLS(self["http-port"] or "") and self.get("client-ca") is None:
            notls.leaveOutTLS()
