"""
Test doubles for code that embeds ftx, like C{treq.testing}.

L{MemoryStorage} is an L{ftx.server.storage.IStorage} that keeps its files
in a dict: serve it with C{FtxServerFactory(MemoryStorage(...), reactor)}
and a client sees what it would see of a folder on disk, without a
temporary folder.
"""

from ftx.testing.memory import MemoryFile, MemoryStorage

__all__ = ["MemoryStorage", "MemoryFile"]
