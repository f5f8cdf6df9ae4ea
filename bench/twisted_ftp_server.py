"""
Twisted's own FTP server (twisted.protocols.ftp) as a peer server.

One account whose home is --root with write access, the way twisted.cred is
meant to be used: a checker for the password and a realm for the home
directory. Passive data ports are bound to 127.0.0.1 only, since the stock
PASV handler listens on every interface.

Usage: python twisted_ftp_server.py --port PORT --root DIR
"""

from __future__ import annotations

import argparse
import sys

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.protocols import ftp
from twisted.python import filepath, log

USER = "bench"
PASSWORD = "bench"


class _OneHomeRealm(ftp.BaseFTPRealm):
    """Every account lands in the same writable root."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.root = filepath.FilePath(root)

    def getHomeDirectory(self, avatarId):  # noqa: N802 - Twisted's name
        return self.root


class _LoopbackFTP(ftp.FTP):
    def getDTPPort(self, factory, interface=""):  # noqa: N802 - Twisted's name
        return super().getDTPPort(factory, interface="127.0.0.1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args()
    checker = InMemoryUsernamePasswordDatabaseDontUse()
    # The FTP protocol hands the checker text, not bytes, so store text.
    checker.addUser(USER, PASSWORD)
    factory = ftp.FTPFactory(Portal(_OneHomeRealm(args.root), [checker]))
    factory.protocol = _LoopbackFTP
    factory.allowAnonymous = False
    # Log like a twistd-run server would, so every server row pays for logging.
    log.startLogging(sys.stdout)
    reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
