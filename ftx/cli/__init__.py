"""
The C{ftx} command, on top of L{ftx.client}: the parser, the commands, the
interactive shell, progress on stderr, conflict policies for local files,
and the reactor thread the commands wait on.
"""

from ftx.cli.main import main, run

__all__ = ["main", "run"]
