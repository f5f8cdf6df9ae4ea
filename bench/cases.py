"""
The cases: what each one transfers, where, and how a result is checked.

A case knows its data, the server root each row gets, the client processes
one rep runs, and which received files must equal which sources. It knows
nothing of timing or tables; runner.py does the measuring for all of them.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import procs
from datasets import DataDir, Source
from rows import Argv, NotSupported, Row

MiB = 1 << 20


@dataclass
class Settings:
    """Sizes and repetitions of one run (--quick or --full)."""

    mode: str
    big_size: int
    mget_files: int
    concurrent_clients: int
    reps: int
    warmup: int
    memory_reps: int
    timeout: float
    small_size: int = 64 * 1024
    concurrent_size: int = 10 * MiB
    stall_after: int = 8 * MiB
    stall_seconds: float = 3.0


def settings_for(mode: str, reps: Optional[int], timeout: float) -> Settings:
    if mode == "quick":
        s = Settings(mode, 256 * MiB, 200, 20, reps=3, warmup=1, memory_reps=1,
                     timeout=timeout)
    else:
        s = Settings(mode, 1024 * MiB, 1000, 100, reps=5, warmup=1, memory_reps=3,
                     timeout=timeout)
    if reps is not None:
        s.reps = reps
        s.memory_reps = min(s.memory_reps, reps)
    return s


@dataclass
class Paths:
    """Everything the benchmark writes lives under ``work`` or ``shm``."""

    work: Path
    shm: Path

    def __post_init__(self) -> None:
        for p in (self.data, self.recv, self.up, self.logs, self.home):
            p.mkdir(parents=True, exist_ok=True)

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def recv(self) -> Path:
        return self.work / "recv"

    @property
    def up(self) -> Path:
        return self.work / "up"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def home(self) -> Path:
        return self.work / "home"


def _size_label(size: int) -> str:
    return f"{size >> 30}G" if size % (1 << 30) == 0 else f"{size >> 20}M"


def empty_dir(path: Path) -> None:
    """Make ``path`` an empty directory (only ever called on our own dirs)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


class Case:
    key = "?"
    title = "?"
    unit = "MB/s"
    #: "speed" cases rank rows by throughput; "memory" ones by server RSS
    focus = "speed"
    #: time the client's start-up (Client.startup) after each rep, so the
    #: table can show a whole-process row's transfer alone
    startup_probe = False

    def __init__(self, settings: Settings, paths: Paths) -> None:
        self.s = settings
        self.paths = paths
        self.warmup = settings.warmup
        self.reps = settings.reps

    def prepare(self, data: DataDir) -> None:
        """Make the source files (cheap when they already exist)."""

    def skip(self, row: Row) -> Optional[str]:
        return None

    def server_root(self, row: Row) -> Path:
        raise NotImplementedError

    def dest_dir(self, row: Row) -> Path:
        return self.paths.recv / self.key / row.slug

    def jobs(self, row: Row, port: int) -> List[Argv]:
        raise NotImplementedError

    def expected(self, row: Row) -> List[Tuple[Path, Source]]:
        raise NotImplementedError

    def reset(self, row: Row) -> None:
        """Remove what a rep received, so the next starts from nothing."""
        empty_dir(self.dest_dir(row))

    def amount(self) -> Tuple[int, int]:
        """Bytes and files one rep moves."""
        raise NotImplementedError

    def poll(self, row: Row) -> Optional[Callable[[list], None]]:
        return None

    def notes(self) -> List[str]:
        return []


class DownloadCase(Case):
    key = "download-1g"
    startup_probe = True

    def prepare(self, data):
        label = _size_label(self.s.big_size)
        self.title = f"download-1g: one {label}iB file, client pulls (MB/s)"
        self.source = data.ensure(f"big/big-{label}.bin", self.s.big_size)

    def server_root(self, row):
        return self.source.path.parent

    def jobs(self, row, port):
        return [row.client.download(port, self.source.name, self.dest_dir(row))]

    def expected(self, row):
        return [(self.dest_dir(row) / self.source.name, self.source)]

    def amount(self):
        return self.source.size, 1


class UploadCase(DownloadCase):
    key = "upload-1g"

    def prepare(self, data):
        super().prepare(data)
        self.title = self.title.replace("download-1g", self.key).replace("pulls", "pushes")

    def server_root(self, row):
        return self.paths.up / row.slug

    def jobs(self, row, port):
        return [row.client.upload(port, self.source.path, self.source.name)]

    def expected(self, row):
        return [(self.server_root(row) / self.source.name, self.source)]

    def reset(self, row):
        empty_dir(self.server_root(row))


