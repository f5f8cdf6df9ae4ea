"""
The options of C{ftx mirror}, kept beside the command rather than in the
parser's table: the include/exclude masks need an action that keeps their
order, which is their meaning.
"""

from __future__ import annotations

import argparse

from ftx.cli.keys import decryptOptions
from ftx.cli.mirrorplan import EXCLUDE, INCLUDE

__all__ = ["mirrorOptions", "mirrorDetails"]

mirrorDetails = """\
Transfers what is new or changed: a file of another size or modification time (rsync's
quick check; downloads keep the server's time), or with --verify another digest. Partial
files are continued, so running an interrupted mirror again goes on where it stopped.
Nothing is deleted without --delete. Masks: --include and --exclude are tried in the order
given, the first that matches decides, and a name none matches is included (rsync's rule);
a mask without '/' matches any part of a name, one with '/' is anchored at the top; a
trailing '/' matches folders only. Empty folders are not mirrored (the server lists files).
With --decrypt, NAME.age on the server is decrypted into NAME here (unchanged when its
time is the server's and the ciphertext's size fits); --verify then fetches them again."""


class _Mask(argparse.Action):
    """
    Append C{(include|exclude, mask)} to one list, in command-line order.
    """

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        rules = list(getattr(namespace, self.dest, None) or [])
        rules.append((self.const, values))
        setattr(namespace, self.dest, rules)


def mirrorOptions(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE",
                   help="the server's folder ('.' is the root); with --reverse, the local folder")
    p.add_argument("target", nargs="?", metavar="TARGET",
                   help="the local folder (default: SOURCE's last part, '.' for the root); "
                        "with --reverse, the server's folder (default: the local folder's name)")
    p.add_argument("-R", "--reverse", action="store_true", help="send a local folder to the server")
    p.add_argument("--delete", action="store_true",
                   help="delete files in TARGET that SOURCE no longer has (never without this flag)")
    p.add_argument("-n", "--dry-run", action="store_true", help="print what would be done; change nothing")
    p.add_argument("--verify", action="store_true",
                   help="compare SHA-1 digests, not only size and modification time (reads every file)")
    p.add_argument("-x", "--exclude", dest="filters", action=_Mask, const=EXCLUDE, metavar="MASK",
                   help="leave out names matching MASK (repeatable)")
    p.add_argument("--include", dest="filters", action=_Mask, const=INCLUDE, metavar="MASK",
                   help="take names matching MASK even if a later --exclude matches (repeatable)")
    p.add_argument("--json", action="store_true", help="print the actions and the summary as JSON")
    # sget's own --decrypt, -i and --passphrase: NAME.age arrives as NAME.
    decryptOptions(p)
    p.set_defaults(filters=None)
