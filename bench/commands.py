"""
Whole-process timings: how long a user waits for one ``ftx`` command.

Two cases of issue 14 are about the command rather than the bytes, and are
measured here with the wall clock of the process, start-up included:

``latency``
    ``ftx list`` of a 10-file folder, ``ftx hash NAME`` and ``ftx df``
    against ``lftp -c 'open ...; ls'`` on pyftpdlib, beside the floor every
    Twisted program pays: ``python -c 'from twisted.internet import reactor'``
    (and, for scale, ``python -c pass`` and ``ftx --version``).
``rerun``
    ``ftx mget '*'`` again over 1,000 x 64 KiB + one 1 GiB file that a first
    ``mget`` already brought (so they carry the server's mtime): rsync's
    quick check should make it cost nothing; then ``mget '*' --verify``, once
    with a cold local digest cache and then again, beside the reactor import
    and ``lftp mirror`` re-run against pyftpdlib (size and time compared, no
    content: the peer's quick check).

Every probe of a rep runs once, in an order rotated from rep to rep, after
one warm-up rep, like the transfer cases (runner.py). A probe's output is
checked (the names listed, the digest printed, the files still equal to
their sources), so a fast failure never passes for a fast command.
"""

from __future__ import annotations

import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import procs
from cases import Paths, Settings, empty_dir
from datasets import DataDir, Source, check
from rows import (PYFTPDLIB, PYTHON, FTX_SERVER, Argv, FtxCliClient, LftpClient, Row,
                  _q, ftx_env)
from runner import _start_server

REACTOR = "reactor import"
LATENCY_FILES = 10


@dataclass
class Probe:
    """One command to time: its argv, and what its output must show."""

    name: str
    argv: Argv
    env: dict
    #: stdout -> the problem with it, or None when it is right
    check: Callable[[str], Optional[str]] = lambda out: None
    #: a server whose CPU seconds are counted for this probe
    server_pid: Optional[int] = None


@dataclass
class Timing:
    wall: float
    cpu: float
    server_cpu: float
    problem: Optional[str] = None


@dataclass
class ProbeResult:
    probe: Probe
    timings: List[Timing] = field(default_factory=list)
    skipped: Optional[str] = None

    @property
    def good(self) -> List[Timing]:
        return [t for t in self.timings if t.problem is None]


def time_probe(probe: Probe, paths: Paths, tag: str, timeout: float) -> Timing:
    """Run ``probe`` once as a child process; its wall and CPU seconds."""
    slug = "".join(c if c.isalnum() else "_" for c in probe.name)[:40]
    before = procs.cpu_seconds(probe.server_pid) if probe.server_pid else 0.0
    run = procs.run_clients([probe.argv], paths.logs / tag / slug, timeout, procs.NoSampling(),
                            env=probe.env, cwd=paths.work)
    after = procs.cpu_seconds(probe.server_pid) if probe.server_pid else 0.0
    problem = "; ".join(run.failures[:2]) or probe.check(run.outputs[0] if run.outputs else "")
    return Timing(run.wall, run.cpu, max(0.0, after - before), problem)


def interleave(probes: List[ProbeResult], reps: int, warmup: int, paths: Paths, tag: str,
               timeout: float, progress,
               between: Optional[Callable[[], Dict[int, str]]] = None) -> None:
    """
    Run every probe ``warmup + reps`` times, rotating the order each rep.

    ``between`` runs after each rep and may name problems (files changed)
    by server PID, which mark that rep's timings of the probes against
    that server as failed.
    """
    active = [p for p in probes if not p.skipped]
    for i in range(warmup + reps):
        shift = i % len(active) if active else 0
        rep: List[tuple] = []
        for result in active[shift:] + active[:shift]:
            t = time_probe(result.probe, paths, tag, timeout)
            rep.append((result, t))
            label = "warm-up" if i < warmup else f"rep {i - warmup + 1}/{reps}"
            progress(f"  {tag} {result.probe.name:<34} {label:<9} {t.wall * 1000:7.0f} ms"
                     + (f"  FAILED: {t.problem}" if t.problem else ""))
        problems = between() if between else {}
        if i < warmup:
            continue
        for result, t in rep:
            problem = problems.get(result.probe.server_pid) if result.probe.server_pid else None
            if problem and t.problem is None:
                t.problem = problem
            result.timings.append(t)


