"""
Folders on the filesystem: C{mkdir} and C{rmtree} for
L{ftx.server.filesystem.FilesystemStorage}.

Both work on directory file descriptors opened and checked one level at a
time (the storage's C{openDirectory}), and never follow a symbolic link: a
link swapped in during a removal is removed, not entered.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Callable

from ftx.errors import AlreadyExists, Conflict, NotFound
from ftx.protocol.names import PARTIAL_SUFFIX, splitName
from ftx.protocol.wire import nameText
from ftx.server.oserrors import errorFromOS

__all__ = ["makeFolder", "removeFolder"]

_PARTIAL = PARTIAL_SUFFIX.decode("ascii")


def makeFolder(openDirectory: Callable[..., int], quota, name: bytes) -> None:
    """
    Create the folder C{name} and the missing ones above it, charging the
    quota for each one made.

    @raise AlreadyExists: a file holds the name or one above it.
    """
    segments = splitName(name)
    made: list = []
    try:
        fd = openDirectory(segments, True, made)
    except (NotADirectoryError, FileExistsError):
        raise AlreadyExists("a file is in the way of the folder {}".format(nameText(name)))
    except OSError as e:
        raise errorFromOS(e, name)
    finally:
        if quota is not None and made:
            quota.wrote(0, quota.charge(0, 0, len(made)))
    os.close(fd)


def removeFolder(openDirectory, refuseOutwardLink, quota, name: bytes) -> int:
    """
    Remove the folder C{name} and everything below it; returns how many
    files went. Runs in a worker thread.
    """
    segments = splitName(name)
    try:
        parentFd = openDirectory(segments[:-1], False)
    except OSError as e:
        raise errorFromOS(e, name)
    leaf = segments[-1]
    try:
        refuseOutwardLink(parentFd, leaf, name)
        try:
            st = os.stat(leaf, dir_fd=parentFd, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFound("no such folder: {}".format(nameText(name)))
        if not stat.S_ISDIR(st.st_mode):
            raise Conflict("not a folder: {}".format(nameText(name)))
        try:
            fd = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parentFd)
        except OSError as e:
            raise errorFromOS(e, name)
        try:
            removed, freed, files, folders = _emptyFolder(fd)
        finally:
            os.close(fd)
        try:
            os.rmdir(leaf, dir_fd=parentFd)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise errorFromOS(e, name)
    finally:
        os.close(parentFd)
    if quota is not None:
        # Bytes, and the charge of every file (partial ones too) and folder.
        quota.freed(quota.charge(freed, files, folders + 1))
    return removed


def _emptyFolder(fd: int):
    """
    Remove what is in the folder open as C{fd}, deepest first; returns the
    files removed and their bytes. A name another client removed meanwhile
    is no error.
    """
    removed = freed = files = folders = 0
    for _, dirnames, filenames, dirFd in os.fwalk(".", dir_fd=fd, topdown=False, follow_symlinks=False):
        for filename in filenames:
            try:
                st = os.stat(filename, dir_fd=dirFd, follow_symlinks=False)
                os.unlink(filename, dir_fd=dirFd)
            except FileNotFoundError:
                continue
            # Partial uploads go too, but are not files a client counts.
            removed += not (filename.startswith(".") and filename.endswith(_PARTIAL))
            if stat.S_ISREG(st.st_mode):
                freed += st.st_size
                files += 1
        for dirname in dirnames:
            try:
                os.rmdir(dirname, dir_fd=dirFd)
                folders += 1
            except NotADirectoryError:
                # A link to a folder: fwalk lists it with the folders.
                os.unlink(dirname, dir_fd=dirFd)
            except FileNotFoundError:
                pass
    return removed, freed, files, folders
