"""
Tab completion in the shell: command words, remote names (relative to the
remote working folder) and local paths, each inserted quoted the way the
shell's own parser (C{shlex}) reads it back, so that C{sget my<Tab>} gives
C{sget 'my file.txt'}.

L{complete} is plain Python, tested without a terminal; L{ShellCompleter}
adapts it to C{prompt_toolkit}, which is imported only by the shell.
"""

from __future__ import annotations

import os
import shlex
from typing import Callable, Iterable, List, Optional, Tuple

from ftx.cli.terminal import printable

__all__ = ["complete", "currentWord", "ShellCompleter", "REMOTE", "LOCAL", "LOCAL_FOLDERS", "REMOTE_FOLDERS"]

REMOTE = "remote"
REMOTE_FOLDERS = "remote folders"
LOCAL = "local"
LOCAL_FOLDERS = "local folders"


def currentWord(text: str) -> Optional[Tuple[List[str], int, str]]:
    """
    Split the line before the cursor as C{shlex} would: the complete
    words before the one being typed, where that word starts in C{text},
    and its value so far (quotes and escapes resolved; an open quote is
    taken as closed). L{None} when the line cannot be read.
    """
    if not text or text[-1].isspace():
        try:
            return shlex.split(text), len(text), ""
        except ValueError:
            pass
    starts = [0] + [i for i in range(1, len(text)) if text[i - 1].isspace() and not text[i].isspace()]
    for start in starts:
        try:
            before = shlex.split(text[:start])
        except ValueError:
            continue
        for closing in ("", "'", '"'):
            try:
                words = shlex.split(text[start:] + closing)
            except ValueError:
                continue
            if len(words) == 1:
                return before, start, words[0]
    return None


def _localPaths(word: str, foldersOnly: bool) -> List[str]:
    folder, _, prefix = word.rpartition("/")
    where = os.path.expanduser(folder + "/" if folder else ".") if folder or word.startswith("/") else "."
    if word.startswith("/") and not folder:
        where = "/"
    try:
        names = os.listdir(where)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
            continue
        path = (folder + "/" if folder or word.startswith("/") else "") + name
        isFolder = os.path.isdir(os.path.join(where, name))
        if isFolder:
            found.append(path + "/")
        elif not foldersOnly:
            found.append(path)
    return sorted(found)


def _remoteNames(word: str, names: Iterable[str], foldersOnly: bool) -> List[str]:
    found = set()
    for name in names:
        # A name from the server with a control character (which ftx
        # servers never list) is not put on the user's command line.
        if not name.startswith(word) or not name.isprintable() or printable(name) != name:
            continue
        # Offer the next folder level, not every file under it.
        slash = name.find("/", len(word))
        if slash != -1:
            found.add(name[: slash + 1])
        elif not foldersOnly:
            found.add(name)
    return sorted(found)


def complete(text: str, commands: Iterable[str], kinds, remoteNames: Callable[[], Iterable[str]]) -> Tuple[int, List[str]]:
    """
    What may replace the word being typed at the end of C{text}: where it
    starts, and the replacements, quoted for C{shlex}.

    @param commands: the command words.
    @param kinds: command word -> L{REMOTE}, L{REMOTE_FOLDERS}, L{LOCAL}
        or L{LOCAL_FOLDERS}: what its arguments name.
    @param remoteNames: the remote names relative to the working folder;
        called only when they are needed.
    """
    found = currentWord(text)
    if found is None:
        return len(text), []
    before, start, word = found
    if not before:
        if text.lstrip().startswith("!"):
            return start, []
        return start, [c for c in sorted(set(commands)) if c.startswith(word)]
    kind = kinds.get(before[0].lower())
    if before[-1] in ("-o", "--output", "--dir"):
        kind = LOCAL
    elif before[-1] == "--as":
        kind = REMOTE
    elif word.startswith("-"):
        return start, []
    if kind in (LOCAL, LOCAL_FOLDERS):
        candidates = _localPaths(word, kind == LOCAL_FOLDERS)
    elif kind in (REMOTE, REMOTE_FOLDERS):
        candidates = _remoteNames(word, remoteNames(), kind == REMOTE_FOLDERS)
    else:
        return start, []
    return start, [_quote(candidate) for candidate in candidates]


def _quote(candidate: str) -> str:
    quoted = shlex.quote(candidate)
    if quoted != candidate and candidate.startswith("~/"):
        # Keep ~ outside the quotes so that it is still the home folder.
        return "~/" + shlex.quote(candidate[2:])
    return quoted


def ShellCompleter(commands, kinds, remoteNames):
    """
    A C{prompt_toolkit} completer over L{complete}.
    """
    from prompt_toolkit.completion import Completer, Completion

    class _Completer(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            start, replacements = complete(text, commands, kinds, remoteNames)
            for replacement in replacements:
                yield Completion(replacement, start_position=start - len(text))

    return _Completer()
