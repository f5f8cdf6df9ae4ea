"""
What to do when a download would land on a file that is already here.

The rule is that the command line never overwrites a file silently: the
user chose C{--overwrite}, C{--rename} or C{--skip}, or answers a question
on the terminal, or the command refuses and changes nothing. An existing
file is replaced only by an atomic rename once the new copy is complete
and checked, so even an allowed overwrite that is cut off leaves the old
file intact.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional, Tuple

from ftx.cli.terminal import printable
from ftx.client.localfiles import partialPath
from ftx.errors import FtxError

__all__ = ["Refused", "Resolver", "OVERWRITE", "RENAME", "SKIP", "renamed"]

OVERWRITE = "overwrite"
RENAME = "rename"
SKIP = "skip"

#: Compound extensions kept whole when renaming: C{a (1).tar.gz}.
_COMPOUND = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst")
_MAX_RENAMES = 10000
_MAX_QUESTIONS = 10


class Refused(FtxError):
    """
    A file is in the way: here for a download, on the server for an
    upload. Choose --overwrite, --rename or --skip, or run the command on
    a terminal to be asked.
    """

    code = 0
    token = "local-conflict"


def renamed(path: str) -> str:
    """
    The first free C{name (N).ext} beside C{path}; "free" means neither the
    name nor its partial file exists.
    """
    head, tail = os.path.split(path)
    lower = tail.lower()
    ext = next((e for e in _COMPOUND if lower.endswith(e) and len(tail) > len(e)), None)
    if ext is None:
        stem, ext = os.path.splitext(tail)
    else:
        stem, ext = tail[: -len(ext)], tail[-len(ext):]
    for n in range(1, _MAX_RENAMES + 1):
        candidate = os.path.join(head, "{} ({}){}".format(stem, n, ext))
        if not os.path.lexists(candidate) and not os.path.lexists(partialPath(candidate)):
            return candidate
    raise Refused("no free name like {} in {}".format(tail, head or "."))


def _askTerminal(question: str) -> str:
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline()


class Resolver:
    """
    Decides, file by file, where a download goes. C{policy} is one of
    L{OVERWRITE}, L{RENAME}, L{SKIP} or L{None} (ask when C{interactive},
    refuse otherwise). C{ask(question)} returns the user's answer line
    (C{""} at end of input); C{paused} is a context manager that holds any
    live display meanwhile.
    """

    def __init__(
        self,
        policy: Optional[str],
        interactive: bool,
        ask: Callable[[str], str] = _askTerminal,
        paused=None,
    ) -> None:
        self.policy = policy
        self.interactive = interactive
        self.ask = ask
        self.paused = paused
        self.overwriteAll = False

    def decide(self, path: str, remote: bool = False) -> Tuple[str, str]:
        """
        For a download whose target C{path} exists: C{(OVERWRITE, path)},
        C{(RENAME, newPath)} or C{(SKIP, path)}. With C{remote}, C{path}
        is an upload's name that the server holds with other content, and
        a rename is left to the server (C{(RENAME, path)}).

        @raise Refused: no policy and no terminal to ask on.
        """
        policy = OVERWRITE if self.overwriteAll else self.policy
        where = "on the server with other content; nothing was sent" if remote else "here; nothing was changed"
        if policy is None:
            if not self.interactive:
                raise Refused("{} already exists {} (use --overwrite, --rename or --skip)".format(path, where))
            policy = self._question(path + (" (on the server)" if remote else ""))
        if policy == RENAME and not remote:
            return RENAME, renamed(path)
        return policy, path

    def _question(self, path: str) -> str:
        question = "{} already exists. Overwrite it? [y]es, [n]o (skip), [r]ename, [a]ll (overwrite every one): ".format(
            printable(path))
        for _ in range(_MAX_QUESTIONS):
            if self.paused is not None:
                with self.paused():
                    answer = self.ask(question)
            else:
                answer = self.ask(question)
            if not answer:
                # End of input: the safe answer.
                return SKIP
            word = answer.strip().lower()
            if word in ("y", "yes"):
                return OVERWRITE
            if word in ("n", "no", "s", "skip"):
                return SKIP
            if word in ("r", "rename"):
                return RENAME
            if word in ("a", "all"):
                self.overwriteAll = True
                return OVERWRITE
        return SKIP
