"""
The interactive shell: C{ftx shell}, or C{ftx} alone on a terminal.

One connection serves the whole session. Lines are parsed by the same
parser as one-shot commands, so every command and option works the same
way (with the aliases C{ls}, C{get}, C{rm}); C{list} numbers its entries
and a bare number stands for an entry of the last listing (C{sget 3}).
As in lftp and sftp, C{cd}/C{pwd} move in a remote working folder that
names are taken relative to, C{lcd}/C{lpwd}/C{lls} work on the local
side, and C{!command} runs a local command.

On a terminal, line editing, history (C{~/.ftx_history} or
C{$FTX_HISTORY}) and Tab completion come from C{prompt_toolkit}
(L{ftx.cli.shellcompletion} quotes what it inserts). Lines read from a
pipe are run one by one without a prompt.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Callable, List, Optional

from ftx.cli import remotefolder
from ftx.cli.commands import COMMANDS, Context
from ftx.cli.parser import ALIASES
from ftx.cli.progress import isTerminal
from ftx.cli.shellcompletion import LOCAL, LOCAL_FOLDERS, REMOTE, REMOTE_FOLDERS, ShellCompleter
from ftx.cli.status import UsageError
from ftx.cli.terminal import printable

__all__ = ["Shell"]

PROMPT = "ftx> "
_LEAVE = ("quit", "exit", "bye")
#: What the arguments of each command word name, for completion.
_ARGUMENT_KINDS = {
    "list": REMOTE, "ls": REMOTE, "sget": REMOTE, "get": REMOTE, "cget": REMOTE, "mget": REMOTE,
    "hash": REMOTE, "delete": REMOTE, "rm": REMOTE, "cd": REMOTE_FOLDERS,
    "put": LOCAL, "lls": LOCAL, "lcd": LOCAL_FOLDERS, "help": None,
}
#: The shell's own commands: name -> summary, for help.
_OWN = [
    ("cd", "cd FOLDER: change the remote working folder ('cd ..', 'cd /')."),
    ("pwd", "Print the remote working folder."),
    ("lcd", "lcd FOLDER: change the local folder downloads go to."),
    ("lpwd", "Print the local folder."),
    ("lls", "List the local folder (or the one given)."),
    ("!", "!COMMAND: run COMMAND in your local shell."),
    ("help", "Show this list, or the help of one command."),
    ("quit", "Leave (also 'exit', 'bye' or Ctrl-D)."),
]


class Shell:
    """
    Reads commands from the terminal (or a pipe) until C{quit}, C{exit} or
    end of input, and runs them through L{ftx.cli.commands}.
    """

    def __init__(self, ctx: Context, parser, describe, folder: str = "") -> None:
        self.ctx = ctx
        self.parser = parser
        self.describe = describe
        #: The remote working folder, "" for the root.
        self.folder = folder
        self.historyPath = os.environ.get("FTX_HISTORY") or os.path.join(os.path.expanduser("~"), ".ftx_history")
        #: The status of the last command that failed: the shell's own when
        #: it reads a script rather than a terminal, as sh's is.
        self.lastFailure = 0
        self._names: Optional[List[str]] = None
        self._own: dict = {
            "cd": self._cd, "pwd": self._pwd, "lcd": self._lcd, "lpwd": self._lpwd, "lls": self._lls,
        }

    # -- line editing -----------------------------------------------------

    def commandWords(self) -> List[str]:
        words = list(self.parser.commands) + [a for names in ALIASES.values() for a in names]
        return sorted(set(words) - {"shell"} | set(self._own) | {"help", "quit", "exit"})

    def remoteNames(self) -> List[str]:
        """
        The names under the working folder, relative to it, for
        completion; listed once until the next command runs.
        """
        if self._names is None:
            try:
                entries = self.ctx.call("list", self.folder or None)
            except Exception:
                return []
            prefix = self.folder + "/" if self.folder else ""
            self._names = [e.name[len(prefix):] for e in entries if e.name.startswith(prefix)]
        return self._names

    def _promptReader(self) -> Callable[[], str]:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        session = PromptSession(
            history=FileHistory(self.historyPath),
            completer=ShellCompleter(self.commandWords(), _ARGUMENT_KINDS, self.remoteNames),
            complete_while_typing=False,
        )
        return lambda: session.prompt(PROMPT)

    @staticmethod
    def _pipeReader() -> str:
        line = sys.stdin.readline()
        if not line:
            raise EOFError()
        return line

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
        interactive = isTerminal(sys.stdin) and isTerminal(sys.stdout)
        if interactive:
            print("Connected to {} ({}). Type 'help' for the commands, 'quit' to leave.".format(
                connection.address, printable(client.protocol.version or "ftx")))
        read = self._promptReader() if interactive else self._pipeReader
        while True:
            try:
                line = read()
            except EOFError:
                if interactive:
                    print()
                break
            except KeyboardInterrupt:
                continue
            if not self.execute(line):
                break
        return 0 if sys.stdin.isatty() else self.lastFailure

    def execute(self, line: str) -> bool:
        """
        Run one line; L{False} when the user asked to leave.
        """
        reporter = self.ctx.reporter
        if line.strip().startswith("!"):
            self._local(line.strip()[1:])
            return True
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
        self._names = None
        if verb in self._own:
            try:
                self._own[verb](words[1:])
            except UsageError as e:
                reporter.error(str(e))
            except Exception as e:
                self._report(e)
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
        if args.command is None:
            reporter.error("no command on that line (type 'help')")
            return True
        remotefolder.applyFolder(args, self.folder, self._isListed)
        try:
            COMMANDS[args.command](self.ctx, args)
        except KeyboardInterrupt:
            self._interrupted()
        except BrokenPipeError:
            raise
        except Exception as e:
            self._report(e)
        finally:
            reporter.close()
        return True

    def _report(self, error: Exception) -> None:
        known = self.describe(error, self.ctx.connection.address)
        if known is None:
            raise error
        self.ctx.reporter.close()
        self.ctx.reporter.error(known[1])
        self.lastFailure = known[0]

    def _isListed(self, text: str) -> bool:
        return self.ctx.numbered and text.isdigit() and bool(self.ctx.listing)

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

    # -- the shell's own commands -----------------------------------------

    def _cd(self, words: List[str]) -> None:
        if len(words) > 1:
            raise UsageError("cd takes one folder")
        target = remotefolder.change(self.folder, words[0] if words else "/")
        if target and not self.ctx.call("list", target):
            raise UsageError("no folder {} on the server (or it is empty)".format(target))
        self.folder = target
        self._pwd([])

    def _pwd(self, words: List[str]) -> None:
        print("/" + self.folder)

    def _lcd(self, words: List[str]) -> None:
        if len(words) > 1:
            raise UsageError("lcd takes one folder")
        target = os.path.expanduser(words[0] if words else "~")
        try:
            os.chdir(target)
        except OSError as e:
            raise UsageError("cannot change to {}: {}".format(target, e.strerror))
        self._lpwd([])

    def _lpwd(self, words: List[str]) -> None:
        print(os.getcwd())

    def _lls(self, words: List[str]) -> None:
        where = os.path.expanduser(words[0]) if words else "."
        try:
            names = sorted(os.listdir(where))
        except OSError as e:
            raise UsageError("cannot list {}: {}".format(where, e.strerror))
        for name in names:
            print(printable(name) + ("/" if os.path.isdir(os.path.join(where, name)) else ""))

    def _local(self, command: str) -> None:
        if not command.strip():
            self.ctx.reporter.error("'!' needs a command: !ls -l")
            return
        sys.stdout.flush()
        status = subprocess.call(command, shell=True)
        if status:
            self.ctx.reporter.note("(exit status {})".format(status))

    def help(self, topics: List[str]) -> None:
        commands = self.parser.commands
        aliases = {name: names for name, names in ALIASES.items()}
        byAlias = {alias: name for name, names in aliases.items() for alias in names}
        topic = byAlias.get(topics[0], topics[0]) if topics else None
        if topic in commands:
            commands[topic].print_help()
            return
        print("Commands (type 'help COMMAND' or 'COMMAND --help' for details):")
        for name, parser in commands.items():
            if name == "shell":
                continue
            summary = (parser.description or "").split("\n", 1)[0]
            also = " (also {})".format(", ".join(aliases[name])) if name in aliases else ""
            print("  {:<7} {}{}".format(name, summary, also))
        for name, summary in _OWN:
            print("  {:<7} {}".format(name, summary))
        print("After 'list', a number stands for an entry of the listing: 'sget 3', 'hash 2'.")
