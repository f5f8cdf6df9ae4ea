"""
Draw a results file as bar charts: one panel per case, the limit as a line.

Usage::

    python bench/plot.py RESULTS.md [-o OUT.png]

Without ``-o`` the PNG goes next to the Markdown file, with the same stem.
``run.py`` calls :func:`render_file` on the table it has just written, so the
plot of a run and the plot of an old results file are drawn by the same code
from the same text (results.py reads it back).

Each panel shows one figure per row: the median (MB/s, files/s, ms or s),
or, for the stalled reader, the server's peak RSS. The baseline row (the
limit, ``hashlib`` for hashing, the bare reactor import for command
latency) is drawn as a dashed line rather than a bar, ftx's rows stand out
in orange, and cases that differ only in where the files live (``mget-1000
(disk)`` and ``(tmpfs)``) share a panel as grouped bars. Where issue 14 sets
a target that is not a ratio to the baseline (reactor import + 40 ms, at
most 48 MiB, ...), it is a dotted red line.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results  # noqa: E402
from results import Table, number, unit  # noqa: E402

#: Rows drawn as a line: what the others are measured against.
BASELINES = ("limit", "hashlib.sha1 in-process", "reactor import")
#: Rows left out of the bars, with why (they would flatten the panel).
LEFT_OUT = {"ftx-api hash (repeat, cached?)": "repeat from the digest cache"}
#: Units where a shorter bar is the better one.
LOWER_IS_BETTER = {"ms", "s", "MiB", "KiB"}

FTX_COLOUR = "#e66101"
PEER_COLOUR = "#5e81ac"
OTHER_COLOUR = "#9e9e9e"
HATCHES = ["", "//", "..", "xx"]
LINE_STYLES = ["--", "-.", ":", (0, (5, 1))]


def _targets(key: str) -> Optional[Callable[[Optional[float]], Optional[Tuple[str, float]]]]:
    """Issue 14's absolute targets for a table, as a function of its baseline."""
    if key == "latency":
        return lambda base: ("target: reactor import + 40 ms", base + 40) if base else None
    if key == "rerun":
        return lambda base: ("target: reactor import + 0.2 s", base + 0.2) if base else None
    if key == "stalled-reader":
        return lambda base: ("target: ≤ 48 MiB", 48.0)
    if key == "idle":
        return lambda base: ("target: ≤ 40 KiB", 40.0)
    return None


@dataclass
class Panel:
    """What one subplot shows."""

    key: str
    title: str
    unit: str
    series: List[str]
    #: row name -> one value per series (None: no figure, with a reason)
    bars: Dict[str, List[Optional[float]]] = field(default_factory=dict)
    reasons: Dict[str, str] = field(default_factory=dict)
    #: (label, value, series index) drawn as horizontal lines
    lines: List[Tuple[str, float, int]] = field(default_factory=list)
    targets: List[Tuple[str, float]] = field(default_factory=list)
    remarks: List[str] = field(default_factory=list)


def _column(table: Table) -> str:
    if "read the server RSS" in table.title and "server RSS peak MiB" in table.columns:
        return "server RSS peak MiB"
    return "median"


def _unit(table: Table, column: str) -> str:
    if column != "median":
        return "MiB"
    for r in table.rows:
        if number(r.get(column, "")) is not None:
            return unit(r[column])
    return ""


def panels(tables: List[Table]) -> List[Panel]:
    """The panels for a results file's tables, in the file's order."""
    out: List[Panel] = []
    by_group: Dict[str, Panel] = {}
    for table in tables:
        if "median" not in table.columns or "row" not in table.columns:
            continue
        m = re.match(r"^(.*?) \((.*)\)$", table.key)
        group, label = (m.group(1), m.group(2)) if m else (table.key, "")
        column = _column(table)
        panel = by_group.get(group)
        if panel is None:
            title = table.title if not label else re.sub(r",?\s*on (disk|tmpfs.*)$", "", table.title)
            panel = Panel(group, title, _unit(table, column), [])
            by_group[group] = panel
            out.append(panel)
        series = len(panel.series)
        panel.series.append(label)
        for values in panel.bars.values():
            values.append(None)
        base = None
        for r in table.rows:
            name = r.get("row", "?")
            value = number(r.get(column, ""))
            if name in BASELINES:
                if value is not None:
                    panel.lines.append((f"{name}{' (' + label + ')' if label else ''}", value, series))
                    base = base if base is not None else value
                continue
            if name in LEFT_OUT:
                if value is not None:
                    panel.remarks.append(f"{name}: {r.get('seconds (median)', '?')} s ({LEFT_OUT[name]})")
                continue
            values = panel.bars.setdefault(name, [None] * len(panel.series))
            values[series] = value
            if value is None:
                reason = r.get(column) or "no figure"
                panel.reasons[name] = reason if len(reason) <= 100 else reason[:97] + "..."
        target = _targets(group)
        if target is not None and not panel.targets:
            got = target(base)
            if got:
                panel.targets.append(got)
    return out


