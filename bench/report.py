"""
Markdown tables from case results, and the header that dates a run.

MB is 10^6 bytes and MiB is 2^20, as the column names say. Throughput is the
median over the measured reps; RSS is the highest peak seen in any rep; CPU
is the median per rep. Ratios compare medians: ×limit against the limit row,
×best peer against the fastest of the FTP server/client pairs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

from runner import CaseResult, RowResult

MiB = 1 << 20
COLUMNS = [
    "row", "median", "min–max", "×limit", "×best peer", "server RSS peak MiB",
    "server CPU s", "client RSS peak MiB", "client CPU s", "checked",
]


def _rate(result: CaseResult, seconds: float) -> float:
    if result.case.unit == "files/s":
        return result.files_per_rep / seconds
    return result.bytes_per_rep / seconds / 1e6


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _checked(rr: RowResult, files: int) -> str:
    bad = [r for r in rr.reps if r.failure or r.problems]
    if not bad:
        return f"ok {len(rr.reps)}×{files}"
    first = bad[0].failure or "; ".join(bad[0].problems[:2])
    return f"FAIL {len(bad)}/{len(rr.reps)}: {first}"[:160]


def case_table(result: CaseResult) -> str:
    unit = result.case.unit
    medians: Dict[str, float] = {}
    for rr in result.rows:
        if rr.good:
            medians[rr.row.name] = _rate(result, statistics.median(r.seconds for r in rr.good))
    limit = next((medians[r.row.name] for r in result.rows
                  if r.row.kind == "limit" and r.row.name in medians), None)
    peers = [medians[r.row.name] for r in result.rows
             if r.row.kind == "peer" and r.row.name in medians]
    best_peer = max(peers) if peers else None

    notes_after: List[str] = []
    lines = [f"### {result.case.title}", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join(["---"] * len(COLUMNS)) + "|")
    for rr in result.rows:
        name = rr.row.name
        if rr.skipped or not rr.reps:
            reason = rr.skipped or "no reps"
            lines.append(f"| {name} | {reason} |" + " |" * (len(COLUMNS) - 2))
            continue
        if name not in medians:
            cells = ["failed", "", "", ""]
        else:
            m = medians[name]
            rates = [_rate(result, r.seconds) for r in rr.good]
            med = f"{_fmt(m)} {unit}"
            if unit == "files/s":
                med += f" ({_fmt(m * result.bytes_per_rep / result.files_per_rep / 1e6)} MB/s)"
            cells = [
                med,
                f"{_fmt(min(rates))}–{_fmt(max(rates))}",
                _ratio(m, limit),
                _ratio(m, best_peer),
            ]
        reps = rr.reps
        cells += [
            f"{max(r.server_rss for r in reps) / MiB:.0f}",
            f"{statistics.median(r.server_cpu for r in reps):.2f}",
            f"{max(r.client_rss for r in reps) / MiB:.0f}",
            f"{statistics.median(r.client_cpu for r in reps):.2f}",
            _checked(rr, result.files_per_rep),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        derived = _transfer_row(result, rr, limit, best_peer, medians)
        if derived:
            lines.append(derived[0])
            notes_after.append(derived[1])
    notes = result.case.notes() + result.extra_notes + notes_after
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _transfer_row(result: CaseResult, rr: RowResult, limit: Optional[float],
                  best_peer: Optional[float], medians: Dict[str, float]):
    """
    For a row timed as a whole process whose start-up was probed: the row
    of its transfer alone (wall minus start-up, per rep), and a note that
    sets it against the API's transfer time. None for other rows.
    """
    pairs = [(r.seconds, r.startup) for r in rr.good if r.startup is not None]
    if not pairs or len(pairs) < len(rr.good) or result.case.unit == "files/s":
        return None
    transfers = [max(1e-6, wall - start) for wall, start in pairs]
    rates = [_rate(result, t) for t in transfers]
    m = statistics.median(rates)
    startup = statistics.median(start for _, start in pairs)
    name = f"{rr.row.name} transfer (wall − start-up)"
    cells = [f"{_fmt(m)} {result.case.unit}", f"{_fmt(min(rates))}–{_fmt(max(rates))}",
             _ratio(m, limit), _ratio(m, best_peer), "", "", "", "",
             f"start-up {startup:.3f} s"]
    row = f"| {name} | " + " | ".join(cells) + " |"
    note = (f"{name}: per rep, the process's wall time minus the wall time of "
            f"`ftx df` (start, import, connect, one request, quit) run right after "
            f"it against the same server; median start-up {startup:.3f} s.")
    api = medians.get("ftx-api")
    if api:
        transfer = statistics.median(transfers)
        api_seconds = result.bytes_per_rep / (api * 1e6)
        note += (f" Its median transfer {transfer:.3f} s is {transfer / api_seconds:.2f}x "
                 f"the API's {api_seconds:.3f} s (issue 14 target: at most 1.1x).")
    return row, note


def _ratio(value: float, base: Optional[float]) -> str:
    return f"{value / base:.2f}" if base else "–"


def hash_table(times: Dict[str, List[float]], size: int, reps: int) -> str:
    """The hash-1g table: hashlib here against ftx's ``hash`` over the API."""
    lines = [f"### hash-1g: SHA-1 of a {size >> 20} MiB file (MB/s of file hashed)", "",
             "| row | median | min–max | ×hashlib | seconds (median) |",
             "|---|---|---|---|---|"]
    base = None
    for key, label in (("hashlib", "hashlib.sha1 in-process"),
                       ("first", "ftx-api hash (first)"),
                       ("repeat", "ftx-api hash (repeat, cached?)")):
        vals = times.get(key) or []
        if not vals:
            lines.append(f"| {label} | failed | | | |")
            continue
        rates = [size / t / 1e6 for t in vals]
        med = statistics.median(rates)
        base = base or med
        lines.append(f"| {label} | {_fmt(med)} MB/s | {_fmt(min(rates))}–{_fmt(max(rates))}"
                     f" | {med / base:.2f} | {statistics.median(vals):.3f} |")
    if times.get("bad"):
        lines.append(f"\n- {len(times['bad'])} of {reps} reps failed or returned a wrong digest.")
    return "\n".join(lines) + "\n"


def _revision() -> str:
    """The commit measured, so a before and an after can be told apart."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        done = subprocess.run(["git", "-C", repo, "describe", "--always", "--dirty", "--abbrev=10"],
                              capture_output=True, text=True, timeout=10)
        log = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%s"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if done.returncode != 0:
        return "unknown (not a git checkout)"
    return f"`{done.stdout.strip()}` ({log.stdout.strip()[:80]})"


def header(mode: str, argv: List[str], workdir: str) -> str:
    """Date, machine and tool versions, so a table can be read later."""
    def out(cmd: List[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=10).stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return "not found"

    versions = []
    for mod in ("twisted", "pyftpdlib", "psutil"):
        try:
            m = __import__(mod)
            versions.append(f"{mod} {getattr(m, '__version__', getattr(m, '__ver__', '?'))}")
        except ImportError:
            versions.append(f"{mod} missing")
    return "\n".join([
        f"# ftx benchmark results ({mode})",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- command: `{' '.join(argv)}`",
        f"- uname -a: `{out(['uname', '-a'])}`",
        f"- nproc: {os.cpu_count()}",
        f"- python: {sys.version.split()[0]} ({sys.executable})",
        f"- ftx: {_revision()}",
        f"- {', '.join(versions)}; lftp: {out(['lftp', '--version'])}",
        f"- work dir: {workdir} ({out(['findmnt', '-n', '-o', 'FSTYPE,SOURCE', '-T', workdir])})",
        "",
    ])
