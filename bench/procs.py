"""
Starting, measuring and stopping the benchmark's child processes.

Every process the harness starts is recorded here by PID, and only those are
ever signalled: on normal exit, on an exception and at interpreter exit the
live ones are terminated, then killed. Children get a session of their own
so that a terminal's Ctrl-C reaches the harness alone and the harness decides
the order of shutdown.

Clients are reaped with ``wait4`` rather than ``Popen.wait`` because the
kernel's rusage gives their exact CPU time, which sampling would miss for a
process that lives a fraction of a second.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import psutil

SAMPLE_SECONDS = 0.05
MiB = 1 << 20

_started: Dict[int, subprocess.Popen] = {}
_lock = threading.Lock()


def spawn(argv: Sequence[str], log_stem: Path, env: Optional[dict] = None,
          cwd: Optional[Path] = None) -> subprocess.Popen:
    """
    Start ``argv`` with stdout and stderr going to ``log_stem``.out/.err.
    """
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{log_stem}.out", "wb") as out, open(f"{log_stem}.err", "wb") as err:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            env=env, cwd=cwd, start_new_session=True,
        )
    with _lock:
        _started[proc.pid] = proc
    return proc


def signal_own(proc: subprocess.Popen, sig: int) -> None:
    """
    Send ``sig`` to a process this module started, unless it is reaped.

    The check and the signal happen under the lock the reaper takes, so a
    reaped (and possibly reused) PID is never signalled.
    """
    with _lock:
        if proc.returncode is None and proc.pid in _started:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """
    Terminate one of our processes, kill it after ``grace`` seconds, reap it.
    """
    signal_own(proc, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    signal_own(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        signal_own(proc, signal.SIGKILL)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with _lock:
        _started.pop(proc.pid, None)


def stop_all() -> None:
    """Stop every process this module started that is still running."""
    with _lock:
        procs = list(_started.values())
    for proc in procs:
        stop(proc, grace=2.0)


atexit.register(stop_all)


def free_port() -> int:
    """
    A TCP port on 127.0.0.1 that was free a moment ago.

    Servers that take a fixed port (twistd's endpoint string) need one
    chosen up front; the tiny race with other programs is acceptable here.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> None:
    """
    Return once something accepts connections on ``port``; raise if ``proc``
    exits or ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not listening on port {port} after {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a live process and of its reaped children."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


class Sampler:
    """
    Samples the memory of groups of process trees every 50 ms, keeping peaks.

    Each sample reads a process's RSS and also its VmHWM, the kernel's own
    high-water mark, which catches a peak that falls between two samples.
    A group's peak is the larger of its summed RSS at any sample (what a
    client run as 100 processes uses together) and the highest single
    VmHWM. The server's high-water mark is reset at the start of each rep
    (``clear_refs``), so its peak belongs to that rep alone.
    """

    def __init__(self, max_seconds: float) -> None:
        self._groups: Dict[str, List[psutil.Process]] = {}
        self.peaks: Dict[str, int] = {}
        self._stop = threading.Event()
        self._max_seconds = max_seconds
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def track(self, group: str, pid: int, reset_peak: bool = False) -> None:
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            return
        if reset_peak:
            _reset_hwm(pid)
        with _lock:
            self._groups.setdefault(group, []).append(proc)
        self.peaks.setdefault(group, 0)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        while time.monotonic() < deadline:
            self.sample()
            if self._stop.wait(SAMPLE_SECONDS):
                break

    def sample(self) -> None:
        with _lock:
            groups = {g: list(ps) for g, ps in self._groups.items()}
        for group, procs in groups.items():
            total = 0
            for proc in procs:
                rss, hwm = _tree_memory(proc)
                total += rss
                self.peaks[group] = max(self.peaks[group], hwm)
            self.peaks[group] = max(self.peaks[group], total)


def _reset_hwm(pid: int) -> None:
    # "5" resets the peak RSS (Linux 4.0+); without it VmHWM is a lifetime peak.
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree_memory(proc: psutil.Process) -> tuple:
    """Summed RSS of a process and its descendants, and their highest VmHWM."""
    total = 0
    hwm = 0
    try:
        members = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0, 0
    for p in members:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
        hwm = max(hwm, _hwm(p.pid))
    return total, hwm


class NoSampling:
    """
    A stand-in for L{Sampler} where memory does not matter: a command of
    0.2 s needs no sampling thread competing with it for the two cores.
    """

    def track(self, group: str, pid: int, reset_peak: bool = False) -> None:
        pass


@dataclass
class ClientRun:
    """What one batch of client processes did."""

    wall: float = 0.0
    cpu: float = 0.0
    failures: List[str] = field(default_factory=list)
    outputs: List[str] = field(default_factory=list)
    timed_out: bool = False


def run_clients(
    argvs: List[Sequence[str]],
    log_dir: Path,
    timeout: float,
    sampler: Sampler,
    env: Optional[dict] = None,
    cwd: Optional[Path] = None,
    poll: Optional[Callable[[List[subprocess.Popen]], None]] = None,
) -> ClientRun:
    """
    Start every argv at once and wait for all of them, at most ``timeout`` s.

    ``poll`` is called about every 20 ms with the running processes; the
    stalled-reader case uses it to freeze the client. Processes still running
    at the deadline are killed and the run is marked failed.
    """
    result = ClientRun()
    done = threading.Event()
    remaining = [len(argvs)]
    ends: Dict[int, float] = {}
    usage: Dict[int, object] = {}

    def reap(proc: subprocess.Popen) -> None:
        # Wait without reaping first, so the PID stays ours until the lock is
        # held; then reap and record the exit status and rusage.
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        with _lock:
            try:
                _, status, ru = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                usage[proc.pid] = ru
            except ChildProcessError:
                proc.returncode = proc.returncode if proc.returncode is not None else -1
            ends[proc.pid] = time.perf_counter()
            _started.pop(proc.pid, None)
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    start = time.perf_counter()
    procs = []
    for i, argv in enumerate(argvs):
        proc = spawn(argv, log_dir / f"client-{i}", env=env, cwd=cwd)
        procs.append(proc)
        sampler.track("client", proc.pid)
        threading.Thread(target=reap, args=(proc,), daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        if poll is not None:
            poll([p for p in procs if p.returncode is None])
        done.wait(0.02)
    if not done.is_set():
        result.timed_out = True
        result.failures.append(f"timed out after {timeout:.0f} s")
        for proc in procs:
            signal_own(proc, signal.SIGCONT)
            signal_own(proc, signal.SIGKILL)
        done.wait(10)
    result.wall = (max(ends.values()) if ends else time.perf_counter()) - start
    for i, proc in enumerate(procs):
        ru = usage.get(proc.pid)
        if ru is not None:
            # ru_maxrss is not used: Linux carries the pre-exec image (this
            # harness's own RSS) into it, so it misreports small clients.
            result.cpu += ru.ru_utime + ru.ru_stime
        out = Path(log_dir / f"client-{i}.out").read_text(errors="replace")
        result.outputs.append(out)
        if proc.returncode != 0 and not result.timed_out:
            err = Path(log_dir / f"client-{i}.err").read_text(errors="replace")
            last = (err.strip().splitlines() or out.strip().splitlines() or ["?"])[-1]
            result.failures.append(f"exit {proc.returncode}: {last[:200]}")
    return result
