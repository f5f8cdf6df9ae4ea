"""
The remote working folder: the C{/FOLDER} of an C{ftx://HOST/FOLDER}
address, and the shell's C{cd}. Names typed by the user are taken relative
to it before a command sees them, so the commands and the wire only ever
see names from the root.
"""

from __future__ import annotations

import posixpath

__all__ = ["join", "change", "applyFolder"]


def join(folder: str, name: str) -> str:
    """
    C{name} under C{folder}; a name starting with C{/} is from the root.
    C{..} and C{.} are resolved here, never past the root, so that what
    goes to the server is a plain name (which it checks all the same).
    """
    if name.startswith("/"):
        folder, name = "", name.lstrip("/")
    if not folder:
        joined = name
    else:
        joined = folder + "/" + name if name else folder
    parts = []
    for part in joined.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    text = "/".join(parts)
    # Keep a trailing "/" ("photos/" asks for what is under photos).
    return text + "/" if text and name.endswith("/") else text


def change(folder: str, target: str) -> str:
    """
    The folder after C{cd target}: C{/} or nothing is the root.
    """
    return join(folder, target or "/").rstrip("/")


def applyFolder(args, folder: str, isListed=lambda text: False) -> None:
    """
    Make the names in parsed C{args} relative to C{folder}, in place.
    C{isListed(text)} says a text stands for an entry of the shell's last
    listing (a bare number), which is left alone. C{put} takes
    C{args.folder} itself (its names come from the local files).
    """
    args.folder = folder
    if not folder:
        return

    def under(text):
        return text if text is None or isListed(text) else join(folder, text)

    for attribute in ("name", "mask"):
        if hasattr(args, attribute):
            setattr(args, attribute, under(getattr(args, attribute)) if getattr(args, attribute) is not None
                    else (folder + "/" if attribute == "mask" else None))
    for attribute in ("names", "masks"):
        if hasattr(args, attribute):
            setattr(args, attribute, [under(text) for text in getattr(args, attribute)])
