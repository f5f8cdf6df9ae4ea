"""
The ftx client for Twisted programs: L{connect} fires with an
L{FtxClient} whose methods return Deferreds; results are L{Entry},
L{DiskSpace} and L{Transfer}; errors are the classes of L{ftx.errors}.

The names below are loaded on first use, so that the command line can
import the client's small modules (local files, results) before it has
decided whether the TLS stack is needed (L{ftx._io.notls}).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["connect", "endpointFromAddress", "FtxClient", "FtxClientProtocol", "Entry", "DiskSpace", "Transfer", "Progress"]

_HOMES = {
    "connect": "ftx.client.api",
    "endpointFromAddress": "ftx.client.api",
    "FtxClient": "ftx.client.api",
    "FtxClientProtocol": "ftx.client.api",
    "Progress": "ftx.client.api",
    "Entry": "ftx.client.results",
    "DiskSpace": "ftx.client.results",
    "Transfer": "ftx.client.results",
}

if TYPE_CHECKING:
    from ftx.client.api import (
        FtxClient,
        FtxClientProtocol,
        Progress,
        connect,
        endpointFromAddress,
    )
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
