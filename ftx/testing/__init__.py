"""
Test doubles for code that embeds ftx, like C{treq.testing}.

L{MemoryStorage} is an L{ftx.server.storage.IStorage} that keeps its files
in a dict: serve it with C{FtxServerFactory(MemoryStorage(...), reactor)}
and a client sees what it would see of a folder on disk, without a
temporary folder. L{connectInMemory} joins a client to a server over any
storage with no socket, no thread and no real time: requests complete when
the test calls C{flush()}, timers when it advances the clock.
"""

from ftx.testing.loopback import InlineReactor, InMemoryConnection, connectInMemory
from ftx.testing.memory import MemoryFile, MemoryStorage

__all__ = ["MemoryStorage", "MemoryFile", "connectInMemory", "InMemoryConnection", "InlineReactor"]
