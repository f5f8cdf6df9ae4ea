"""
A small command imports only what it uses (issue 14, item 3): the real
C{ftx} command, run against a plain server, must not load the TLS stack,
rich, the interactive shell's libraries, Twisted's endpoint plugins or
name resolution for an address literal. A regression guard on what is
imported, not a timing test: timings on a shared machine prove nothing,
the list of modules does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import Optional
from unittest import mock

from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.cli import parser
from ftx.cli.status import UsageError

from tests.clitools import FTX, SharedServer, ftx, temporaryFolder
from tests.support import ftxEnvironment

_SERVER = SharedServer(files={"a.txt": b"hello", "b.txt": b"world"})

#: Modules a plain C{list}, C{hash} or C{df} has no use for, and what
#: brings each in when it slips back.
HEAVY = {
    "OpenSSL": "the TLS stack (ftx._io.notls must keep it out)",
    "cryptography": "the TLS stack, or age encryption",
    "service_identity": "the TLS stack",
    "twisted.internet._sslverify": "the TLS stack",
    "twisted.protocols.tls": "the TLS stack",
    "rich": "progress bars and sizes (ftx._io.units formats sizes itself)",
    "prompt_toolkit": "the interactive shell",
    "shtab": "completion scripts",
    "argparse_manpage": "the manual page",
    "humanfriendly": "size and duration parsing",
    "pyrage": "age encryption",
    "zstandard": "compressed bodies (not asked for on the loopback)",
    "twisted.internet.endpoints": "endpoints for names and endpoint strings (ftx._io.tcpclient)",
    "twisted.plugin": "endpoint plugins",
    "idna": "host name encoding",
    "ftx.client.e2e": "end-to-end encryption",
    "ftx.cli.shell": "the interactive shell",
    "ftx.cli.downloads": "the download commands (ftx.cli.commands imports them when they run)",
    "ftx.cli.encrypted": "the encrypting commands (ftx.cli.commands imports them when they run)",
    "http.cookiejar": "Twisted's deprecated cookielib alias (ftx._io.lazymodules defers it)",
    "urllib.request": "http.cookiejar (ftx._io.lazymodules defers it)",
    "http.client": "http.cookiejar (ftx._io.lazymodules defers it)",
    "email": "http.client, for http.cookiejar (ftx._io.lazymodules defers it)",
    "twisted.internet.process": "the reactor's process support (ftx._io.lazymodules defers it)",
    "twisted.internet.unix": "the reactor's UNIX sockets (ftx._io.lazymodules defers them)",
    "twisted.internet.udp": "the reactor's UDP (ftx._io.lazymodules defers it)",
    "shutil": "argparse's help formatter (ftx.cli.parser sizes it itself), tempfile",
    "tempfile": "the quick check's digest cache (ftx.cli.quickcheck imports it to save)",
    "getpass": "asking for a passphrase (ftx.cli.keys imports it to ask)",
}

#: What a download needs beyond a small command: its commands (the quick
#: check's digest cache imports tempfile, and so shutil, only to save).
DOWNLOADING = {"ftx.cli.downloads"}

#: What an upload needs beyond a small command: its commands, and the
#: spooling of standard input (tempfile, shutil).
UPLOADING = {"ftx.cli.downloads", "shutil", "tempfile"}


#: Runs the console script as installed, then lists on stderr the modules
#: loaded when it ends (not those deferred and never used, whose code did
#: not run: ftx._io.lazymodules), before its exit handlers end the process.
_LISTING = """
import runpy, sys
deferred = lambda v: type(v).__name__ == "_LazyModule"
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    sys.stderr.write(
        "\\nMODULES " + " ".join(sorted(k for k, v in sys.modules.items() if v is not None and not deferred(v))) + "\\n")