def _cell(text: str) -> str:
    """Text that cannot break a Markdown table row (a program's output may hold '|')."""
    return " ".join(text.replace("|", "/").split())


def _fmt_time(seconds: float, unit: str) -> str:
    if unit == "ms":
        return f"{seconds * 1000:.0f}"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def table(title: str, results: List[ProbeResult], unit: str, server_cpu: bool) -> str:
    """A Markdown table of medians, with each figure over the reactor import."""
    cols = ["row", "median", "min–max", "over reactor import"]
    cols += ["server CPU s"] if server_cpu else []
    cols += ["client CPU s", "checked"]
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    base = next((statistics.median(t.wall for t in r.good) for r in results
                 if r.probe.name == REACTOR and r.good), None)
    for r in results:
        if r.skipped or not r.timings:
            lines.append(f"| {r.probe.name} | {_cell(r.skipped or 'no reps')} |" + " |" * (len(cols) - 2))
            continue
        bad = [t for t in r.timings if t.problem]
        checked = f"ok {len(r.timings)}" if not bad else \
            _cell(f"FAIL {len(bad)}/{len(r.timings)}: {bad[0].problem}")[:160]
        if not r.good:
            cells = ["failed", "", ""]
        else:
            walls = [t.wall for t in r.good]
            m = statistics.median(walls)
            over = "–" if base is None or r.probe.name == REACTOR else \
                f"reactor import {'+' if m >= base else '−'} {abs(m - base) * 1000:.0f} ms"
            cells = [f"{_fmt_time(m, unit)} {unit}",
                     f"{_fmt_time(min(walls), unit)}–{_fmt_time(max(walls), unit)}", over]
        timings = r.good or r.timings
        if server_cpu:
            cells.append(f"{statistics.median(t.server_cpu for t in timings):.2f}"
                         if r.probe.server_pid else "")
        cells += [f"{statistics.median(t.cpu for t in timings):.2f}", checked]
        lines.append(f"| {r.probe.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _names_listed(names: List[str]) -> Callable[[str], Optional[str]]:
    def check_(out: str) -> Optional[str]:
        missing = [n for n in names if n not in out]
        return f"{len(missing)} of {len(names)} names not listed (e.g. {missing[0]})" if missing else None
    return check_


def _prints(text: str, what: str) -> Callable[[str], Optional[str]]:
    def check_(out: str) -> Optional[str]:
        return None if text in out else f"output lacks {what}: {out.strip()[:80]!r}"
    return check_


def _nonempty(out: str) -> Optional[str]:
    return None if out.strip() else "printed nothing"


def _python(code: str) -> Probe:
    return Probe(REACTOR if "reactor" in code else f"python -c {code!r}",
                 [PYTHON, "-c", code], ftx_env())


def latency_reps(settings: Settings, reps: Optional[int]) -> int:
    """20 processes per command (quick: 6); ``--reps N`` lowers it to 4N (at least 5)."""
    default = 6 if settings.mode == "quick" else 20
    return default if reps is None else min(default, max(5, 4 * reps))


def run_latency(settings: Settings, paths: Paths, data: DataDir, reps: int, progress) -> str:
    """The ``latency`` case: small commands, whole processes, median of ``reps``."""
    tag = "latency"
    sources = data.ensure_many("latency", "l", LATENCY_FILES, settings.small_size)
    data.save()
    root = sources[0].path.parent
    names = [s.name for s in sources]
    cli = FtxCliClient()
    ftx_row = Row("ftx-cli", FTX_SERVER, cli, "ftx")
    peer_row = Row("pyftpdlib + lftp", PYFTPDLIB, LftpClient(), "peer")
    servers = []
    try:
        ftx = _start_server(ftx_row, root, paths, tag)
        servers.append(ftx)
        peer = _start_server(peer_row, root, paths, tag)
        servers.append(peer)
        env = ftx_row.env(paths.home)
        local = paths.recv / tag
        empty_dir(local)

        def ftx_probe(name: str, check_, *command: str) -> Probe:
            argv = cli._exe() + ["--server", f"127.0.0.1:{ftx.port}", "--dir", str(local), *command]
            return Probe(name, argv, env, check_, ftx.proc.pid)

        probes = [
            _python("pass"),
            _python("from twisted.internet import reactor"),
            Probe("ftx --version", cli._exe() + ["--version"], env, _nonempty),
            ftx_probe(f"ftx list ({LATENCY_FILES} files)", _names_listed(names), "list"),
            ftx_probe("ftx hash NAME", _prints(sources[0].sha1, "the file's SHA-1"),
                      "hash", sources[0].name),
            ftx_probe("ftx df", _nonempty, "df"),
            Probe("pyftpdlib + lftp ls", peer_row.client._argv(peer.port, "ls"),
                  peer_row.env(paths.home), _names_listed(names), peer.proc.pid),
        ]
        results = [ProbeResult(p) for p in probes]
        interleave(results, reps, 1, paths, tag, settings.timeout, progress)
    finally:
        for server in servers:
            procs.stop(server.proc)
    title = (f"latency: a small command, whole process, start-up included "
             f"(ms, median of {reps}; target: reactor import + 40 ms)")
    out = table(title, results, "ms", server_cpu=False)
    return out + ("\n- Each row is one process from fork to exit. \"over reactor import\" is "
                  "the row's median minus the median of `python -c 'from twisted.internet "
                  "import reactor'`, timed in the same reps.\n")


def run_rerun(settings: Settings, paths: Paths, data: DataDir, reps: int, progress) -> str:
    """
    The ``rerun`` case: ``mget '*'`` over files already here, and
    ``--verify``; beside it, ``lftp mirror`` doing the same against
    pyftpdlib (size and time compared, as rsync does).
    """
    tag = "rerun"
    label = f"{settings.big_size >> 30}G" if settings.big_size >= 1 << 30 else f"{settings.big_size >> 20}M"
    n = settings.mget_files
    sources: List[Source] = data.ensure_many(f"rerun-{n}", "r", n, settings.small_size)
    sources.append(data.ensure(f"rerun-{n}/big-{label}.bin", settings.big_size))
    data.save()
    root = sources[0].path.parent
    dest, peer_dest = paths.recv / tag, paths.recv / f"{tag}-lftp"
    cache = paths.work / "cache-rerun"
    cli = FtxCliClient()
    row = Row("ftx-cli", FTX_SERVER, cli, "ftx")
    peer_row = Row("pyftpdlib + lftp", PYFTPDLIB, LftpClient(), "peer")
    env = row.env(paths.home)
    # The quick check's local digest cache goes here, so the first --verify
    # of every run starts cold whatever earlier runs left.
    env["XDG_CACHE_HOME"] = str(cache)
    verify = "--verify" if cli._mentions("--verify", "mget") else None
    no_verify = ("n/a: this `ftx mget` has no --verify (the quick check, issue 14 item 4, "
                 "is not in the tree measured)")
    title = (f"rerun: `ftx mget '*'` again over {n} x 64 KiB + one {label}iB already here "
             f"(s, whole process, median of {reps}; target: reactor import + 0.2 s)")
    servers: list = []
    notes: List[str] = []
    try:
        for d in (dest, peer_dest, cache):
            empty_dir(d)
        ftx = _start_server(row, root, paths, tag)
        servers.append(ftx)
        peer = _start_server(peer_row, root, paths, tag)
        servers.append(peer)

        def mget(name: str, *extra: str) -> Probe:
            argv = cli._exe() + ["--server", f"127.0.0.1:{ftx.port}", "--dir", str(dest),
                                 "--quiet", "mget", "*", *extra]
            return Probe(name, argv, env, server_pid=ftx.proc.pid)

        def mirror(name: str) -> Probe:
            argv = peer_row.client._argv(peer.port, f"mirror --no-perms . {_q(peer_dest)}")
            return Probe(name, argv, peer_row.env(paths.home), server_pid=peer.proc.pid)

        first = _first_copy(mget("ftx mget '*' (first, into an empty folder)"), dest, sources,
                            paths, tag, settings.timeout, progress)
        peer_first = _first_copy(mirror("pyftpdlib + lftp mirror (first)"), peer_dest, sources,
                                 paths, tag, settings.timeout, progress)
        broken = "n/a: the first copy failed, so there is nothing to re-run"
        ftx_ok = not first.timings[0].problem
        snapshots = {ftx.proc.pid: (dest, _stat_all(dest, sources)),
                     peer.proc.pid: (peer_dest, _stat_all(peer_dest, sources))}
        cold = ProbeResult(mget("ftx mget '*' --verify (first, cache cold)", verify or ""),
                           skipped=broken if not ftx_ok else None if verify else no_verify)
        if cold.skipped is None:
            cold.timings.append(time_probe(cold.probe, paths, tag, settings.timeout))
        results = [
            ProbeResult(_python("from twisted.internet import reactor")),
            first, cold,
            ProbeResult(mget("ftx mget '*' (re-run)"), skipped=None if ftx_ok else broken),
            ProbeResult(mget("ftx mget '*' --verify (again)", verify or ""),
                        skipped=broken if not ftx_ok else None if verify else no_verify),
            peer_first,
            ProbeResult(mirror("pyftpdlib + lftp mirror (re-run)"),
                        skipped=None if not peer_first.timings[0].problem else broken),
        ]
        timed = [results[0], results[3], results[4], results[6]]
        interleave(timed, reps, 1, paths, tag, settings.timeout, progress,
                   between=lambda: _changed(snapshots, sources))
        for name, where in (("ftx", dest), ("lftp", peer_dest)):
            ok, problems = check([(where / s.name, s) for s in sources])
            notes.append(f"{name}'s copies after the last rep: {ok} of {len(sources)} equal "
                         "their sources" + (f"; {problems[0]}" if problems else "") + ".")
    finally:
        for server in servers:
            procs.stop(server.proc)
        for d in (dest, peer_dest, cache):
            shutil.rmtree(d, ignore_errors=True)
    notes.append("A re-run must leave every file as the first copy wrote it (size, mtime "
                 "and inode checked after each rep; a rep that rewrote a file fails). Server "
                 "CPU s shows whether the server hashed anything. `lftp mirror` compares "
                 "size and time from one MLSD listing, like rsync's quick check, and checks "
                 "no content.")
    return table(title, results, "s", server_cpu=True) + "\n" + "".join(f"- {n}\n" for n in notes)


def _first_copy(probe: Probe, dest: Path, sources: List[Source], paths: Paths, tag: str,
                timeout: float, progress) -> ProbeResult:
    """Run the copy that fills ``dest`` once, and check every file by SHA-1."""
    result = ProbeResult(probe)
    timing = time_probe(probe, paths, tag, timeout)
    result.timings.append(timing)
    ok, problems = check([(dest / s.name, s) for s in sources])
    if problems and not timing.problem:
        timing.problem = f"{len(problems)} files wrong: {problems[0]}"
    progress(f"  {tag} {probe.name} {timing.wall:.2f} s, {ok}/{len(sources)} files right")
    return result


def _stat_all(dest: Path, sources: List[Source]) -> Dict[str, tuple]:
    out = {}
    for s in sources:
        try:
            st = os.stat(dest / s.name)
            out[s.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            out[s.name] = None
    return out


def _changed(snapshots: Dict[int, tuple], sources: List[Source]) -> Dict[int, str]:
    """For each server PID whose client's folder changed since its snapshot, what changed."""
    out = {}
    for pid, (dest, snapshot) in snapshots.items():
        now = _stat_all(dest, sources)
        changed = [name for name in snapshot if now.get(name) != snapshot[name]]
        if changed:
            out[pid] = f"{len(changed)} files rewritten or changed (e.g. {changed[0]})"
    return out
