"""
The C{ftx} command line's grammar: the options every command shares, each
command's own, and the help text with examples. The shell parses its lines
with the same parser.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import List, Optional, Sequence

from ftx import __version__
from ftx.cli.conflicts import OVERWRITE, RENAME, SKIP
from ftx.cli.status import EXIT_CODES, UsageError

__all__ = ["UsageError", "buildParser", "commandIn", "DEFAULT_SERVER"]

DEFAULT_SERVER = "localhost:1234"

#: Other names people type for a command (lftp, sftp, ls, rm habits).
ALIASES = {"list": ["ls"], "sget": ["get"], "delete": ["rm"]}
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """
        One line without the C{ftx: error:} the caller adds, naming the
        command (C{sget: ...}) when it is a command's, and the closest
        command for a mistyped one.
        """
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        typo = _INVALID_CHOICE.search(message)
        if typo is not None:
            import difflib

            choices = re.findall(r"'([^']*)'", typo.group(2))
            close = difflib.get_close_matches(typo.group(1), choices, n=1)
            hint = "; did you mean {}?".format(close[0]) if close else ""
            raise UsageError("unknown command {!r}{} (see '{} --help')".format(typo.group(1), hint, self.prog))
        raise UsageError("{}{} (see '{} --help')".format(where, message, self.prog))


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """
    argparse's formatter, as wide as the terminal, found without importing
    C{shutil}: argparse builds a formatter for every option it adds, and the
    first one's C{import shutil} (which loads the bz2 and lzma modules) was
    4% of the CPU time of C{ftx df} (py-spy).
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width=None) -> None:
        if width is None:
            width = _terminalColumns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminalColumns() -> int:
    """
    The columns C{shutil.get_terminal_size()} gives: C{$COLUMNS}, else
    those of the terminal on stdout, else 80.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join("  " + line for line in lines)


def _commonOptions() -> argparse.ArgumentParser:
    # SUPPRESS lets these appear before or after the command word without
    # the subcommand's defaults hiding a value given before it.
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS, formatter_class=_Formatter)
    g = common.add_argument_group("connection and output")
    g.add_argument("--server", metavar="ADDRESS",
                   help="[ftx://|ftxs://][USER@]HOST[:PORT][/FOLDER], [IPV6]:PORT or a Twisted endpoint string "
                        "(default: $FTX_SERVER, else the config file, else {})".format(DEFAULT_SERVER))
    g.add_argument("-p", "--port", type=_port, metavar="PORT", help="the server's port (replaces the address's)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="tell on stderr where ftx connects, the checksum agreed on, and how long it took")
    g.add_argument("--dir", metavar="LOCALDIR", help="local folder to work in (default: the current one)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no notes; errors only")
    g.add_argument("--tls", action="store_true", help="connect with TLS")
    g.add_argument("--cafile", metavar="FILE", help="trust the certificate authority in FILE (PEM)")
    g.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    g.add_argument("--cert", metavar="FILE", help="client certificate and key (PEM)")
    g.add_argument("--user", metavar="NAME", help="log in as NAME")
    g.add_argument("--password-file", metavar="FILE",
                   help="read the password from FILE (else $FTX_PASSWORD, else ask on the terminal)")
    g.add_argument("--checksum", choices=("auto", "sha1", "xxh128"),
                   help="what checks each transfer end to end: auto (default) is XXH3-128 when the server has it, "
                        "else SHA-1")
    g.add_argument("--compress", choices=("auto", "zstd", "none"),
                   help="zstd-compress transfers: auto (default) does on links slower than zstd (not to this "
                        "machine) and for uploads whose first MiB compresses well; blocks that do not shrink go raw")
    g.add_argument("--limit-rate", metavar="RATE", type=_rate(1),
                   help="at most RATE bytes a second each way (500K, 12.5MB/s, 1.5MiB/s, 100Mbit/s; "
                        "a bare number is bytes, as in curl)")
    g.add_argument("--bwlimit", metavar="RATE", dest="limit_rate", type=_rate(1024),
                   help="the same, as rsync writes it: a bare number is KiB/s")
    return common


def _rate(bareUnit: int):
    """
    The argparse type of a rate option: bytes a second (0: no limit, which
    also overrides the config file's); a bare number counts C{bareUnit}s.
    """
    from ftx._io.ratelimit import parseRate

    def rate(text: str):
        try:
            return parseRate(text, bareUnit)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))

    return rate


def _conflictOptions(parser: argparse.ArgumentParser, where: str = "here",
                     rename: str = "save as 'name (1).ext', 'name (2).ext', ...",
                     skip: str = "keep it, download nothing") -> None:
    title = "when a file of the same name and other content exists {}".format(where)
    g = parser.add_argument_group(title).add_mutually_exclusive_group()
    g.add_argument("--overwrite", dest="conflict", action="store_const", const=OVERWRITE,
                   help="replace it (once the new copy is complete and checked)")
    g.add_argument("--rename", dest="conflict", action="store_const", const=RENAME, help=rename)
    g.add_argument("--skip", dest="conflict", action="store_const", const=SKIP, help=skip)
    parser.set_defaults(conflict=None)
    parser.add_argument("--verify", action="store_true",
                        help="compare a file of the same size by SHA-1 even when its modification time matches "
                             "too (without it, same size and time means unchanged, as rsync's quick check)")


_DESCRIPTION = """\
Transfer files to and from an ftx server. Without a command, on a terminal,
ftx opens an interactive shell. 'ftx COMMAND --help' explains each command.
Downloads go to the current folder (or --dir); an existing file is never
overwritten silently; an interrupted download is kept for 'ftx cget'."""


def buildParser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """
    The parser of the C{ftx} command and of each shell line. It is long
    because it is a table: one block per command with its summary,
    examples and options, read top to bottom as C{ftx --help} shows them;
    split up, the help text would be scattered over functions.

    Given the command line C{argv}, and when it names its command plainly
    (L{commandIn}), only that command's parser is built: parsing C{argv}
    gives the same result, errors and help as with the whole parser, and
    building the other commands' parsers was 4% of the instructions of
    C{ftx df} (valgrind). Without C{argv}, or for the shell, every command
    is built.
    """
    common = _commonOptions()
    only = None if argv is None else commandIn(argv, common)
    raw = _Formatter
    codes = "\n".join("  {:>3}  {}".format(code, text) for code, text in EXIT_CODES)
    parser = _Parser(
        prog="ftx", parents=[common], formatter_class=raw, description=_DESCRIPTION,
        epilog=_examples(
            "ftx --server files.example.com:1234 list",
            "ftx --server ftx://bob@files.example.com/photos ls",
            "FTX_SERVER=files.example.com:1234 ftx sget report.pdf",
            "ftx shell",
            "ftx --print-completion bash > ~/.local/share/bash-completion/completions/ftx",
        ) + "\n\nexit status:\n" + codes,
    )
    parser.add_argument("--version", action="version", version="ftx " + __version__)
    parser.add_argument("--print-completion", choices=("bash", "zsh", "fish", "tcsh"), metavar="SHELL",
                        help="print a completion script for SHELL (bash, zsh, fish, tcsh) and exit")
    parser.add_argument("--print-man-page", action="store_true", help="print the manual page (roff) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    parser.commands = {}

    def command(name: str, summary: str, examples: List[str], details: str = ""):
        p = sub.add_parser(name, parents=[common], formatter_class=raw, help=summary,
                           aliases=ALIASES.get(name, []),
                           description=summary + ("\n\n" + details if details else ""),
                           epilog=_examples(*examples))
        # An alias ("ls") runs its command ("list").
        p.set_defaults(command=name)
        parser.commands[name] = p
        return p

    for name, build in _COMMANDS:
        if only is None or name == only:
            build(command)
    return parser


def commandIn(argv: Sequence[str], common: argparse.ArgumentParser) -> Optional[str]:
    """
    The command C{argv} runs (an alias gives its command), when it says so
    plainly: a command word after nothing but the options of C{common},
    each written in full (C{--server ADDRESS}, C{--server=ADDRESS}, C{-q}).
    L{None} when it does not, or when the whole parser is needed anyway
    (no command, the shell, C{--help}, C{--version}, an abbreviated option,
    C{-vq}, a mistyped command): then argparse decides, with every command.
    """
    takesValue, flags = set(), set()
    for action in common._actions:
        (flags if action.nargs == 0 else takesValue).update(action.option_strings)
    commands = {name: name for name, _ in _COMMANDS}
    commands.update((alias, name) for name, aliases in ALIASES.items() for alias in aliases)
    index = 0
    while index < len(argv):
        word = argv[index]
        if word.startswith("-"):
            option, equals, _ = word.partition("=")
            if option in takesValue:
                index += 1 if equals else 2
            elif word in flags:
                index += 1
            else:
                return None
            continue
        found = commands.get(word)
        return None if found == "shell" else found
    return None


def _list(command) -> None:
    p = command("list", "List the files on the server, with their sizes.",
                ["ftx list", "ftx list '*.jpg'", "ftx list photos/", "ftx list --json"],
                "MASK may hold the wildcards * ? [...], which never match '/'.")
    p.add_argument("mask", nargs="?", metavar="MASK", help="only the files matching MASK (a folder lists what is under it)")
    p.add_argument("--json", action="store_true", help="print a JSON array of {name, size, mtime}")


def _sget(command) -> None:
    from ftx.cli.keys import decryptOptions

    p = command("sget", "Download one file, or a folder with -r.",
                ["ftx sget report.pdf", "ftx sget photos/a.jpg -o holiday.jpg", "ftx sget big.iso --rename",
                 "ftx sget -r photos", "ftx sget notes.txt -o - | less"],
                "The file appears under its name only once complete and its digest checked, with the\n"
                "server's modification time. If the download is cut off, the part received is kept and\n"
                "running the same command again continues it (after the server checks that part).")
    p.add_argument("name", metavar="NAME", help="the file on the server ('photos/' or 'photos/.' is the folder)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="where to save it (a folder keeps the name; '-' writes the file to stdout)")
    p.add_argument("-r", "--recursive", action="store_true", help="download a folder and everything in it")
    p.add_argument("-c", "--continue", dest="resume", action="store_true",
                   help="continue a shorter local copy, as wget -c (the same as 'ftx cget')")
    _conflictOptions(p)
    decryptOptions(p)


def _cget(command) -> None:
    p = command("cget", "Continue an interrupted download.",
                ["ftx cget big.iso", "ftx cget photos/a.jpg -o holiday.jpg"],
                "Continues from the partial file an interrupted sget or mget left, or from a shorter\n"
                "local copy. The server first checks that the local part matches its file.")
    p.add_argument("name", metavar="NAME", help="the file on the server")
    p.add_argument("-o", "--output", metavar="PATH", help="the local file to continue (default: NAME's base name)")


def _mget(command) -> None:
    from ftx.cli.keys import decryptOptions

    p = command("mget", "Download every file matching one or more masks, keeping their folders.",
                ["ftx mget '*.jpg'", "ftx mget 'photos/*' --skip", "ftx mget '*' --overwrite"],
                "Re-running mget after an interruption continues partial files and skips files that\n"
                "are already here: the same size and modification time as the server's (rsync's quick\n"
                "check), else the same size and SHA-1 (always so with --verify). Without a terminal, a file in\n"
                "the way is refused and the rest goes on; the exit status is then 7.")
    p.add_argument("masks", nargs="+", metavar="MASK", help="quote it so that your shell leaves it alone")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="also download the folders MASK matches, with everything in them ('.' is all)")
    _conflictOptions(p)
    decryptOptions(p)


def _mirror(command) -> None:
    from ftx.cli.mirroroptions import mirrorDetails, mirrorOptions

    p = command("mirror", "Make a local folder hold what a server folder holds (or the reverse, with -R).",
                ["ftx mirror photos", "ftx mirror photos ~/backup/photos --delete",
                 "ftx mirror -R ~/site www --delete --exclude '*.tmp'", "ftx mirror photos --dry-run"],
                mirrorDetails)
    mirrorOptions(p)


def _hash(command) -> None:
    p = command("hash", "Print the SHA-1 of a file on the server, like sha1sum.",
                ["ftx hash report.pdf", "ftx hash big.iso 1M", "ftx hash big.iso:1048576"])
    p.add_argument("name", metavar="NAME", help="the file, or NAME:LENGTH")
    p.add_argument("length", nargs="?", type=_size, metavar="LENGTH",
                   help="hash only the first LENGTH bytes (1048576, 64K, 1M, 1.5GiB)")


def _put(command) -> None:
    from ftx.cli.keys import encryptOptions

    p = command("put", "Upload files, folders (recursively) or globs, over one connection.",
                ["ftx put report.pdf", "ftx put notes.txt --as archive/2024-notes.txt",
                 "ftx put photos/", "ftx put '*.log'", "tar c photos | ftx put - --as photos.tar"],
                "A folder is uploaded with its own name as the first part of the remote names. A file\n"
                "already on the server is skipped when identical; otherwise see the options below.\n"
                "'-' reads standard input (spooled to a temporary file first, as its size must be known).")
    p.add_argument("files", nargs="+", metavar="FILE", help="a file, a folder, a glob, or - for stdin")
    p.add_argument("--as", dest="remote", metavar="NAME", help="the name on the server (one FILE only)")
    _conflictOptions(p, "on the server", "let the server save it as 'name (1).ext', ...", "keep the server's file")
    encryptOptions(p)


def _delete(command) -> None:
    p = command("delete", "Delete files (and folders, with -r) on the server.",
                ["ftx delete old.log", "ftx delete a.txt b.txt '*.tmp'", "ftx delete -r photos"],
                "Goes on past a name that does not exist, and exits with 4 at the end.")
    p.add_argument("names", nargs="+", metavar="NAME", help="a file, a mask, or a folder with -r")
    p.add_argument("-r", "--recursive", action="store_true", help="remove folders and everything in them")


def _mkdir(command) -> None:
    p = command("mkdir", "Create folders on the server (and the folders above them).",
                ["ftx mkdir photos", "ftx mkdir archive/2024"])
    p.add_argument("names", nargs="+", metavar="NAME")


def _df(command) -> None:
    p = command("df", "Show the server's total, used and free space.",
                ["ftx df", "ftx df --json", "ftx df --udp", "ftx df --udp --udp-port 1235"],
                "With --udp the question goes in one UDP datagram (the server needs --udp-port).")
    p.add_argument("--json", action="store_true", help="print {total, free, used} as JSON")
    p.add_argument("--udp", action="store_true", help="ask over UDP instead of a connection")
    p.add_argument("--udp-port", type=_port, metavar="PORT", help="the server's UDP port (default: its TCP port)")


def _keygen(command) -> None:
    from ftx.cli.keys import keygenOptions

    p = command("keygen", "Make an age identity for end-to-end encryption and print its public key.",
                ["ftx keygen", "ftx keygen -o ~/keys/ftx.txt",
                 "ftx put notes.txt --encrypt-to age1...", "ftx sget notes.txt.age --decrypt"],
                "The identity file (readable only by you) decrypts what was encrypted to its public key.")
    keygenOptions(p)


def _shell(command) -> None:
    command("shell", "Open an interactive session over one connection.", ["ftx shell", "ftx --server host:1234"],
            "Type 'help' at the prompt. 'list' numbers its entries: 'sget 3' fetches the third.")


#: Every command, in the order of C{ftx --help}, and what builds its parser.
_COMMANDS = (
    ("list", _list), ("sget", _sget), ("cget", _cget), ("mget", _mget), ("mirror", _mirror), ("hash", _hash),
    ("put", _put), ("delete", _delete), ("mkdir", _mkdir), ("df", _df), ("keygen", _keygen), ("shell", _shell),
)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError("not a port number: {!r}".format(text))
    return int(text)


def _size(text: str) -> int:
    from ftx._io.units import parseSize

    try:
        return parseSize(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
