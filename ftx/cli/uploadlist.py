"""
Which local files a C{put} sends, and under which names: files as given,
folders walked, globs expanded the way a shell would (for the quoted
patterns a shell left alone, and on systems whose shell does not expand).
"""

from __future__ import annotations

import glob
import os
from typing import List, Optional, Tuple

from ftx.client import localfiles
from ftx.errors import BadRequest, NotFound


def _hasGlob(text: str) -> bool:
    return any(c in text for c in "*?[")


def collectUploads(paths: List[str], remoteName: Optional[str]) -> List[Tuple[str, str, int]]:
    """
    C{(localPath, remoteName, size)} for every file to upload: files as
    given, folders walked recursively (their own name kept as the first
    part of the remote names), globs expanded.

    @raise NotFound: a path does not exist and matches nothing.
    @raise BadRequest: C{--as} with more than one file or folder.
    """
    expanded: List[str] = []
    for path in paths:
        if not os.path.lexists(path) and _hasGlob(path):
            matches = sorted(glob.glob(path))
            if not matches:
                raise NotFound("no local file matches {}".format(path))
            expanded.extend(matches)
        elif not os.path.exists(path):
            raise NotFound("no such local file: {}".format(path))
        else:
            expanded.append(path)
    if remoteName is not None and len(expanded) != 1:
        raise BadRequest("--as needs exactly one file or folder, not {}".format(len(expanded)))
    uploads: List[Tuple[str, str, int]] = []
    for path in expanded:
        if os.path.isdir(path):
            prefix = remoteName or os.path.basename(os.path.abspath(path))
            for directory, dirnames, filenames in os.walk(path):
                dirnames.sort()
                relative = os.path.relpath(directory, path)
                for filename in sorted(filenames):
                    full = os.path.join(directory, filename)
                    if filename.endswith(localfiles.PARTIAL_SUFFIX) or not os.path.isfile(full):
                        continue
                    parts = [prefix] + ([] if relative == "." else relative.split(os.sep)) + [filename]
                    uploads.append((full, "/".join(parts), os.path.getsize(full)))
        else:
            uploads.append((path, remoteName or os.path.basename(path), os.path.getsize(path)))
    return uploads
