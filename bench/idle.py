"""
What an idle connection costs an ftx server: resident memory before and
after N clients connect and sit idle (greeted, no command), per connection.

Usage::

    python bench/idle.py [--connections 1000] [--reps 3]

For each rep starts ``twistd ftx`` on a free loopback port over an empty
folder, waits for it to settle, opens the connections from this process,
waits until every greeting has arrived, samples the server's RSS, and
stops the server. Prints the idle RSS, the RSS with the connections open
and the difference per connection (median of the reps) in KiB. Only the
server it started is signalled, by PID.
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs  # noqa: E402
from rows import FTX_SERVER  # noqa: E402

KiB = 1024


def _rss(pid: int) -> int:
    with open("/proc/{}/status".format(pid)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KiB
    raise RuntimeError("no VmRSS for {}".format(pid))


def _settled(pid: int, seconds: float = 1.0) -> int:
    """
    The server's RSS once it stops changing (bounded wait).
    """
    last = _rss(pid)
    for _ in range(20):
        time.sleep(seconds / 4)
        now = _rss(pid)
        if now == last:
            return now
        last = now
    return last


def _openIdle(port: int, count: int, timeout: float = 60.0):
    sockets = []
    deadline = time.monotonic() + timeout
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sockets.append(s)
    for s in sockets:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        greeting = s.recv(1024)
        if not greeting.startswith(b"220 "):
            raise RuntimeError("unexpected greeting: {!r}".format(greeting[:80]))
    return sockets


def measure(connections: int, reps: int, progress=None) -> List[Tuple[int, int]]:
    """
    Per rep, the fresh server's settled RSS idle and with ``connections``
    idle connections open, in bytes.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = connections + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    out = []
    with tempfile.TemporaryDirectory(prefix="ftx-idle-") as work:
        root = Path(work) / "root"
        root.mkdir()
        for rep in range(reps):
            # A fresh server each rep: memory freed by the last rep's
            # connections would otherwise be reused and hide the cost.
            port = procs.free_port()
            argv = FTX_SERVER.argv(port, root) + ["--max-connections", str(connections + 10)]
            server = procs.spawn(argv, Path(work) / "server-{}".format(rep))
            try:
                procs.wait_listening(server, port)
                # One connection first, so that state built on first use is
                # not counted as the idle connections' cost.
                for s in _openIdle(port, 1):
                    s.close()
                idle = _settled(server.pid)
                sockets = _openIdle(port, connections)
                loaded = _settled(server.pid)
                for s in sockets:
                    s.close()
            finally:
                procs.stop(server)
            out.append((idle, loaded))
            if progress is not None:
                progress("rep {}: idle {:.1f} MiB, {} connections {:.1f} MiB, {:.1f} KiB each".format(
                    rep + 1, idle / KiB / KiB, connections, loaded / KiB / KiB,
                    (loaded - idle) / connections / KiB))
    return out


def table(samples: List[Tuple[int, int]], connections: int) -> str:
    """The ``idle`` table of a results file (median KiB per connection)."""
    each = [(loaded - idle) / connections / KiB for idle, loaded in samples]
    m = statistics.median(each)
    idle = statistics.median(i for i, _ in samples) / KiB / KiB
    loaded = statistics.median(l for _, l in samples) / KiB / KiB
    return "\n".join([
        "### idle: {} idle connections, server RSS per connection (KiB, median of {} fresh "
        "servers; target: at most 40 KiB)".format(connections, len(samples)),
        "",
        "| row | median | min–max | server RSS idle MiB | with the connections MiB | checked |",
        "|---|---|---|---|---|---|",
        "| ftx server | {:.1f} KiB | {:.1f}–{:.1f} | {:.1f} | {:.1f} | ok {}×{} greeted |".format(
            m, min(each), max(each), idle, loaded, len(samples), connections),
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    samples = measure(args.connections, args.reps, lambda line: print(line, file=sys.stderr))
    each = [(loaded - idle) / args.connections for idle, loaded in samples]
    print("idle connections: {:.1f} KiB each (median of {} reps of {})".format(
        statistics.median(each) / KiB, args.reps, args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
