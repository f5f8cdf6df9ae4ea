"""
The client half of the "limit" row: recv_into a 1 MiB buffer, sendfile up.

Prints one JSON line, ``{"seconds": T}``, timed from before the first connect
to after the last received file is closed, so interpreter start-up is not
counted (the harness falls back to wall time for clients that cannot do this).

Usage::

    python limit_client.py --port P download NAME DEST_FILE
    python limit_client.py --port P upload SRC_FILE NAME
    python limit_client.py --port P mget GLOB DEST_DIR
    python limit_client.py --port P concurrent DEST_DIR NAME [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time

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


def concurrent(port: int, dest_dir: str, names: list[str]) -> None:
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            download(port, name, os.path.join(dest_dir, name))
        except BaseException as e:  # reported below, after every thread ends
            errors.append(e)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError(f"{len(errors)} downloads failed: {errors[:3]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("op", choices=["download", "upload", "mget", "concurrent"])
    parser.add_argument("args", nargs="+")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.op == "download":
        download(args.port, *args.args)
    elif args.op == "upload":
        upload(args.port, *args.args)
    elif args.op == "mget":
        mget(args.port, *args.args)
    else:
        concurrent(args.port, args.args[0], args.args[1:])
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
