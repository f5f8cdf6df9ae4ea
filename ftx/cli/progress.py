"""
What the command line tells the user on stderr while it works: live
progress bars when stderr is a terminal, one-line notes, and errors.

Progress goes to stderr so that stdout stays clean for what a command
prints (listings, digests, figures). Bars appear only on a terminal and
never with C{--quiet}; in a pipe or a log the user gets plain lines. The
client calls the progress callbacks from the reactor thread while the
command runs in the main thread: C{rich.progress} guards its state with a
lock, so updates from either side are safe.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator, Optional

from ftx._io.units import BINARY_UNITS, formatSize
from ftx.cli.terminal import printable

__all__ = ["Reporter", "humanSize"]

#: Below this many columns the bar leaves out the byte counts, so that a
#: file's line never wraps (speed and time left matter more).
_NARROW = 80


def humanSize(size: int) -> str:
    """
    C{size} in binary units: C{"512 B"}, C{"1.5 MiB"} (the progress bars
    use the same units for sizes and rates).
    """
    return formatSize(size)


def _shorten(name: str, width: int = 36) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _layout(width: int):
    """
    The columns of a bar for a terminal C{width} columns wide, and the
    width left for the file name: everything on one line, sizes and rates
    both in binary units.
    """
    from rich import filesize
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column
    from rich.text import Text

    class BinarySpeedColumn(ProgressColumn):
        # rich's TransferSpeedColumn prints decimal units (MB/s) next to
        # DownloadColumn's binary ones (MiB): one system on one line.
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text("?", style="progress.data.speed")
            unit, suffix = filesize.pick_unit_and_suffix(int(speed), list(BINARY_UNITS), 1024)
            return Text("{:.1f} {}/s".format(speed / unit, suffix), style="progress.data.speed")

    nameWidth = min(36, max(8, width // 4))
    fixed = [(TaskProgressColumn(), 4), (BinarySpeedColumn(table_column=Column(width=12, no_wrap=True)), 12),
             (TimeRemainingColumn(), 7)]
    if width >= _NARROW:
        fixed.insert(1, (DownloadColumn(binary_units=True, table_column=Column(width=19, no_wrap=True)), 19))
    # One space between columns, and one spare so the cursor never wraps.
    spare = width - nameWidth - sum(w for _, w in fixed) - (len(fixed) + 1) - 1
    if spare < 4:
        # Very narrow: the name gives way to a bar that still shows.
        nameWidth, spare = max(4, nameWidth - (4 - spare)), 4
    columns = [
        TextColumn("{task.description}", markup=False,
                   table_column=Column(width=nameWidth, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=min(40, spare)),
    ] + [column for column, _ in fixed]
    return columns, nameWidth


def isTerminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Reporter:
    """
    Progress, notes and errors for one command or one shell session.

    C{live} is true when bars are drawn. Notes are suppressed by C{quiet};
    errors never are.
    """

    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.live = not quiet and isTerminal(self.stream)
        self._progress = None
        self._batch = None
        self._batchDone = 0
        self._files = []
        self._nameWidth = 36

    # -- lines ------------------------------------------------------------

    def _line(self, text: str) -> None:
        # Notes and errors carry names and messages from the server.
        text = printable(text)
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """
        Tell the user what happened (hidden by C{--quiet}).
        """
        if not self.quiet:
            self._line(text)

    def error(self, text: str) -> None:
        """
        One C{ftx: error: ...} line, shown even with C{--quiet}.
        """
        self._line("ftx: error: " + text)

    # -- bars -------------------------------------------------------------

    def _bars(self):
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress

            console = Console(file=self.stream, force_terminal=True)
            columns, self._nameWidth = _layout(console.width)
            self._progress = Progress(*columns, console=console, transient=True, refresh_per_second=8)
            self._progress.start()
        return self._progress

    def startBatch(self, label: str, count: int, total: int) -> None:
        """
        An overall bar for a batch of C{count} files, C{total} bytes; shown
        only for two files or more.
        """
        self._batchDone = 0
        if self.live and count > 1:
            progress = self._bars()
            self._batch = progress.add_task(_shorten("{} ({} files)".format(label, count), self._nameWidth),
                                            total=total or 1)

    def transfer(self, name: str, size: int) -> Optional[Callable[[str, int, int], None]]:
        """
        A progress callback for one file, or L{None} when nothing is shown.
        Call L{transferDone} when the file is finished or abandoned.
        """
        if not self.live:
            return None
        progress = self._bars()
        task = progress.add_task(_shorten(printable(name), self._nameWidth), total=size or None)
        self._files.append(task)
        batch = self._batch
        base = self._batchDone

        def update(_name: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)
            if batch is not None:
                progress.update(batch, completed=base + done)

        progress.refresh()
        return update

    def transferDone(self, size: int) -> None:
        self._batchDone += size
        if self._progress is not None:
            while self._files:
                self._progress.remove_task(self._files.pop())
            if self._batch is not None:
                self._progress.update(self._batch, completed=self._batchDone)
            # Draw now: a note printed next would otherwise bring back the
            # last frame, finished file included.
            self._progress.refresh()

    def close(self) -> None:
        """
        Take the bars off the screen; notes printed meanwhile stay.
        """
        if self._progress is not None:
            progress, self._progress = self._progress, None
            self._batch = None
            self._files = []
            progress.stop()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """
        Hold the live display while the user answers a question.
        """
        if self._progress is None:
            yield
            return
        self._progress.stop()
        try:
            yield
        finally:
            self._progress.start()
