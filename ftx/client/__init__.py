"""
The ftx client for Twisted programs: L{connect} fires with an
L{FtxClient} whose methods return Deferreds; results are L{Entry},
L{DiskSpace} and L{Transfer}; errors are the classes of L{ftx.errors}.
L{ClientTLS} holds TLS settings; L{FtxClientFactory} and
L{FtxClientProtocol} are there to be subclassed.

The names below are loaded on first use, so that the command line can
import the client's small modules (local files, results) before it has
decided whether the TLS stack is needed (L{ftx._io.notls}).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "connect",
    "endpointFromAddress",
    "ClientTLS",
    "FtxClient",
    "FtxClientFactory",
    "FtxClientProtocol",
    "Entry",
    "DiskSpace",
    "Transfer",
    "Progress",
]

_HOMES = {
    "connect": "ftx.client.api",
    "endpointFromAddress": "ftx.client.api",
    "ClientTLS": "ftx.client.api",
    "FtxClientFactory": "ftx.client.api",
    "FtxClient": "ftx.client.client",
    "Progress": "ftx.client.client",
    "FtxClientProtocol": "ftx.client.protocol",
    "Entry": "ftx.client.results",
    "DiskSpace": "ftx.client.results",
    "Transfer": "ftx.client.results",
}

if TYPE_CHECKING:
    from ftx.client.api import ClientTLS, FtxClientFactory, connect, endpointFromAddress
    from ftx.client.client import FtxClient, Progress
    from ftx.client.protocol import FtxClientProtocol
    from ftx.client.results import DiskSpace, Entry, Transfer


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError("module 'ftx.client' has no attribute {!r}".format(name))
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_HOMES))
