"""
What C{ftx mirror} would do, worked out before anything is changed: the
C{--include}/C{--exclude} masks, the local tree as it is (links never
followed), and the plan, action by action, that C{--dry-run} prints and
L{ftx.cli.mirror} carries out.

Nothing here talks to the server or changes a file; whether a file on one
side is the same as on the other is the caller's question (the quick
check of L{ftx.cli.quickcheck}, or digests with C{--verify}).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Set as AbstractSet
from operator import attrgetter
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from ftx.client.localfiles import PARTIAL_SUFFIX
from ftx.protocol.names import matches

__all__ = ["INCLUDE", "EXCLUDE", "Filters", "LocalFile", "LocalTree", "scanTree", "Action", "Plan", "planMirror",
           "foldersAbove", "partialName"]

INCLUDE = "include"
EXCLUDE = "exclude"


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class Filters:
    """
    The C{--include} and C{--exclude} masks, rsync's way: they are tried in
    the order given on the command line and the first that matches a name
    decides; a name none matches is included. Wildcards (C{* ? [...]}) never
    match C{/} (L{ftx.protocol.names.matches}, as the server's masks). A
    mask without C{/} matches any part of a name, so C{--exclude .git}
    leaves out a C{.git} folder wherever it is and C{--exclude '*.tmp'}
    every such file; a mask with C{/} is anchored at the top of the mirror
    and matches a name or a folder above it (C{--exclude build/cache}). A
    trailing C{/} makes a mask match folders only. Excluded names are
    neither transferred nor deleted, on either side.
    """

    def __init__(self, rules: Sequence[Tuple[str, str]] = ()) -> None:
        self.rules = []
        for kind, mask in rules:
            folderOnly = mask.endswith("/")
            text = mask.strip("/")
            anchored = "/" in mask.rstrip("/")
            self.rules.append((kind, anchored, folderOnly, _raw(text).split(b"/")))

    def included(self, name: str) -> bool:
        if not self.rules:
            return True
        parts = _raw(name).split(b"/")
        for kind, anchored, folderOnly, mask in self.rules:
            candidates = parts[:-1] if folderOnly else parts
            if anchored:
                hit = len(mask) <= len(candidates) and matches(mask, candidates[: len(mask)])
            else:
                hit = any(matches(mask, [part]) for part in candidates)
            if hit:
                return kind == INCLUDE
        return True


class LocalFile(NamedTuple):
    path: str
    size: int
    mtime: int
    #: A symbolic link (to anything): never followed, never sent.
    link: bool = False


_TOP_OPEN = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
#: Below the top, a folder is never entered through a link.
_FOLDER_OPEN = _TOP_OPEN | os.O_NOFOLLOW
#: The type bits of a mode (C{stat.S_IFMT}) and three of its values.
_KIND, _FILE, _FOLDER, _LINK = 0o170000, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK

#: L{LocalFile} from a tuple, without the Python-level C{__new__} of a
#: named tuple: one call less per file of a walk.
_localFile = tuple.__new__


class LocalTree:
    """
    A local folder as L{scanTree} found it, by relative C{/} names: regular
    files and links, the partial files of interrupted downloads (by the
    name they stand for), and the folders.
    """

    def __init__(self) -> None:
        self.files: Dict[str, LocalFile] = {}
        self.partials: Dict[str, str] = {}
        self.folders: List[str] = []


def scanTree(top: str, withStat: bool = True) -> LocalTree:
    """
    Walk C{top} without following links: a link is listed as a link (so
    that C{--delete} removes the link itself and nothing it points to), a
    folder link is not entered. Anything else that is not a regular file
    (sockets, fifos, devices) is left out.

    Without C{withStat}, the walk reads names and types only (the
    directory entries carry them: no system call per file) and each
    L{LocalFile} has C{-1} for its size and time; a download's quick check
    looks at the few files it compares itself.

    A mirror's re-run walks every file to compare it: the loop takes a
    folder's type from its directory entry (no C{lstat}), one C{lstat} a
    file, and makes nothing per file but its name and its L{LocalFile}.
    """
    tree = LocalTree()
    files, partials, folders = tree.files, tree.partials, tree.folders
    pending = [("", top, True)]
    while pending:
        prefix, directory, isTop = pending.pop()
        try:
            # Each folder open, its entries' status taken relative to it
            # (fstatat): no walk of the whole path a file.
            fd = os.open(directory, _TOP_OPEN if isTop else _FOLDER_OPEN)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            if e.errno == errno.ELOOP:
                # A folder swapped for a link since it was listed.
                continue
            raise
        base = directory if directory.endswith("/") else directory + "/"
        try:
            with os.scandir(fd) as scan:
                for entry in scan:
                    name = entry.name
                    if entry.is_dir(follow_symlinks=False):
                        kind = _FOLDER
                    elif withStat:
                        st = entry.stat(follow_symlinks=False)
                        kind = st.st_mode & _KIND
                        size, mtime = st.st_size, int(st.st_mtime)
                    else:
                        kind = _LINK if entry.is_symlink() else _FILE if entry.is_file(follow_symlinks=False) else 0
                        size = mtime = -1
                    if kind == _FILE:
                        if name[:1] == "." and name.endswith(PARTIAL_SUFFIX):
                            partials[prefix + name[1: -len(PARTIAL_SUFFIX)]] = base + name
                        else:
                            files[prefix + name] = _localFile(LocalFile, (base + name, size, mtime, False))
                    elif kind == _FOLDER:
                        rel = prefix + name
                        folders.append(rel)
                        pending.append((rel + "/", base + name, False))
                    elif kind == _LINK:
                        files[prefix + name] = _localFile(LocalFile, (base + name, size, mtime, True))
        finally:
            os.close(fd)
    return tree


class Action(NamedTuple):
    """
    One thing the mirror does. C{verb}: C{get}, C{continue} (a partial
    download), C{put}, C{delete} (a file), C{rmdir} (a local folder left
    empty), C{rmtree} (a server folder and everything in it).
    """

    verb: str
    #: The name relative to the mirror's top, with C{/}.
    name: str
    size: int = 0
    #: The source's file: an L{ftx.client.results.Entry} downloading, a
    #: L{LocalFile} uploading; L{None} for a deletion.
    source: object = None


_byName = attrgetter("name")


class Plan:
    def __init__(self) -> None:
        self.transfers: List[Action] = []
        self.deletions: List[Action] = []
        self.unchanged = 0
        self.excluded = 0
        self.links: List[str] = []

    @property
    def bytes(self) -> int:
        return sum(action.size for action in self.transfers)


def partialName(name: str) -> str:
    """
    The relative name of the partial download that stands for C{name}
    (L{ftx.client.localfiles.partialPath}).
    """
    head, _, tail = name.rpartition("/")
    return (head + "/" if head else "") + "." + tail + PARTIAL_SUFFIX


def foldersAbove(names: Iterable[str]) -> Set[str]:
    """
    Every folder that holds one of C{names} (C{a/b/c} gives C{a} and C{a/b}).
    """
    folders: Set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]))
    return folders


def planMirror(
    source: Mapping[str, object],
    target: Iterable[str],
    filters: Filters,
    same: Callable[[str], bool],
    transferVerb: Callable[[str], str],
    delete: bool,
    targetFolders: Optional[Sequence[str]] = None,
    targetPartials: Sequence[str] = (),
    quickCheck: bool = False,
) -> Plan:
    """
    The plan that makes C{target} hold what C{source} holds.

    @param source: relative name -> what to transfer it from (an
        L{ftx.client.results.Entry} or a L{LocalFile}: anything with a
        C{size}).
    @param target: the names the target side holds (a mapping or a set is
        used as it is).
    @param same: whether the target's file of that name is the source's
        (asked only for names both sides have).
    @param transferVerb: C{get}, C{continue} or C{put} for a name.
    @param delete: also delete what the source no longer has (C{--delete}).
    @param targetFolders: the target's folders when it is local: with
        C{delete}, those that hold nothing the mirror keeps are removed
        (C{rmdir}, deepest first). L{None} for the server: a server folder
        whose every file goes is removed whole (C{rmtree}, topmost only).
    @param targetPartials: names of the target's partial downloads; with
        C{delete}, those the source no longer has are removed too.
    @param quickCheck: C{same} is rsync's quick check of the target's
        L{LocalFile} (not a link, same size and modification time as the
        source's): made inline, without a call a file, when no mask
        excludes anything. A re-run compares ten thousand files.
    """
    plan = Plan()
    if not isinstance(target, (Mapping, AbstractSet)):
        target = set(target)
    # One pass in whatever order, and only the transfers sorted: a re-run
    # compares ten thousand names to move a hundred.
    included = filters.included if filters.rules else None
    transfers = plan.transfers
    unchanged = excluded = 0
    if quickCheck and included is None:
        mine = target.get
        differ = [
            (name, origin) for name, origin in source.items()
            if (local := mine(name)) is None or local.link or local.size != origin.size or local.mtime != origin.mtime
        ]
        unchanged = len(source) - len(differ)
        transfers.extend(Action(transferVerb(name), name, origin.size, origin) for name, origin in differ)
    else:
        for name, origin in source.items():
            if included is not None and not included(name):
                excluded += 1
            elif name in target and same(name):
                unchanged += 1
            else:
                transfers.append(Action(transferVerb(name), name, origin.size, origin))
    transfers.sort(key=_byName)
    plan.unchanged, plan.excluded = unchanged, excluded
    if not delete:
        return plan
    kept = set(source) | {name for name in target if not filters.included(name)}
    gone = sorted(name for name in target if name not in kept)
    keptFolders = foldersAbove(kept)
    if targetFolders is None:
        plan.deletions = _serverDeletions(gone, keptFolders)
        return plan
    plan.deletions = [Action("delete", name) for name in gone]
    stale = [name for name in targetPartials if name not in kept]
    plan.deletions += [Action("delete", partialName(name)) for name in stale]
    keptFolders |= foldersAbove(name for name in targetPartials if name in kept)
    keptFolders |= {folder for folder in targetFolders if not filters.included(folder + "/-")}
    keptFolders |= foldersAbove(list(keptFolders))
    for folder in sorted(targetFolders, key=lambda f: (-f.count("/"), f)):
        if folder not in keptFolders:
            plan.deletions.append(Action("rmdir", folder))
    return plan


def _serverDeletions(gone: List[str], keptFolders: Set[str]) -> List[Action]:
    """
    C{delete} for each file, except that a folder none of whose files is
    kept goes with one C{rmtree} (the topmost such folder).
    """
    actions: List[Action] = []
    removed: Set[str] = set()
    for name in gone:
        parts = name.split("/")
        whole = None
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in keptFolders:
                whole = folder
                break
        if whole is None:
            actions.append(Action("delete", name))
        elif whole not in removed:
            removed.add(whole)
            actions.append(Action("rmtree", whole))
    return actions
