"""
The client half of the "limit" row: recv_into a 1 MiB buffer, sendfile up.

Prints its own transfer time (see client_common.py).

Usage::

    python limit_client.py --port P download NAME DEST_FILE
    python limit_client.py --port P upload SRC_FILE NAME
    python limit_client.py --port P mget GLOB DEST_DIR
    python limit_client.py --port P concurrent DEST_DIR NAME [NAME ...]
"""

from __future__ import annotations

import os
import socket

from client_common import parallel, run
from limit_proto import LineSocket


def _connect(port: int) -> LineSocket:
    return LineSocket(socket.create_connection(("127.0.0.1", port), timeout=300))


def download(port: int, name: str, dest: str) -> None:
    conn = _connect(port)
    with conn.sock:
        conn.sendline(f"GET {name}")
        word, size = conn.readline().split(" ")
        if word != "SIZE":
            raise RuntimeError(f"unexpected reply {word!r}")
        with open(dest, "wb") as out:
            conn.recv_body(out, int(size))


def upload(port: int, src: str, name: str) -> None:
    conn = _connect(port)
    with conn.sock:
        conn.sendline(f"PUT {name} {os.path.getsize(src)}")
        if conn.readline() != "OK":
            raise RuntimeError("server refused the upload")
        conn.send_file(src)
        # DONE comes after the server closed the file: the upload is on the
        # server's disk (page cache) when the clock stops, as for FTP's 226.
        if conn.readline() != "DONE":
            raise RuntimeError("server did not confirm the upload")


def mget(port: int, glob: str, dest_dir: str) -> None:
    conn = _connect(port)
    with conn.sock:
        conn.sendline(f"MGET {glob}")
        # Bounded by the server's END line; the cap only guards a broken peer.
        for _ in range(10_000_000):
            fields = conn.readline().split(" ")
            if fields[0] == "END":
                return
            if fields[0] != "FILE" or len(fields) != 3:
                raise RuntimeError(f"unexpected reply {fields!r}")
            with open(os.path.join(dest_dir, fields[1]), "wb") as out:
                conn.recv_body(out, int(fields[2]))
        raise RuntimeError("too many files")


def concurrent(port: int, dest_dir: str, *names: str) -> None:
    parallel(lambda name: download(port, name, os.path.join(dest_dir, name)), list(names))


if __name__ == "__main__":
    run(
        __doc__,
        {"download": download, "upload": upload, "mget": mget, "concurrent": concurrent},
    )
