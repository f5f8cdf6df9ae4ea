"""
Reading a results Markdown file back: the tables ``run.py`` writes.

The plot (plot.py) and the target check (targets.py) work from the
Markdown rather than from the harness's objects, so that any results file,
including one committed before they existed, can be drawn and checked the
same way as the run that just ended.

A table is a ``### KEY: title`` heading followed by a pipe table; its rows
are kept as dicts of column name to cell text. Cells are never trusted to
hold numbers: :func:`number` reads the leading figure of a cell, or gives
``None`` for ``n/a: ...``, ``failed`` and empty cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

_NUMBER = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([^\s(|]*)")


@dataclass
class Table:
    """One ``###`` section of a results file."""

    key: str
    title: str
    columns: List[str]
    rows: List[Dict[str, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def row(self, name: str) -> Optional[Dict[str, str]]:
        """The row called ``name`` (exactly), if the table has it."""
        return next((r for r in self.rows if r.get("row") == name), None)

    def value(self, name: str, column: str = "median") -> Optional[float]:
        """The figure in ``column`` of row ``name``, or None."""
        r = self.row(name)
        return number(r.get(column, "")) if r else None


def number(cell: str) -> Optional[float]:
    """The leading number of a cell (``"1483 MB/s"`` gives 1483.0), or None."""
    m = _NUMBER.match(cell or "")
    return float(m.group(1)) if m else None


def unit(cell: str) -> str:
    """The unit after a cell's leading number (``"2361 files/s (155 MB/s)"``: files/s)."""
    m = _NUMBER.match(cell or "")
    return m.group(2) if m else ""


def _cells(line: str) -> List[str]:
    inner = line.strip()
    if inner.startswith("|"):
        inner = inner[1:]
    if inner.endswith("|"):
        inner = inner[:-1]
    return [c.strip() for c in inner.split("|")]


def parse(text: str) -> List[Table]:
    """Every table of a results file, in order."""
    tables: List[Table] = []
    current: Optional[Table] = None
    for line in text.splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
            key, _, rest = heading.partition(":")
            current = Table(key.strip(), rest.strip() or heading, [])
            tables.append(current)
        elif current is None:
            continue
        elif line.startswith("|"):
            cells = _cells(line)
            if not current.columns:
                current.columns = cells
            elif all(set(c) <= set("-:") and c for c in cells):
                continue  # the |---|---| separator
            else:
                cells += [""] * (len(current.columns) - len(cells))
                current.rows.append(dict(zip(current.columns, cells)))
        elif line.startswith("- ") and current.rows:
            current.notes.append(line[2:].strip())
    return tables


def load(path: Path) -> List[Table]:
    return parse(Path(path).read_text(encoding="utf-8"))


def by_key(tables: List[Table]) -> Dict[str, Table]:
    """Tables by key; a repeated key keeps the first."""
    out: Dict[str, Table] = {}
    for t in tables:
        out.setdefault(t.key, t)
    return out


def header_field(text: str, name: str) -> Optional[str]:
    """A ``- name: value`` line of the header (date, command, ...)."""
    for line in text.splitlines():
        if line.startswith(f"- {name}: "):
            return line[len(name) + 4:].strip()
        if line.startswith("### "):
            break
    return None
