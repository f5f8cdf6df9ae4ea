"""
The server half of the "limit" row: sendfile out, recv_into in.

One thread per connection, blocking sockets: the simplest code whose speed is
bounded by the kernel rather than by Python. Only plain names directly in
--root are served, which is all the benchmark asks for.

Usage: python limit_server.py --port PORT --root DIR
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import socketserver

from limit_proto import LineSocket


def _checked_name(root: str, name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"refused name {name!r}")
    return os.path.join(root, name)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn = LineSocket(self.request)
        root = self.server.root  # type: ignore[attr-defined]
        # A connection carries a bounded number of requests: the harness
        # sends one, and anything else is not a benchmark client.
        for _ in range(16):
            line = conn.readline()
            if not line:
                return
            verb, _, rest = line.partition(" ")
            if verb == "GET":
                path = _checked_name(root, rest)
                conn.sendline(f"SIZE {os.path.getsize(path)}")
                conn.send_file(path)
            elif verb == "MGET":
                names = sorted(fnmatch.filter(os.listdir(root), rest))
                for name in names:
                    path = os.path.join(root, name)
                    conn.sendline(f"FILE {name} {os.path.getsize(path)}")
                    conn.send_file(path)
                conn.sendline(f"END {len(names)}")
            elif verb == "PUT":
                name, size = rest.rsplit(" ", 1)
                path = _checked_name(root, name)
                conn.sendline("OK")
                with open(path, "wb") as out:
                    conn.recv_body(out, int(size))
                conn.sendline("DONE")
            else:
                conn.sendline("ERR unknown request")
                return


class _Server(socketserver.ThreadingTCPServer):
    # The concurrent case opens 100 connections at once; the default
    # backlog of 5 would turn that burst into SYN retries of a second each.
    request_queue_size = 256
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args()
    with _Server(("127.0.0.1", args.port), _Handler) as server:
        server.root = os.path.abspath(args.root)  # type: ignore[attr-defined]
        server.serve_forever()


if __name__ == "__main__":
    main()
