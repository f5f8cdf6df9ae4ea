"""
pyftpdlib as a peer server: its stock FTPServer, one user with write access.

Settings are pyftpdlib's defaults (sendfile for downloads, 64 KiB data
buffers, INFO logging as ``python -m pyftpdlib`` does), because the row is
meant to show what a user of the library gets without tuning.

Usage: python pyftpd_server.py --port PORT --root DIR
"""

from __future__ import annotations

import argparse

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

USER = "bench"
PASSWORD = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args()
    authorizer = DummyAuthorizer()
    # e l r: list and read; a d f m w: append, delete, rename, mkdir, write.
    authorizer.add_user(USER, PASSWORD, args.root, perm="elradfmw")
    handler = FTPHandler
    handler.authorizer = authorizer
    server = FTPServer(("127.0.0.1", args.port), handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