"""


def importedBy(address: str, *args: str):
    """
    The names of the modules loaded when C{ftx --server ADDRESS ARGS}
    exits; the command must succeed.
    """
    result = subprocess.run(
        [sys.executable, "-c", _LISTING, FTX, "--server", address, *args],
        capture_output=True, timeout=60, env=ftxEnvironment(), stdin=subprocess.DEVNULL,
    )
    err = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        raise AssertionError("ftx {} failed ({}):\n{}".format(" ".join(args), result.returncode, err[-2000:]))
    listed = [line for line in err.splitlines() if line.startswith("MODULES ")]
    if not listed:
        raise AssertionError("no module list from ftx {}:\n{}".format(" ".join(args), err[-2000:]))
    return set(listed[-1].split()[1:])


@_SERVER.serves
class SmallCommandImportsTests(TestCase):
    def assertLeftOut(self, *args: str, address: Optional[str] = None, needed=frozenset()) -> None:
        modules = importedBy(address or _SERVER(self).address, *args)
        # It did connect, with the client of ftx.client.
        self.assertIn("twisted.internet.reactor", modules)
        self.assertIn("ftx.client.protocol", modules)
        loaded = {
            name: why for name, why in HEAVY.items()
            if name not in needed and (name in modules or any(m.startswith(name + ".") for m in modules))
        }
        self.assertEqual(loaded, {}, "ftx {} imported modules it has no use for".format(" ".join(args)))

    def test_list(self):
        self.assertLeftOut("list")

    def test_hash(self):
        self.assertLeftOut("hash", "a.txt")

    def test_df(self):
        self.assertLeftOut("df")

    def test_listAsJson(self):
        self.assertLeftOut("list", "--json")

    def test_sget(self):
        """
        A download, in a pipe (no progress bars), needs its own commands
        and nothing else of the list above.
        """
        local = temporaryFolder(self)
        self.assertLeftOut("--dir", str(local), "sget", "a.txt", needed=DOWNLOADING)
        self.assertEqual((local / "a.txt").read_bytes(), b"hello")

    def test_put(self):
        """
        An upload without a recipient or a passphrase needs its own
        commands, not the age encryption (nor the cryptography library).
        """
        local = temporaryFolder(self)
        (local / "up.txt").write_bytes(b"up")
        name = "put-{}.txt".format(os.getpid())
        # The server is shared with tests that list it.
        self.addCleanup(ftx, _SERVER(self), "delete", name)
        self.assertLeftOut("--dir", str(local), "put", "up.txt", "--as", name, "--overwrite", needed=UPLOADING)

    def test_listOnLocalhost(self):
        """
        C{localhost}, the default server's host, needs no name resolution.
        """
        self.assertLeftOut("list", address="localhost:{}".format(_SERVER(self).port))


    def test_noCollectionWhileStarting(self):
        """
        The console script collects no garbage while it imports the reactor
        and the client, then collects again, with what the start-up made
        frozen out of later collections.
        """
        script = """
import gc, sys
from ftx.cli import main
startup = sys.modules["ftx.cli.main"]
collections, atResume = [], []
gc.callbacks.append(lambda phase, info: collections.append(info) if phase == "start" else None)
resume = startup._resumeCollector
def watched():
    atResume.append(len(collections))
    resume()
startup._resumeCollector = watched
sys.argv = ["ftx", "--server", sys.argv[1], "list"]
collections.clear()
try:
    main()
except SystemExit as e:
    status = e.code
