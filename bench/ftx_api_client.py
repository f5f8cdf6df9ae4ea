"""
The "ftx-api" row: ftx's client embedded in a program, one reactor, no CLI.

This is how an application would use ftx, so it measures the library without
the command line's start-up and output. Like the other script clients it
prints ``{"seconds": T}`` timed from before the first connect; ``hash`` also
prints the time of a second, repeated hash and the value it got.

Usage::

    python ftx_api_client.py --port P download NAME DEST_FILE
    python ftx_api_client.py --port P upload SRC_FILE NAME
    python ftx_api_client.py --port P mget MASK DEST_DIR
    python ftx_api_client.py --port P concurrent DEST_DIR NAME [NAME ...]
    python ftx_api_client.py --port P hash NAME
"""

from __future__ import annotations

import argparse
import json
import os
import time

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.endpoints import clientFromString
from twisted.internet.task import react


def _connect(reactor, port: int):
    from ftx.client import connect

    return connect(reactor, clientFromString(reactor, f"tcp:127.0.0.1:{port}"))


@inlineCallbacks
def _one_session(reactor, port: int, op: str, args: list[str]):
    client = yield _connect(reactor, port)
    extra = {}
    if op == "download":
        yield client.sget(args[0], args[1])
    elif op == "upload":
        yield client.put(args[0], args[1])
    elif op == "mget":
        yield client.mget(args[0], args[1])
    elif op == "hash":
        # The first hash reads the whole file on the server; the second shows
        # whether the server remembers it.
        first = time.perf_counter()
        result = yield client.hash(args[0])
        second = time.perf_counter()
        yield client.hash(args[0])
        extra = {
            "first": second - first,
            "repeat": time.perf_counter() - second,
            "result": repr(result),
        }
    yield client.quit()
    return extra


@inlineCallbacks
def _download_many(reactor, port: int, dest_dir: str, names: list[str]):
    # Connect all first, then start every download, so the case measures
    # concurrent transfers rather than a connect storm.
    clients = yield gatherResults([_connect(reactor, port) for _ in names])
    yield gatherResults(
        [c.sget(n, os.path.join(dest_dir, n)) for c, n in zip(clients, names)]
    )
    yield gatherResults([c.quit() for c in clients])
    return {}


@inlineCallbacks
def main(reactor, argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "op", choices=["download", "upload", "mget", "concurrent", "hash"]
    )
    parser.add_argument("args", nargs="+")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.op == "concurrent":
        extra = yield _download_many(reactor, args.port, args.args[0], args.args[1:])
    else:
        extra = yield _one_session(reactor, args.port, args.op, args.args)
    print(json.dumps({"seconds": time.perf_counter() - start, **extra}))


if __name__ == "__main__":
    react(main)
