"""
Running a case: servers up, reps interleaved across rows, every file checked.

Reps are interleaved (rep 1 of every row, then rep 2, ...) and the row order
rotates from rep to rep, so a burst of noise from a neighbour on this shared
machine spreads over all rows instead of sinking one. The first ``warmup``
reps fill the page cache and the servers' code paths and are thrown away.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import procs
from cases import Case, Paths, client_jobs
from datasets import Source, check
from rows import Row


@dataclass
class Rep:
    """One measured transfer of one row."""

    seconds: float
    server_rss: int
    server_cpu: float
    client_rss: int
    client_cpu: float
    checked: int
    problems: List[str]
    failure: Optional[str] = None
    #: wall seconds of the client's start-up probe, timed after this rep
    startup: Optional[float] = None


@dataclass
class RowResult:
    row: Row
    skipped: Optional[str] = None
    reps: List[Rep] = field(default_factory=list)

    @property
    def good(self) -> List[Rep]:
        return [r for r in self.reps if r.failure is None and not r.problems]


@dataclass
class CaseResult:
    case: Case
    rows: List[RowResult]
    bytes_per_rep: int
    files_per_rep: int
    extra_notes: List[str] = field(default_factory=list)


@dataclass
class _LiveServer:
    proc: object
    port: int


def _start_server(row: Row, root: Path, paths: Paths, tag: str) -> _LiveServer:
    port = procs.free_port()
    proc = procs.spawn(
        row.server.argv(port, root), paths.logs / tag / f"server-{row.slug}",
        env=row.env(paths.home), cwd=paths.work,
    )
    try:
        procs.wait_listening(proc, port)
    except RuntimeError as e:
        procs.stop(proc)
        err = Path(f"{paths.logs / tag / ('server-' + row.slug)}.err")
        last = (err.read_text(errors="replace").strip().splitlines() or [""])[-1]
        raise RuntimeError(f"{e}: {last[:200]}" if last else str(e)) from None
    return _LiveServer(proc, port)


def _reported_seconds(outputs: List[str]) -> Optional[float]:
    """The client's own timing line, when there is exactly one client."""
    if len(outputs) != 1:
        return None
    for line in reversed(outputs[0].strip().splitlines()):
        try:
            return float(json.loads(line)["seconds"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _one_rep(case: Case, row: Row, server: _LiveServer, paths: Paths, tag: str) -> Rep:
    case.reset(row)
    argvs, reason = client_jobs(case, row, server.port)
    assert argvs is not None, reason
    pid = server.proc.pid
    cpu_before = procs.cpu_seconds(pid)
    with procs.Sampler(case.s.timeout + 60) as sampler:
        sampler.track("server", pid, reset_peak=True)
        run = procs.run_clients(
            argvs, paths.logs / tag / row.slug, case.s.timeout, sampler,
            env=row.env(paths.home), cwd=paths.work, poll=case.poll(row),
        )
        sampler.sample()
    cpu_after = procs.cpu_seconds(pid)
    seconds = run.wall
    if row.client.reports_time:
        seconds = _reported_seconds(run.outputs) or run.wall
    if server.proc.poll() is not None:
        run.failures.append(f"server exited with {server.proc.returncode}")
    ok, problems = check(case.expected(row)) if not run.failures else (0, [])
    rep = Rep(
        seconds=seconds,
        server_rss=sampler.peaks.get("server", 0),
        server_cpu=max(0.0, cpu_after - cpu_before),
        client_rss=sampler.peaks.get("client", 0),
        client_cpu=run.cpu,
        checked=ok,
        problems=problems,
        failure="; ".join(run.failures[:3]) or None,
    )
    case.reset(row)
    rep.startup = _startup_seconds(case, row, server, paths, tag)
    return rep


def _startup_seconds(case: Case, row: Row, server: _LiveServer, paths: Paths,
                     tag: str) -> Optional[float]:
    """The wall time of the row's start-up probe, against the same server."""
    if not case.startup_probe:
        return None
    local = paths.recv / "startup"
    local.mkdir(parents=True, exist_ok=True)
    argv = row.client.startup(server.port, local)
    if argv is None:
        return None
    run = procs.run_clients([argv], paths.logs / tag / f"{row.slug}-startup", case.s.timeout,
                            procs.NoSampling(), env=row.env(paths.home), cwd=paths.work)
    return None if run.failures else run.wall


def run_case(case: Case, rows: List[Row], paths: Paths, progress) -> CaseResult:
    results = {row.name: RowResult(row) for row in rows}
    tag = case.key + ("-" + case.variant if hasattr(case, "variant") else "")
    active: List[Row] = []
    servers: Dict[str, _LiveServer] = {}
    try:
        for row in rows:
            if results[row.name].skipped:
                continue
            _, reason = client_jobs(case, row, 0)
            reason = case.skip(row) or reason
            if reason:
                results[row.name].skipped = reason
                continue
            case.reset(row)  # also makes an upload root before its server needs it
            try:
                servers[row.name] = _start_server(row, case.server_root(row), paths, tag)
            except RuntimeError as e:
                results[row.name].skipped = f"n/a: server did not start ({e})"
                continue
            active.append(row)
        total = case.warmup + case.reps
        for i in range(total):
            shift = i % len(active) if active else 0
            for row in active[shift:] + active[:shift]:
                rep = _one_rep(case, row, servers[row.name], paths, tag)
                label = "warm-up" if i < case.warmup else f"rep {i - case.warmup + 1}/{case.reps}"
                progress(f"  {tag} {row.name:<20} {label:<9} {rep.seconds:7.2f} s"
                         + (f"  FAILED: {rep.failure}" if rep.failure else "")
                         + (f"  CHECK: {rep.problems[:2]}" if rep.problems else ""))
                if i >= case.warmup:
                    results[row.name].reps.append(rep)
    finally:
        for server in servers.values():
            procs.stop(server.proc)
    bytes_, files = case.amount()
    return CaseResult(case, [results[r.name] for r in rows], bytes_, files)


def run_hash_case(source: Source, row: Row, reps: int, paths: Paths,
                  timeout: float, progress) -> Dict[str, List[float]]:
    """
    Time ``hash NAME`` through the ftx API against hashlib in this process.

    Before each rep the file's mtime is bumped (content unchanged), so a
    server that caches digests must hash again for the first call; the
    second call on the same connection shows the cached path.
    """
    from datasets import sha1_of

    times: Dict[str, List[float]] = {"hashlib": [], "first": [], "repeat": [], "bad": []}
    tag = "hash-1g"
    server = _start_server(row, source.path.parent, paths, tag)
    try:
        for i in range(reps):
            os.utime(source.path, None)
            start = time.perf_counter()
            ok = sha1_of(source.path) == source.sha1
            times["hashlib"].append(time.perf_counter() - start)
            with procs.Sampler(timeout + 60) as sampler:
                run = procs.run_clients(
                    [row.client.hash(server.port, source.name)], paths.logs / tag,
                    timeout, sampler, env=row.env(paths.home), cwd=paths.work,
                )
            info = None
            for line in reversed(run.outputs[0].strip().splitlines()):
                try:
                    info = json.loads(line)
                    break
                except ValueError:
                    continue
            if run.failures or not info or source.sha1 not in info.get("result", ""):
                times["bad"].append(1.0)
                progress(f"  hash-1g rep {i + 1}: FAILED {run.failures or info}")
                continue
            times["first"].append(info["first"])
            times["repeat"].append(info["repeat"])
            progress(f"  hash-1g rep {i + 1}: hashlib {times['hashlib'][-1]:.2f} s, "
                     f"ftx {info['first']:.2f} s, repeat {info['repeat']:.3f} s"
                     + ("" if ok else " (source changed!)"))
    finally:
        procs.stop(server.proc)
    return times


def median(values: List[float]) -> float:
    return statistics.median(values)