print(status, atResume, gc.isenabled(), gc.get_freeze_count() > 10000)
"""
        result = subprocess.run(
            [sys.executable, "-c", script, _SERVER(self).address], capture_output=True, timeout=60, env=ftxEnvironment()
        )
        self.assertEqual(result.stdout.decode().splitlines()[-1], "0 [0] True True", result.stderr.decode()[-2000:])


class HelpWidthTests(SynchronousTestCase):
    """
    The parser's help formatter (which keeps C{shutil} out of a small
    command) is as wide as argparse's own.
    """

    def test_sameColumnsAsShutil(self):
        for columns in ("50", "132", "", "wide", "0", None):
            environment = dict(os.environ)
            environment.pop("COLUMNS", None)
            if columns is not None:
                environment["COLUMNS"] = columns
            with mock.patch.dict(os.environ, environment, clear=True):
                self.assertEqual(parser._terminalColumns(), shutil.get_terminal_size().columns, columns)

    def test_sameHelpAsArgparse(self):
        for columns in ("60", "100"):
            with mock.patch.dict(os.environ, {"COLUMNS": columns}):
                built = parser.buildParser()
                ours = built.commands["sget"].format_help() + built.format_help()
                for command in [built, *built.commands.values()]:
                    command.formatter_class = argparse.RawDescriptionHelpFormatter
                stock = built.commands["sget"].format_help() + built.format_help()
            self.assertEqual(ours, stock)



class OneCommandParserTests(SynchronousTestCase):
    """
    Given the command line, the parser builds only the command it names,
    and parses that line exactly as the whole parser does.
    """

    LINES = [
        ["df"], ["--server", "h:1", "df", "--json"], ["--server=h:1", "-q", "ls", "*.txt"],
        ["--dir", "df", "list", "--server", "x:2"], ["-v", "sget", "a.txt", "-o", "b", "--skip", "--decrypt"],
        ["mget", "*", "--verify", "-r"], ["put", "a", "b", "--as", "c", "--passphrase"], ["hash", "big", "1M"],
        ["mirror", "-R", "here", "there", "--delete"], ["--limit-rate", "1M", "cget", "x"], ["rm", "-r", "d"],
        ["mkdir", "a/b"], ["keygen", "-o", "k"], ["--checksum", "sha1", "--tls", "df", "--udp", "--udp-port", "9"],
    ]

    def parsed(self, parser, line):
        try:
            return vars(parser.parse_args(line))
        except (UsageError, SystemExit) as e:
            return repr(e)

    def test_sameAsTheWholeParser(self):
        for line in self.LINES + [["df", "--bogus"], ["hash"], ["df", "-p", "0"], ["sget", "a", "--overwrite", "--skip"]]:
            self.assertEqual(self.parsed(parser.buildParser(line), line), self.parsed(parser.buildParser(), line), line)

    def test_onlyTheCommandNamed(self):
        for line in self.LINES:
            built = parser.buildParser(line)
            self.assertEqual(len(built.commands), 1, line)
            self.assertEqual(list(built.commands), [self.parsed(built, line)["command"]], line)

    def test_wholeParserWhenNotPlain(self):
        """
        No command, the shell, help, a mistyped command or an option that
        is abbreviated or combined: argparse decides, with every command.
        """
        every = len(parser.buildParser().commands)
        for line in [[], ["shell"], ["--help"], ["-h", "df"], ["--version"], ["dff"], ["--serv", "h:1", "df"],
                     ["-vq", "df"], ["-p1234", "df"], ["--print-completion", "bash"], ["--", "df"], ["--server"]]:
            self.assertEqual(len(parser.buildParser(line).commands), every, line)

@_SERVER.serves
class ExitTests(TestCase):
    def test_leavesWithoutTakingThePythonApart(self):
        """
        Once a command is over, the console script runs the exit handlers
        (one registered while the command ran too), flushes what it printed
        and ends the process with the command's status, without freeing
        every object first.
        """
        script = """
import atexit, os, sys
from ftx.cli import main
def finalizing(event, args, write=os.write):
    # Raised as the interpreter is taken apart, after the exit handlers.
    if event in ("cpython.PyInterpreterState_Clear", "cpython._PySys_ClearAuditHooks"):
        write(2, b"taken apart\\n")
sys.addaudithook(finalizing)
startup = sys.modules["ftx.cli.main"]
original = startup.run
def run(argv):
    atexit.register(lambda: print("handler ran"))
    return original(argv)
startup.run = run
sys.argv = ["ftx", "--server", sys.argv[1]] + sys.argv[2:]
main()
"""
        address = _SERVER(self).address
        listed = subprocess.run([sys.executable, "-c", script, address, "list"], capture_output=True, timeout=60,
                                env=ftxEnvironment())
        missing = subprocess.run([sys.executable, "-c", script, address, "sget", "nosuch"], capture_output=True,
                                 timeout=60, env=ftxEnvironment(), cwd=str(temporaryFolder(self)))
        self.assertEqual((listed.returncode, missing.returncode), (0, 4), listed.stderr + missing.stderr)
        self.assertEqual(listed.stdout.decode().splitlines()[-2:], ["5 B  5  b.txt", "handler ran"])
        self.assertNotIn(b"taken apart", listed.stderr + missing.stderr)
        self.assertIn(b"no such file", missing.stderr)
