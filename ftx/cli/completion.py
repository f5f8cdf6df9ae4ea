"""
Completion scripts for the user's own shell (C{ftx --print-completion
bash|zsh|fish|tcsh}, written by C{shtab}) and the manual page (C{ftx
--print-man-page}, written by C{argparse-manpage}), both from the parser
itself so that they never disagree with C{ftx --help}. The two libraries
are imported only here: the other commands start without them.
"""

from __future__ import annotations

import argparse

from ftx import __version__

__all__ = ["completionScript", "manPage"]

#: Options and arguments that name local files or folders, by dest.
_FILES = ("files", "output", "cafile", "cert", "password_file")
_FOLDERS = ("dir",)


def _markLocalPaths(parser: argparse.ArgumentParser, shtab) -> None:
    """
    Say which arguments complete as local paths; remote names have
    nothing to complete from without a connection.
    """
    seen = set()
    stack = [parser]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for action in current._actions:
            if action.dest in _FILES:
                action.complete = shtab.FILE
            elif action.dest in _FOLDERS:
                action.complete = shtab.DIRECTORY
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())


def completionScript(parser: argparse.ArgumentParser, shell: str) -> str:
    """
    The completion script for C{shell}; see the README for where to put it.
    """
    import shtab

    _markLocalPaths(parser, shtab)
    return shtab.complete(parser, shell=shell)


def manPage(parser: argparse.ArgumentParser) -> str:
    """
    The manual page C{ftx(1)} in roff, for C{man -l -} or C{/usr/local/share/man/man1/ftx.1}.
    """
    from argparse_manpage.manpage import Manpage

    page = Manpage(parser, _data={"project_name": "ftx", "version": __version__,
                                  "description": "transfer files to and from an ftx server",
                                  "manual_title": "ftx manual"})
    return str(page)
