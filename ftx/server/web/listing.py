"""
The listing page of one folder: its subfolders and files, each a link,
with sizes and dates. Built with L{twisted.web.template}, which escapes
every name it puts in the page: names are chosen by whoever uploaded them.
"""

from __future__ import annotations

import time
from typing import Iterable, List, NamedTuple

from twisted.web.template import flattenString, tags

from ftx.server.storage import StoredFile
from ftx.server.web.paths import linkTo

__all__ = ["Entry", "entriesBelow", "renderListing"]


class Entry(NamedTuple):
    """
    One line of a listing: a file, or a folder with the bytes, file count
    and newest date of everything below it.
    """

    name: bytes
    folder: bool
    size: int
    mtime: int
    files: int


def entriesBelow(files: Iterable[StoredFile], folder: bytes) -> List[Entry]:
    """
    The immediate children of C{folder} (C{b""}: the root) among C{files}
    (an L{ftx.server.storage.IStorage.listFiles} result, which holds files
    only, at every depth): folders first, then files, each by name.
    """
    prefix = folder + b"/" if folder else b""
    subfolders = {}
    plain = []
    for stored in files:
        if not stored.name.startswith(prefix):
            continue
        rest = stored.name[len(prefix):]
        head, slash, _ = rest.partition(b"/")
        if not slash:
            plain.append(Entry(head, False, stored.size, stored.mtime, 1))
            continue
        size, mtime, count = subfolders.get(head, (0, 0, 0))
        subfolders[head] = (size + stored.size, max(mtime, stored.mtime), count + 1)
    folders = [Entry(name, True, size, mtime, count) for name, (size, mtime, count) in subfolders.items()]
    return sorted(folders) + sorted(plain)


def displayName(name: bytes) -> str:
    """
    A name as text for the page: UTF-8, with undecodable bytes shown as
    U+FFFD (the link still carries the exact bytes).
    """
    return name.decode("utf-8", "replace")


def humanSize(size: int) -> str:
    """
    C{1.5 MiB}-style sizes; exact bytes stay in the cell's title.
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return "{} {}".format(int(value), unit) if unit == "B" else "{:.1f} {}".format(value, unit)
        value /= 1024
    return str(size)  # pragma: no cover


def _date(mtime: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(mtime)) if mtime else ""


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; padding: 0 1em; }
h1 { font-size: 1.3em; font-weight: 600; }
h1 a { color: #246; text-decoration: none; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35em .8em; border-bottom: 1px solid #e4e4e4; }
th { font-weight: 600; color: #555; }
td.size, th.size { text-align: right; font-variant-numeric: tabular-nums; }
td.date { color: #555; white-space: nowrap; }
a { color: #0b57d0; }
tr.folder a { font-weight: 600; }
footer { margin-top: 1.5em; color: #888; font-size: .85em; }
"""


def _breadcrumbs(segments: List[bytes]):
    crumbs = [tags.a("/", href="/")]
    for depth, segment in enumerate(segments, 1):
        crumbs.append(tags.a(displayName(segment), href=linkTo(segments[:depth], folder=True)))
        crumbs.append("/")
    return crumbs


def _row(segments: List[bytes], entry: Entry):
    link = linkTo(segments + [entry.name], folder=entry.folder)
    shown = displayName(entry.name) + ("/" if entry.folder else "")
    kind = "folder" if entry.folder else "file"
    anchor = tags.a(shown, href=link) if entry.folder else tags.a(shown, href=link, download="")
    what = "{} file{}".format(entry.files, "" if entry.files == 1 else "s") if entry.folder else ""
    return tags.tr(
        tags.td(anchor, class_="name"),
        tags.td(humanSize(entry.size), class_="size", title="{} bytes".format(entry.size)),
        tags.td(_date(entry.mtime), class_="date"),
        tags.td(what, class_="count"),
        class_=kind,
    )


def renderListing(segments: List[bytes], entries: List[Entry], who: str) -> "Deferred[bytes]":
    """
    The HTML page listing C{entries}, the children of the folder
    C{segments} (C{[]}: the root), for the account named C{who}.
    """
    title = "/" + "/".join(displayName(s) for s in segments)
    rows = [_row(segments, entry) for entry in entries]
    if segments:
        rows.insert(0, tags.tr(tags.td(tags.a("../", href=linkTo(segments[:-1], folder=True)), class_="name"), class_="up"))
    if not entries:
        rows.append(tags.tr(tags.td("This folder is empty.", colspan="4")))
    page = tags.html(
        tags.head(
            tags.meta(charset="utf-8"),
            tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
            tags.title("ftx: " + title),
            tags.style(_STYLE),
        ),
        tags.body(
            tags.h1("Index of ", *_breadcrumbs(segments)),
            tags.table(
                tags.thead(tags.tr(tags.th("Name"), tags.th("Size", class_="size"), tags.th("Modified"), tags.th(""))),
                tags.tbody(*rows),
            ),
            tags.footer("ftx read-only web view, signed in as {}".format(who)),
        ),
        lang="en",
    )
    return flattenString(None, page).addCallback(lambda html: b"<!DOCTYPE html>\n" + html)
