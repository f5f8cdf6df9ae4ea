"""
The stdlib ftplib client, driven the way a careful script would use it.

1 MiB blocks for both directions, passive mode, one control connection for
mget (NLST, then RETR per match), one thread and connection per file for the
concurrent case. Prints its own transfer time (see client_common.py).

Usage::

    python ftplib_client.py --port P download NAME DEST_FILE
    python ftplib_client.py --port P upload SRC_FILE NAME
    python ftplib_client.py --port P mget GLOB DEST_DIR
    python ftplib_client.py --port P concurrent DEST_DIR NAME [NAME ...]
"""

from __future__ import annotations

import fnmatch
import ftplib
import os

from client_common import parallel, run

BLOCK = 1 << 20
USER = "bench"
PASSWORD = "bench"


def _login(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=300)
    ftp.connect("127.0.0.1", port)
    ftp.login(USER, PASSWORD)
    return ftp


def _retrieve(ftp: ftplib.FTP, name: str, dest: str) -> None:
    with open(dest, "wb") as out:
        ftp.retrbinary(f"RETR {name}", out.write, blocksize=BLOCK)


def download(port: int, name: str, dest: str) -> None:
    ftp = _login(port)
    _retrieve(ftp, name, dest)
    ftp.quit()


def upload(port: int, src: str, name: str) -> None:
    ftp = _login(port)
    with open(src, "rb") as f:
        ftp.storbinary(f"STOR {name}", f, blocksize=BLOCK)
    ftp.quit()


def mget(port: int, glob: str, dest_dir: str) -> None:
    ftp = _login(port)
    # NLST with an explicit "." because Twisted's server refuses a bare NLST;
    # servers differ on whether names come back with the "./" prefix.
    listed = [n.rsplit("/", 1)[-1] for n in ftp.nlst(".")]
    names = sorted(n for n in listed if fnmatch.fnmatch(n, glob))
    for name in names:
        _retrieve(ftp, name, os.path.join(dest_dir, name))
    ftp.quit()


def concurrent(port: int, dest_dir: str, *names: str) -> None:
    parallel(lambda name: download(port, name, os.path.join(dest_dir, name)), list(names))


if __name__ == "__main__":
    run(
        __doc__,
        {"download": download, "upload": upload, "mget": mget, "concurrent": concurrent},
    )
