"""
How long a small C{ftx} command takes, next to the bare reactor import,
measured in one interleaved run (the machine may be shared: compare the
ratios and the CPU seconds, not the wall times of separate runs).

    python tools/latency.py --server 127.0.0.1:1234 --name f1.bin --runs 20

Each round runs every case once, in turn; the table gives the median wall
time, the median user+sys CPU time of the child, and the median of the
per-round differences to the reactor import. On a busy machine the least
CPU time of each case is the steadiest figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def timed(argv, env):
    """
    Run C{argv}; its wall time, and its own CPU time (user + system, from
    C{wait4}: the child's own figures, whatever else this process reaps).
    """
    start = time.perf_counter()
    # Run from / so that "python -c" finds ftx where PYTHONPATH (or the
    # installation) says, not in the current directory.
    child = subprocess.Popen(argv, env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit("{} failed with status {}".format(" ".join(argv), child.returncode))
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--server", required=True)
    parser.add_argument("--name", required=True, help="a file on the server, for 'ftx hash'")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--baseline", metavar="DIR", help="also run the commands with the ftx package found in DIR")
    args = parser.parse_args()
    ftx = [args.python, "-c", "from ftx.cli import main; main()"]  # as the console script does
    cases = {
        "reactor import": [args.python, "-c", "from twisted.internet import reactor"],
        "reactor, no TLS": [args.python, "-c", "import sys; sys.modules['OpenSSL'] = None; from twisted.internet import reactor"],
        "python -c pass": [args.python, "-c", "pass"],
        "ftx list": ftx + ["list"],
        "ftx hash": ftx + ["hash", args.name],
        "ftx df": ftx + ["df"],
    }
    env = dict(os.environ, FTX_SERVER=args.server)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    envs = {name: env for name in cases}
    if args.baseline:
        for name in [name for name in cases if name.startswith("ftx ")]:
            cases["baseline " + name] = cases[name]
            envs["baseline " + name] = dict(env, PYTHONPATH=args.baseline)
    results = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, argv in cases.items():
            results[name].append(timed(argv, envs[name]))
    base = results["reactor import"]
    print("{:<20} {:>9} {:>9} {:>9} {:>14} {:>14}".format(
        "case", "wall ms", "cpu ms", "min cpu", "wall - reactor", "cpu - reactor"))
    for name, rows in results.items():
        wall = statistics.median(w for w, _ in rows) * 1e3
        cpu = statistics.median(c for _, c in rows) * 1e3
        dwall = statistics.median(w - b[0] for (w, _), b in zip(rows, base)) * 1e3
        dcpu = statistics.median(c - b[1] for (_, c), b in zip(rows, base)) * 1e3
        least = min(c for _, c in rows) * 1e3
        print("{:<20} {:>9.1f} {:>9.1f} {:>9.1f} {:>+14.1f} {:>+14.1f}".format(name, wall, cpu, least, dwall, dcpu))


if __name__ == "__main__":
    main()
