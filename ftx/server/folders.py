"""
Folders: C{mkdir} and C{rmtree}, one part of a server connection.
"""

from __future__ import annotations

import time
from typing import Callable, Dict

from twisted.internet.defer import inlineCallbacks

from ftx.protocol import wire
from ftx.protocol.wire import decodeName, encodeName
from ftx.server.connection import checkArity


class Folders:
    """
    The folder commands of one connection. It reaches the protocol only
    through L{ftx.server.connection.IConnection}: rights are checked with
    C{permit} (a folder is made with the write right, removed with the
    delete right), and removing a tree runs in a worker thread.
    """

    def __init__(self, connection) -> None:
        self._connection = connection

    def commands(self) -> Dict[str, Callable]:
        return {"mkdir": self.mkdir, "rmtree": self.rmtree}

    def mkdir(self, args) -> None:
        checkArity(args, 1, 1, "mkdir NAME")
        name = decodeName(args[0])
        connection = self._connection
        connection.permit("write", name)
        connection.storage.makeFolder(name)
        connection.reply(wire.formatLine(wire.OK, "created", encodeName(name)))
        connection.logged("mkdir", name, 0, time.monotonic())

    @inlineCallbacks
    def rmtree(self, args):
        checkArity(args, 1, 1, "rmtree NAME")
        name = decodeName(args[0])
        connection = self._connection
        connection.permit("delete", name)
        started = time.monotonic()
        count = yield connection.threaded(connection.storage.removeFolder, name)
        connection.reply(wire.formatLine(wire.OK, "removed", encodeName(name), count))
        connection.logged("rmtree", name, count, started)
