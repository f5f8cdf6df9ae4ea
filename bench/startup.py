"""
The floor under an C{ftx} command's start-up, and where the command stands
on it (issue 14, item 3).

Usage::

    python bench/startup.py [--reps N] [--server HOST:PORT] [--importtime]
                            [--before SRC] [--instructions]

Times, as whole processes from fork to exit, in one interleaved run (every
rep runs each probe once, in an order rotated from rep to rep, after one
warm-up rep): C{python -c pass}; importing attrs and zope.interface;
Twisted's C{defer} and C{tcp} modules; the bare reactor; the reactor as the
C{ftx} command imports it (TLS left out, L{ftx._io.lazymodules} applied);
C{ftx --version}; C{ftx df}, C{ftx list} and C{ftx hash} against a local
server (started here on 127.0.0.1 unless C{--server} names one). Prints a
Markdown table of the medians of wall and of user+sys CPU seconds (from
C{wait4}'s rusage, exact even for a process that lives 20 ms), and with
C{--importtime} the sum of C{python -X importtime}'s self times for each
probe (inflated by the measuring, but comparable before/after). With
C{--before SRC} (a folder holding an older C{ftx} package, e.g. from
C{git archive main ftx | tar -x -C SRC}), the C{ftx} probes also run with
that C{ftx} first on C{PYTHONPATH}, interleaved with the others. With
C{--instructions}, each probe also runs once under valgrind (cachegrind,
no cache simulation) for the instructions it executes: a count the load
of a shared machine does not change (valgrind must be installed).

On a shared machine the walls are noise, the CPU seconds and the ratios
within one run much less so: say which figures were taken under load.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
BIN = Path(PYTHON).parent
FTX = str(BIN / "ftx")

AS_FTX_DOES = (
    "from ftx._io import lazymodules, notls; notls.leaveOutTLS(); lazymodules.deferImports(); "
    "from twisted.internet import reactor"
)


def probes(address: str, before=None):
    """(name, argv, extra environment) of every probe, in table order."""
    server = ["--server", address]
    table = [(name, argv, {}) for name, argv in [
        ("python -c pass", [PYTHON, "-c", "pass"]),
        ("import attr, zope.interface", [PYTHON, "-c", "import attr, zope.interface"]),
        ("import twisted.internet.defer", [PYTHON, "-c", "import twisted.internet.defer"]),
        ("import twisted.internet.tcp", [PYTHON, "-c", "import twisted.internet.tcp"]),
        ("from twisted.internet import reactor", [PYTHON, "-c", "from twisted.internet import reactor"]),
        ("reactor as ftx imports it", [PYTHON, "-c", AS_FTX_DOES]),
        ("ftx --version", [FTX, "--version"]),
        ("ftx df", [FTX, *server, "df"]),
        ("ftx list (10 files)", [FTX, *server, "list"]),
        ("ftx hash NAME", [FTX, *server, "hash", "f1.txt"]),
    ]]
    if before:
        # Both with their package first on the path, so that both pay the
        # same for finding their modules.
        here = str(Path(__file__).resolve().parent.parent)
        ftxProbes = [(name, argv) for name, argv, _ in table if name.startswith("ftx")]
        table = [row for row in table if not row[0].startswith("ftx")]
        table += [(name, argv, {"PYTHONPATH": here}) for name, argv in ftxProbes]
        table += [(name + " (before)", argv, {"PYTHONPATH": before}) for name, argv in ftxProbes]
    return table


def timeOnce(argv, env) -> tuple:
    """Wall and user+sys CPU seconds of one run of C{argv}; it must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("{} failed ({}): {}".format(" ".join(argv), proc.returncode, err.decode()[-1000:]))
    return wall, usage.ru_utime + usage.ru_stime


def instructions(argv, env) -> float:
    """Millions of instructions one run of C{argv} executes (valgrind)."""
    result = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                             *argv], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=300)
    found = re.search(rb"I\s+refs:\s+([\d,]+)", result.stderr)
    return int(found.group(1).replace(b",", b"")) / 1e6 if found else float("nan")


def importSum(argv, env) -> float:
    """The sum of C{-X importtime}'s self times, in milliseconds."""
    if argv[0] == FTX:
        argv = [PYTHON, FTX, *argv[1:]]
    result = subprocess.run([PYTHON, "-X", "importtime", *argv[1:]], stdin=subprocess.DEVNULL,
                            capture_output=True, env=env, timeout=60)
    selfTimes = re.findall(rb"^import time:\s+(\d+) \|", result.stderr, re.M)
    return sum(int(t) for t in selfTimes) / 1000.0


class LocalServer:
    """C{twistd -n ftx} on 127.0.0.1, port 0, over a folder of 10 small files."""

    def __init__(self):
        self.folder = tempfile.TemporaryDirectory(prefix="ftx-startup-")
        root = Path(self.folder.name, "root")
        root.mkdir()
        for i in range(1, 11):
            (root / "f{}.txt".format(i)).write_bytes(b"file %d\n" % i)
        self.log = Path(self.folder.name, "twistd.log")
        self.proc = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "-l", str(self.log), "ftx",
             "--port", "tcp:0:interface=127.0.0.1", "--root", str(root)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.port = self._port()

    def _port(self) -> int:
        for _ in range(300):
            if self.log.exists():
                found = re.search(r"\(port (\d+)\)", self.log.read_text())
                if found:
                    return int(found.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise SystemExit("the ftx server did not start: see " + str(self.log))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.folder.cleanup()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=20, help="measured runs of each probe (default 20)")
    p.add_argument("--server", help="HOST:PORT of a running ftx server serving f1.txt (default: start one)")
    p.add_argument("--importtime", action="store_true", help="also sum -X importtime's self times")
    p.add_argument("--before", metavar="SRC", help="also run the ftx probes with the ftx package in SRC")
    p.add_argument("--instructions", action="store_true", help="also count instructions with valgrind")
    args = p.parse_args(argv)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    server = None if args.server else LocalServer()
    try:
        address = args.server or "127.0.0.1:{}".format(server.port)
        table = probes(address, args.before)
        walls = {name: [] for name, _, _ in table}
        cpus = {name: [] for name, _, _ in table}
        for rep in range(args.reps + 1):
            shift = rep % len(table)
            for name, command, extra in table[shift:] + table[:shift]:
                wall, cpu = timeOnce(command, dict(env, **extra))
                if rep:
                    walls[name].append(wall)
                    cpus[name].append(cpu)
        sums = {name: importSum(command, dict(env, **extra)) for name, command, extra in table} if args.importtime else {}
        counts = ({name: instructions(command, dict(env, **extra)) for name, command, extra in table}
                  if args.instructions else {})
    finally:
        if server is not None:
            server.stop()
    floor = statistics.median(walls["from twisted.internet import reactor"])
    print("| probe | wall ms (median of {}) | over reactor import ms | user+sys CPU ms |{}{}".format(
        args.reps, " importtime self sum ms |" if sums else "", " M instructions |" if counts else ""))
    print("|---|--:|--:|--:|{}{}".format("--:|" if sums else "", "--:|" if counts else ""))
    for name, _, _ in table:
        wall = statistics.median(walls[name])
        line = "| {} | {:.0f} | {:+.0f} | {:.0f} |".format(
            name, wall * 1000, (wall - floor) * 1000, statistics.median(cpus[name]) * 1000)
        if sums:
            line += " {:.0f} |".format(sums[name])
        if counts:
            line += " {:.0f} |".format(counts[name])
        print(line)
    print("\nload average at the end: {:.2f} {:.2f} {:.2f} on {} CPUs".format(*os.getloadavg(), os.cpu_count()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
