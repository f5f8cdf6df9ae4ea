"""
The ftx server: L{FtxServerFactory} over an L{IStorage}, run by
``twistd ftx`` (L{ftx.server.tap}) or listened on by a program of its own::

    from twisted.internet.endpoints import serverFromString
    from ftx.server import FtxServerFactory, FilesystemStorage

    factory = FtxServerFactory(FilesystemStorage("files"), reactor)
    serverFromString(reactor, "tcp:1234").listen(factory)
"""

from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory, FtxServerProtocol, ServerPolicy
from ftx.server.storage import IStorage, StoredFile

__all__ = ["FtxServerFactory", "FtxServerProtocol", "ServerPolicy", "IStorage", "StoredFile", "FilesystemStorage"]
