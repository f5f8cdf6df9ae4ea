"""
What the Python client scripts share: argument parsing, timing, threads.

Every client script prints one JSON line, ``{"seconds": T}``, timed from
before its first connect to after its last file is closed. The harness
prefers that figure to the process's wall time, so that interpreter start-up
(tens of milliseconds, and more for Twisted) does not blur the comparison of
transfer code.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Callable, Dict, List

THREAD_JOIN_SECONDS = 600


def parallel(fn: Callable[[str], None], items: List[str]) -> None:
    """
    Call ``fn(item)`` for every item at once, one thread each.

    Raises if any call raised or did not end in time, so a failed transfer
    can never pass for a fast one.
    """
    errors: List[BaseException] = []

    def one(item: str) -> None:
        try:
            fn(item)
        except BaseException as e:  # collected and re-raised below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in items]
    for t in threads:
        t.start()
    deadline = time.monotonic() + THREAD_JOIN_SECONDS
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    if errors or stuck:
        raise RuntimeError(f"{len(errors)} failed, {stuck} stuck: {errors[:3]!r}")


def run(doc: str, ops: Dict[str, Callable[..., None]]) -> None:
    """
    Parse ``--port P OP ARG...``, run ``ops[OP](port, *ARGS)`` and print its time.
    """
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("op", choices=sorted(ops))
    parser.add_argument("args", nargs="+")
    args = parser.parse_args()
    start = time.perf_counter()
    ops[args.op](args.port, *args.args)
    print(json.dumps({"seconds": time.perf_counter() - start}))