class MgetCase(Case):
    unit = "files/s"

    def __init__(self, settings, paths, on_tmpfs: bool) -> None:
        super().__init__(settings, paths)
        self.on_tmpfs = on_tmpfs
        self.key = "mget-1000"
        self.variant = "tmpfs" if on_tmpfs else "disk"

    def prepare(self, data):
        n = self.s.mget_files
        base = self.paths.shm if self.on_tmpfs else self.paths.work
        where = "tmpfs /dev/shm" if self.on_tmpfs else "disk"
        self.title = f"mget-1000 ({self.variant}): {n} files of 64 KiB, one connection, on {where}"
        src = data if not self.on_tmpfs else DataDir(base / "data")
        self.sources = src.ensure_many(f"mget-{n}", "f", n, self.s.small_size)
        if src is not data:
            src.save()
        self.recv_base = base / "recv" / f"mget-{self.variant}"

    def server_root(self, row):
        return self.sources[0].path.parent

    def skip(self, row):
        # Twisted's FTP server waits the same ~44 ms per file on disk and on
        # tmpfs (22.7 files/s in both tables of the 2026-11-23 full run):
        # the tmpfs rep adds 50 s to --quick and nothing to learn.
        if self.on_tmpfs and self.s.mode == "quick" and row.name == "twisted-ftp + lftp":
            return ("n/a in --quick: as slow on tmpfs as on disk (a fixed wait per "
                    "file, not the disk); --full runs it")
        return None

    def dest_dir(self, row):
        return self.recv_base / row.slug

    def jobs(self, row, port):
        return [row.client.mget(port, "f*.bin", self.dest_dir(row))]

    def expected(self, row):
        d = self.dest_dir(row)
        return [(d / s.name, s) for s in self.sources]

    def amount(self):
        return sum(s.size for s in self.sources), len(self.sources)

    def notes(self):
        return ["Server root and client destination are both on "
                + ("tmpfs." if self.on_tmpfs else "disk (ext4 under the work dir).")]


class ConcurrentCase(Case):
    key = "concurrent-100"

    def prepare(self, data):
        n = self.s.concurrent_clients
        self.title = f"concurrent-100: {n} clients at once, each downloads its own 10 MiB file (aggregate MB/s)"
        self.sources = data.ensure_many("conc", "c", n, self.s.concurrent_size)

    def server_root(self, row):
        return self.sources[0].path.parent

    def jobs(self, row, port):
        return row.client.concurrent(port, [s.name for s in self.sources], self.dest_dir(row))

    def expected(self, row):
        d = self.dest_dir(row)
        return [(d / s.name, s) for s in self.sources]

    def amount(self):
        return sum(s.size for s in self.sources), len(self.sources)

    def notes(self):
        return ["limit, ftplib and ftx-api run every client as a thread or connection "
                "in one process; lftp rows start one lftp process per client and are "
                "timed by wall clock from the first start to the last exit."]


class StalledCase(DownloadCase):
    """
    A download whose reader stops for a while: does the server keep reading
    the file into memory when the socket will not take more?

    The client process itself is frozen with SIGSTOP once its destination
    directory holds a few MB, which stalls any client the same way, whatever
    its code.
    """

    key = "stalled-reader"
    focus = "memory"
    startup_probe = False

    def __init__(self, settings, paths):
        super().__init__(settings, paths)
        self.warmup = 0
        self.reps = settings.memory_reps

    def prepare(self, data):
        super().prepare(data)
        label = _size_label(self.s.big_size)
        self.title = (f"stalled-reader: {label}iB download, client frozen "
                      f"{self.s.stall_seconds:.0f} s after {self.s.stall_after >> 20} MiB "
                      "(read the server RSS column)")

    def poll(self, row):
        dest = self.dest_dir(row)
        state = {"done": False}

        def maybe_stall(running: list) -> None:
            if state["done"] or not running:
                return
            got = sum(e.stat().st_size for e in os.scandir(dest) if e.is_file())
            if got < self.s.stall_after:
                return
            state["done"] = True
            for p in running:
                procs.signal_own(p, signal.SIGSTOP)
            try:
                time.sleep(self.s.stall_seconds)
            finally:
                for p in running:
                    procs.signal_own(p, signal.SIGCONT)

        return maybe_stall

    def notes(self):
        return ["MB/s includes the stall. The server should hold no more than its "
                "buffers while the client is frozen; a server RSS near the file size "
                "means it read the file into memory."]


def all_cases(settings: Settings, paths: Paths) -> List[Case]:
    return [
        DownloadCase(settings, paths),
        UploadCase(settings, paths),
        MgetCase(settings, paths, on_tmpfs=False),
        MgetCase(settings, paths, on_tmpfs=True),
        ConcurrentCase(settings, paths),
        StalledCase(settings, paths),
    ]


def client_jobs(case: Case, row: Row, port: int) -> Tuple[Optional[List[Argv]], Optional[str]]:
    """The argvs of one rep, or the reason this row cannot run this case."""
    try:
        return case.jobs(row, port), None
    except NotSupported as e:
        reason = str(e)
        return None, reason if reason.startswith("n/a") else f"n/a: {reason}"
