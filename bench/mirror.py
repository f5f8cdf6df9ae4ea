"""
Mirror a tree of many files (issue 16, part 3): ``ftx mirror`` from empty,
then again after 1% of the files changed, beside ``rsync -a`` over the
same tree locally and ``lftp mirror`` against pyftpdlib.

The re-run must move only the changed files (checked from ``ftx mirror
--json``) and take at most 10% of the first run's time. Every tool copies
the same source tree, in turn, in one run (``--reps`` interleaves them);
wall seconds and CPU seconds (the client's user + sys from ``wait4``,
plus the server's from psutil) are printed as a Markdown table. On a shared
machine, wall time is noise: compare the CPU seconds and the ratios.

Usage: python bench/mirror.py [--files 10000] [--reps 1] [--keep DIR]
Needs: rsync and lftp (apt-get install -y rsync lftp), pyftpdlib in the
venv (bench/setup.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FTX = str(BIN / "ftx")
TWISTD = str(BIN / "twistd")
CHANGED = 0.01


def makeTree(top: Path, count: int, seed: int = 16) -> int:
    """
    C{count} files in 100 folders two deep: 85% up to 8 KiB, 14% up to
    128 KiB, 1% up to 4 MiB (about 33 KiB on average). Returns the bytes.
    """
    rng = random.Random(seed)
    total = 0
    block = rng.randbytes(4 << 20)
    for i in range(count):
        roll = rng.random()
        size = rng.randint(0, 8 << 10) if roll < 0.85 else (
            rng.randint(8 << 10, 128 << 10) if roll < 0.99 else rng.randint(1 << 20, 4 << 20))
        path = top / "d{:02d}".format(i % 10) / "e{:02d}".format(i // 10 % 10) / "f{:05d}.dat".format(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        offset = rng.randint(0, len(block) - size) if size < len(block) else 0
        path.write_bytes(block[offset:offset + size])
        total += size
    return total


def changeSome(top: Path, fraction: float, seed: int) -> List[str]:
    """
    Rewrite C{fraction} of the files with other content and size (and so a
    new modification time); returns their names.
    """
    rng = random.Random(seed)
    names = sorted(str(p.relative_to(top)) for p in top.rglob("*.dat"))
    chosen = rng.sample(names, max(1, int(len(names) * fraction)))
    for name in chosen:
        path = top / name
        path.write_bytes(path.read_bytes()[: rng.randint(0, 4096)] + rng.randbytes(rng.randint(1, 4096)))
    return sorted(chosen)


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitListening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port {}".format(port))


def timed(argv: List[str], cwd: Path) -> Tuple[float, float, str]:
    """
    Run C{argv}; its wall seconds, its CPU seconds (user + sys, from
    C{wait4}: itself and the children it waited for) and its stdout. The
    output goes to files, so that a long one never blocks the process.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        process = subprocess.Popen(argv, cwd=str(cwd), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError("{} failed ({}):\n{}".format(argv[0], process.returncode,
                                                            err.read().decode(errors="replace")))
        return wall, usage.ru_utime + usage.ru_stime, out.read().decode(errors="replace")


class Servers:
    """
    The ftx server and pyftpdlib, both serving the source tree; stopped
    by their PIDs.
    """

    def __init__(self, source: Path, logs: Path) -> None:
        self.processes: List[subprocess.Popen] = []
        self.ftxPort, self.ftpPort = freePort(), freePort()
        self._start([TWISTD, "-n", "--pidfile=", "ftx", "--root", str(source),
                     "--port", "tcp:{}:interface=127.0.0.1".format(self.ftxPort)], logs / "ftx-server.log")
        try:
            self._start([sys.executable, str(HERE / "pyftpd_server.py"), "--port", str(self.ftpPort),
                         "--root", str(source)], logs / "pyftpd.log")
            waitListening(self.ftxPort)
            waitListening(self.ftpPort)
        except BaseException:
            # One that did not come up must not leave the other running.
            self.stop()
            raise

    def _start(self, argv: List[str], log: Path) -> None:
        with open(log, "wb") as f:
            self.processes.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL))

    def cpu(self, index: int) -> float:
        """
        The CPU seconds (user + sys) server C{index} has used so far.
        """
        import psutil

        times = psutil.Process(self.processes[index].pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


#: Which server each tool talks to (an index into L{Servers.processes}).
SERVER_OF = {"ftx mirror": 0, "lftp mirror + pyftpdlib": 1}


def tools(servers: Servers, source: Path) -> Dict[str, Callable[[Path], List[str]]]:
    """
    Each peer's command that mirrors the source into C{target}.
    """
    return {
        "ftx mirror": lambda target: [FTX, "--server", "127.0.0.1:{}".format(servers.ftxPort), "-q",
                                      "mirror", ".", str(target), "--json"],
        "rsync -a (local)": lambda target: ["rsync", "-a", str(source) + "/", str(target) + "/"],
        "lftp mirror + pyftpdlib": lambda target: [
            "lftp", "-c", "set net:max-retries 1; open -u bench,bench ftp://127.0.0.1:{}; mirror / {}".format(
                servers.ftpPort, target)],
    }


def sameTree(a: Path, b: Path) -> bool:
    def listing(top: Path):
        return {str(p.relative_to(top)): p.stat().st_size for p in top.rglob("*") if p.is_file()}

    return listing(a) == listing(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one, removed)")
    args = parser.parse_args()
    # A timeout's SIGTERM stops the servers too (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ftx-bench-mirror-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source"
    shutil.rmtree(str(source), True)
    source.mkdir()
    size = makeTree(source, args.files)
    servers = Servers(source, work)
    rows: List[dict] = []
    try:
        for rep in range(args.reps):
            for name, command in tools(servers, source).items():
                target = work / "target"
                shutil.rmtree(str(target), True)
                target.mkdir()
                server = SERVER_OF.get(name)
                serverCpu = (lambda: servers.cpu(server)) if server is not None else (lambda: 0.0)
                before = serverCpu()
                firstWall, firstCpu, out = timed(command(target), work)
                firstServer = serverCpu() - before
                if name == "ftx mirror" and json.loads(out)["transferred"] != args.files:
                    raise RuntimeError("the first ftx mirror moved {} files".format(json.loads(out)["transferred"]))
                changed = changeSome(source, CHANGED, seed=rep * 10 + len(rows))
                before = serverCpu()
                againWall, againCpu, out = timed(command(target), work)
                againServer = serverCpu() - before
                moved = json.loads(out)["transferred"] if name == "ftx mirror" else None
                if moved is not None and moved != len(changed):
                    raise RuntimeError("the ftx re-run moved {} files, not the {} changed".format(moved, len(changed)))
                if not sameTree(source, target):
                    raise RuntimeError("{}: the copy differs from the source".format(name))
                rows.append({"tool": name, "rep": rep, "first": firstWall, "firstCpu": firstCpu,
                             "firstServer": firstServer, "again": againWall, "againCpu": againCpu,
                             "againServer": againServer, "changed": len(changed), "moved": moved})
                print("{}: first {:.2f} s, re-run {:.2f} s".format(name, firstWall, againWall), file=sys.stderr)
    finally:
        servers.stop()
        if not args.keep:
            shutil.rmtree(str(work), True)
    load = os.getloadavg()
    print("\n{} files, {:.0f} MiB; {:.0%} changed before the re-run; load average {:.1f} {:.1f} {:.1f} "
          "(2 cores: {}).\n".format(args.files, size / 2**20, CHANGED, *load,
                                   "loaded, wall times are noise" if load[0] > 1.5 else "quiet"))
    print("CPU s = client (user + sys, with its children) + server; rsync's other end is its own child.\n")
    print("| tool | rep | first run s | CPU s | re-run s | CPU s | re-run / first (wall) | (CPU) | files moved |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        first, again = r["firstCpu"] + r["firstServer"], r["againCpu"] + r["againServer"]
        print("| {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.1%} | {:.1%} | {} |".format(
            r["tool"], r["rep"], r["first"], first, r["again"], again, r["again"] / r["first"], again / first,
            "{} of {} changed".format(r["moved"], r["changed"]) if r["moved"] is not None else "-"))

if __name__ == "__main__":
    main()
