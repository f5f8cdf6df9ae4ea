"""
Helpers for the C{ftx mirror} tests (no tests here): trees of files on
the server's root and here, what a tree holds, what the server logged
since a point, and a mirror killed in the middle of a file.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Dict, List

from tests.clitools import partialSize, startFtx, waitFor

#: A few files of a few sizes, in folders two deep.
TREE = {
    "a.txt": b"a" * 100,
    "b.bin": bytes(range(256)) * 40,
    "docs/readme.md": b"# readme\n",
    "docs/deep/notes.txt": b"notes " * 500,
    "empty.dat": b"",
}

#: Whole seconds well in the past, so that "now" is another time.
PAST = 1_600_000_000


def writeTree(top: Path, files: Dict[str, bytes], mtime=PAST) -> None:
    for name, data in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))


def treeOf(top: Path) -> Dict[str, bytes]:
    """
    Every regular file under C{top} by relative name, partial files too.
    """
    found = {}
    for directory, _, filenames in os.walk(top):
        for filename in filenames:
            path = os.path.join(directory, filename)
            if not os.path.islink(path):
                found[os.path.relpath(path, top).replace(os.sep, "/")] = Path(path).read_bytes()
    return found


def mtimes(top: Path) -> Dict[str, int]:
    return {name: int(os.stat(top / name).st_mtime) for name in treeOf(top)}


class LogMark:
    """
    What the server logged after this point: the commands a run sent.
    """

    def __init__(self, server) -> None:
        self.server = server
        self.start = len(server.output())

    def commands(self, *verbs: str) -> List[str]:
        """
        The logged lines whose command is one of C{verbs}.
        """
        lines = self.server.output()[self.start:].splitlines()
        return [line for line in lines if any(" {} ".format(verb) in line for verb in verbs)]


def killMirrorMidway(server, args, cwd: Path, partial, restart, attempts: int = 3):
    """
    Start ``ftx ARGS`` in C{cwd} and kill it (SIGKILL, by its PID) once
    C{partial()} says some bytes of the big file are written. If it
    finished first (loopback is fast), C{restart()} undoes the run and it
    is tried again, a bounded number of times.
    """
    for _ in range(attempts):
        process = startFtx(server, *args, cwd=cwd)
        try:
            caught = waitFor(lambda: partial() > 0 or process.poll() is not None, timeout=20)
            if caught and process.poll() is None:
                process.send_signal(signal.SIGKILL)
        finally:
            process.communicate(timeout=20)
        if partial() > 0:
            return process
        restart()
    raise AssertionError("the mirror always finished before it could be interrupted")


def removeTree(path: Path) -> None:
    shutil.rmtree(str(path), True)


__all__ = ["TREE", "PAST", "writeTree", "treeOf", "mtimes", "LogMark", "killMirrorMidway", "removeTree",
           "partialSize"]