def _colour(name: str) -> str:
    if name.startswith("ftx"):
        return FTX_COLOUR
    if "+" in name or name.startswith(("lftp", "pyftpdlib", "twisted")):
        return PEER_COLOUR
    return OTHER_COLOUR


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _draw(ax, panel: Panel) -> None:
    names = list(panel.bars)
    n_series = max(1, len(panel.series))
    width = 0.8 / n_series
    top = max([v for vs in panel.bars.values() for v in vs if v is not None]
              + [v for _, v, _ in panel.lines] + [v for _, v in panel.targets] + [1e-9])
    for s, label in enumerate(panel.series or [""]):
        xs, heights, colours = [], [], []
        for i, name in enumerate(names):
            v = panel.bars[name][s] if s < len(panel.bars[name]) else None
            if v is None:
                continue
            xs.append(i - 0.4 + width * (s + 0.5))
            heights.append(v)
            colours.append(_colour(name))
        bars = ax.bar(xs, heights, width * 0.92, color=colours, edgecolor="black",
                      linewidth=0.4, hatch=HATCHES[s % len(HATCHES)],
                      alpha=1.0 if s == 0 else 0.75,
                      label=label or None)
        ax.bar_label(bars, labels=[_fmt(h) for h in heights], fontsize=7, padding=1)
    for i, name in enumerate(names):
        if all(v is None for v in panel.bars[name]):
            # Wrapped into at most three short columns, so that a long
            # reason stays inside the panel.
            reason = "\n".join(textwrap.wrap(panel.reasons.get(name, "n/a"), 34)[:3])
            ax.text(i, top * 0.02, reason, rotation=90, ha="center", va="bottom",
                    fontsize=6, color="#555555", clip_on=True)
    for label, value, s in panel.lines:
        ax.axhline(value, color="black", linestyle=LINE_STYLES[s % len(LINE_STYLES)],
                   linewidth=1.1, label=f"{label}: {_fmt(value)} {panel.unit}")
    for label, value in panel.targets:
        ax.axhline(value, color="#c00000", linestyle=":", linewidth=1.3,
                   label=f"{label} ({_fmt(value)} {panel.unit})")
    ax.set_xticks(range(len(names)))
    ax.set_xlim(-0.6, max(len(names), 3) - 0.4)
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    for tick, name in zip(ax.get_xticklabels(), names):
        if name.startswith("ftx"):
            tick.set_fontweight("bold")
            tick.set_color(FTX_COLOUR)
    better = "lower is better" if panel.unit in LOWER_IS_BETTER else "higher is better"
    ax.set_ylabel(f"{panel.unit} ({better})", fontsize=8)
    ax.set_ylim(0, top * 1.18)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(textwrap.fill(f"{panel.key}: {panel.title}", 58), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if panel.lines or panel.targets or len(panel.series) > 1:
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    if panel.remarks:
        ax.set_xlabel("\n".join(panel.remarks), fontsize=7)


def render(tables: List[Table], out: Path, heading: str = "ftx benchmark") -> Path:
    """Write the PNG of ``tables`` to ``out``; returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [p for p in panels(tables) if p.bars]
    if not shown:
        raise ValueError("no table with a median column to plot")
    cols = 3 if len(shown) > 4 else min(2, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, shown):
        _draw(ax, panel)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.suptitle(heading, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    tmp.replace(out)
    return out


def render_file(markdown: Path, out: Optional[Path] = None) -> Path:
    """Plot a results Markdown file (``out`` defaults to the same stem, .png)."""
    markdown = Path(markdown)
    text = markdown.read_text(encoding="utf-8")
    date = results.header_field(text, "date") or "undated"
    command = results.header_field(text, "command") or ""
    mode = "quick" if "--quick" in command else "full" if "--full" in command else ""
    heading = f"ftx benchmark, {date}" + (f" ({mode})" if mode else "") + f": {markdown.name}"
    return render(results.parse(text), out or markdown.with_suffix(".png"), heading)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="a results Markdown file written by run.py")
    p.add_argument("-o", "--output", type=Path, help="the PNG to write (default: RESULTS.png)")
    args = p.parse_args(argv)
    try:
        out = render_file(args.results, args.output)
    except (OSError, ValueError) as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
