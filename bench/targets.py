"""
Issue 14's targets, checked against a results file.

Usage::

    python bench/targets.py RESULTS.md

Prints a ``### targets`` table: each target, the figure the file holds for
it, the goal and whether it is met. ``run.py`` appends the same table to
the results it writes. Every figure is a ratio or a difference within the
one run (a file), never a comparison across runs; a target whose table or
row is missing (a case not run, a row that read n/a) says so instead of
passing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results  # noqa: E402
from results import Table  # noqa: E402

Tables = Dict[str, Table]


@dataclass
class Target:
    what: str
    goal: str
    #: tables -> (figure as text, met?) or None when not measured
    measure: Callable[[Tables], Optional[Tuple[str, bool]]]


def _ratio(key: str, row: str, base: str, at_least: float, column: str = "median"):
    def measure(t: Tables):
        table = t.get(key)
        a = table.value(row, column) if table else None
        b = table.value(base, column) if table else None
        if a is None or not b:
            return None
        return f"{a / b:.2f}x", a / b >= at_least
    return measure


def _transfer_vs_api(key: str, at_most: float):
    def measure(t: Tables):
        table = t.get(key)
        cli = table.value("ftx-cli transfer (wall − start-up)") if table else None
        api = table.value("ftx-api") if table else None
        if not cli or not api:
            return None
        times = api / cli  # rates in MB/s: time ratio is the inverse
        return f"{times:.2f}x the API's time", times <= at_most
    return measure


def _over_reactor(key: str, row: str, at_most_ms: float):
    def measure(t: Tables):
        table = t.get(key)
        if not table:
            return None
        cell = (table.row(row) or {}).get("median", "")
        value = results.number(cell)
        base = table.value("reactor import")
        if value is None or base is None:
            return None
        scale = 1000.0 if results.unit(cell) == "s" else 1.0
        over = (value - base) * scale
        sign = "+" if over >= 0 else "−"
        return f"reactor import {sign} {abs(over):.0f} ms", over <= at_most_ms
    return measure


def _at_most(key: str, rows: List[str], column: str, limit: float, unit: str):
    def measure(t: Tables):
        table = t.get(key)
        values = [v for v in (table.value(r, column) for r in rows) if v is not None] if table else []
        if not values:
            return None
        worst = max(values)
        return f"{worst:g} {unit}", worst <= limit
    return measure


TARGETS = [
    Target("1. download 1 GiB, `ftx` command (process wall) / limit", ">= 0.75x",
           _ratio("download-1g", "ftx-cli", "limit", 0.75)),
    Target("1. download 1 GiB, `ftx` command / pyftpdlib + lftp", ">= 1.2x",
           _ratio("download-1g", "ftx-cli", "pyftpdlib + lftp", 1.2)),
    Target("1. download: command's transfer (wall − start-up) / API's transfer", "<= 1.1x",
           _transfer_vs_api("download-1g", 1.1)),
    Target("2. upload 1 GiB, `ftx` command / upload limit", ">= 0.7x",
           _ratio("upload-1g", "ftx-cli", "limit", 0.7)),
    Target("2. upload 1 GiB, `ftx` command / pyftpdlib + lftp", ">= 1.2x",
           _ratio("upload-1g", "ftx-cli", "pyftpdlib + lftp", 1.2)),
    Target("3. `ftx list` of 10 files", "<= reactor import + 40 ms",
           _over_reactor("latency", "ftx list (10 files)", 40)),
    Target("3. `ftx hash NAME`", "<= reactor import + 40 ms",
           _over_reactor("latency", "ftx hash NAME", 40)),
    Target("3. `ftx df`", "<= reactor import + 40 ms",
           _over_reactor("latency", "ftx df", 40)),
    Target("4. re-run `mget '*'` over files already here", "<= reactor import + 200 ms",
           _over_reactor("rerun", "ftx mget '*' (re-run)", 200)),
    Target("4. `mget '*' --verify`, the second time", "<= reactor import + 200 ms",
           _over_reactor("rerun", "ftx mget '*' --verify (again)", 200)),
    Target("5. download 1 GiB, API / limit", ">= 0.85x",
           _ratio("download-1g", "ftx-api", "limit", 0.85)),
    Target("5. download 1 GiB, API / pyftpdlib + ftplib", ">= 1.0x",
           _ratio("download-1g", "ftx-api", "pyftpdlib + ftplib", 1.0)),
    Target("5. mget 1,000 x 64 KiB on disk, API / limit", ">= 0.9x",
           _ratio("mget-1000 (disk)", "ftx-api", "limit", 0.9)),
    Target("5. 100 x 10 MiB concurrent, API / limit", ">= 0.6x",
           _ratio("concurrent-100", "ftx-api", "limit", 0.6)),
    Target("5. stalled reader, ftx server RSS peak", "<= 48 MiB",
           _at_most("stalled-reader", ["ftx-cli", "ftx-api"], "server RSS peak MiB", 48, "MiB")),
    Target("5. idle connection, server RSS each", "<= 40 KiB",
           _at_most("idle", ["ftx server"], "median", 40, "KiB")),
    Target("5. `hash` of 1 GiB, ftx / hashlib.sha1", ">= 0.9x",
           _ratio("hash-1g", "ftx-api hash (first)", "hashlib.sha1 in-process", 0.9)),
]


def table(tables: List[Table]) -> str:
    """The ``### targets`` Markdown table for a results file's tables."""
    found = results.by_key(tables)
    lines = ["### targets: issue 14, from the tables of this run", "",
             "| target | measured | goal | met |", "|---|---|---|---|"]
    met = missing = 0
    for target in TARGETS:
        got = target.measure(found)
        if got is None:
            missing += 1
            lines.append(f"| {target.what} | not measured | {target.goal} | – |")
            continue
        figure, ok = got
        met += ok
        lines.append(f"| {target.what} | {figure} | {target.goal} | {'yes' if ok else '**no**'} |")
    lines += ["", f"- {met} of {len(TARGETS)} met, {missing} not measured in this file. "
              "Ratios are taken within this one run; on a loaded machine they move too."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="a results Markdown file written by run.py")
    args = p.parse_args(argv)
    try:
        tables = results.load(args.results)
    except OSError as e:
        print(f"targets.py: {e}", file=sys.stderr)
        return 1
    print(table([t for t in tables if t.key != "targets"]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
