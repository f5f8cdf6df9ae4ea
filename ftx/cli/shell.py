"""
The interactive shell: C{ftx shell}, or C{ftx} alone on a terminal.

One connection serves the whole session. Lines are parsed by the same
parser as one-shot commands, so every command and option works the same
way; C{list} numbers its entries and a bare number stands for an entry of
the last listing (C{sget 3}). Line editing, history and completion come
from the standard C{readline} module; the history is kept in
C{~/.ftx_history} (or C{$FTX_HISTORY}).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import List, Optional

from ftx.cli.commands import COMMANDS, Context
from ftx.cli.status import UsageError
from ftx.cli.terminal import printable

__all__ = ["Shell"]

PROMPT = "ftx> "
_HISTORY_LENGTH = 1000
_LEAVE = ("quit", "exit", "bye")


class Shell:
    """
    Reads commands from the terminal until C{quit}, C{exit} or end of
    input, and runs them through L{ftx.cli.commands}.
    """

    def __init__(self, ctx: Context, parser, describe) -> None:
        self.ctx = ctx
        self.parser = parser
        self.describe = describe
        self.historyPath = os.environ.get("FTX_HISTORY") or os.path.join(os.path.expanduser("~"), ".ftx_history")
        self._readline = None
        #: The status of the last command that failed: the shell's own when
        #: it reads a script rather than a terminal, as sh's is.
        self.lastFailure = 0

    # -- line editing -----------------------------------------------------

    def _startReadline(self) -> None:
        try:
            import readline
        except ImportError:
            return
        self._readline = readline
        readline.set_history_length(_HISTORY_LENGTH)
        try:
            readline.read_history_file(self.historyPath)
        except OSError:
            pass
        readline.set_completer_delims(" \t")
        readline.set_completer(self._complete)
        readline.parse_and_bind("tab: complete")

    def _saveHistory(self) -> None:
        if self._readline is not None:
            try:
                self._readline.write_history_file(self.historyPath)
            except OSError:
                pass

    def _complete(self, text: str, state: int) -> Optional[str]:
        line = self._readline.get_line_buffer() if self._readline else ""
        if not line[: len(line) - len(text)].strip():
            choices = sorted(list(COMMANDS) + ["help", "quit"])
        else:
            # Names that would act on the terminal are not offered.
            choices = [e.name for e in self.ctx.listing if printable(e.name) == e.name]
        matches = [c for c in choices if c.startswith(text)]
        return matches[state] if state < len(matches) else None

    # -- the loop ---------------------------------------------------------

    def run(self) -> int:
        """
        Connect, then read and run commands; returns the exit status.
        """
        connection = self.ctx.connection
        try:
            client = connection.client
        except Exception as e:
            known = self.describe(e, connection.address)
            if known is None:
                raise
            self.ctx.reporter.error(known[1])
            return known[0]
        print("Connected to {} ({}). Type 'help' for the commands, 'quit' to leave.".format(
            connection.address, printable(client.protocol.version or "ftx")))
        self._startReadline()
        try:
            while True:
                try:
                    line = input(PROMPT)
                except EOFError:
                    print()
                    break
                except KeyboardInterrupt:
                    print()
                    continue
                if not self.execute(line):
                    break
        finally:
            self._saveHistory()
        return 0 if sys.stdin.isatty() else self.lastFailure

    def execute(self, line: str) -> bool:
        """
        Run one line; L{False} when the user asked to leave.
        """
        reporter = self.ctx.reporter
        try:
            words = shlex.split(line)
        except ValueError as e:
            reporter.error("cannot parse that line: {}".format(e))
            return True
        if not words:
            return True
        verb = words[0].lower()
        if verb in _LEAVE:
            return False
        if verb in ("help", "?"):
            self.help(words[1:])
            return True
        if verb == "shell":
            reporter.error("this is the shell already")
            return True
        try:
            args = self.parser.parse_args(words)
        except UsageError as e:
            reporter.error(str(e))
            self.lastFailure = 2
            return True
        except SystemExit:
            # --help printed its text.
            return True
        try:
            COMMANDS[args.command](self.ctx, args)
        except KeyboardInterrupt:
            self._interrupted()
        except Exception as e:
            known = self.describe(e, self.ctx.connection.address)
            if known is None:
                raise
            reporter.close()
            reporter.error(known[1])
            self.lastFailure = known[0]
        finally:
            reporter.close()
        return True

    def _interrupted(self) -> None:
        # The request in flight cannot be called back mid-body: drop the
        # connection (the next command opens a new one).
        self.ctx.connection.abort()
        self.ctx.reporter.close()
        line = "interrupted"
        line += self.ctx.interruptedNote(prefix="")
        self.ctx.downloading(None)
        sys.stderr.write(("\n" if sys.stderr.isatty() else "") + line + "\n")
        sys.stderr.flush()

    def help(self, topics: List[str]) -> None:
        commands = self.parser.commands
        if topics and topics[0] in commands:
            commands[topics[0]].print_help()
            return
        print("Commands (type 'help COMMAND' or 'COMMAND --help' for details):")
        for name, parser in commands.items():
            if name == "shell":
                continue
            summary = (parser.description or "").split("\n", 1)[0]
            print("  {:<7} {}".format(name, summary))
        print("  {:<7} {}".format("help", "Show this list, or the help of one command."))
        print("  {:<7} {}".format("quit", "Leave (also 'exit' or Ctrl-D)."))
        print("After 'list', a number stands for an entry of the listing: 'sget 3', 'hash 2'.")
