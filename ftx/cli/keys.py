"""
The command line's end-to-end encryption options and C{ftx keygen}:
which recipients a C{put} encrypts to, which identities a C{sget --decrypt}
tries, and where keys live by default (C{~/.config/ftx/identity.txt},
under C{$XDG_CONFIG_HOME} when set).

The key code (and the cryptography library) is imported only when a
command uses it: the parser defines these options on every start.

A passphrase never comes from the command line (other users can read it
there): it comes from C{$FTX_PASSPHRASE} or is asked on the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from ftx.cli.progress import isTerminal
from ftx.cli.status import UsageError
from ftx.errors import Conflict

__all__ = ["decryptOptions", "doKeygen", "encryptOptions", "identitiesFor", "keygenOptions", "recipientsFor"]

AGE_SUFFIX = ".age"


def encryptOptions(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("end-to-end encryption (age format; the server stores only ciphertext)")
    g.add_argument("--encrypt-to", "-r", dest="encrypt_to", action="append", metavar="RECIPIENT",
                   help="encrypt to this age1... public key (repeatable); stored as NAME.age unless --as")
    g.add_argument("-R", "--recipients-file", dest="recipients_file", action="append", metavar="FILE",
                   help="encrypt to the age1... keys listed in FILE (repeatable)")
    g.add_argument("--passphrase", action="store_true",
                   help="encrypt with a passphrase: $FTX_PASSPHRASE, else asked on the terminal")


def decryptOptions(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("end-to-end encryption (age format)")
    g.add_argument("--decrypt", action="store_true",
                   help="the file is age-encrypted: write its plaintext (saved without the .age suffix)")
    g.add_argument("-i", "--identity", action="append", metavar="FILE",
                   help="identity file to decrypt with (repeatable; default: {})".format(
                       _shortDefault()))
    g.add_argument("--passphrase", action="store_true",
                   help="decrypt with a passphrase: $FTX_PASSPHRASE, else asked on the terminal")


def keygenOptions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="where to write the identity (default: {}); never overwritten".format(_shortDefault()))


def _shortDefault() -> str:
    return "$XDG_CONFIG_HOME/ftx/identity.txt or ~/.config/ftx/identity.txt"


def _passphrase(confirm: bool):
    from ftx.client.e2e.errors import BadKey
    from ftx.client.e2e.keys import Passphrase

    text = os.environ.get("FTX_PASSPHRASE")
    if text is None:
        if not isTerminal(sys.stdin):
            raise UsageError("--passphrase needs $FTX_PASSPHRASE or a terminal to ask on")
        import getpass  # here: the download parsers take keys' options, rarely a passphrase

        text = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Passphrase again: ") != text:
            raise UsageError("the two passphrases differ; nothing was sent")
    try:
        return Passphrase(text)
    except BadKey as e:
        raise UsageError(str(e))


def _readKeys(reader, path: str, what: str) -> list:
    from ftx.client.e2e.errors import BadKey

    try:
        return reader(path)
    except BadKey as e:
        raise UsageError(str(e))
    except OSError as e:
        raise UsageError("cannot read {} {}: {}".format(what, path, e.strerror))


def recipientsFor(args) -> Optional[list]:
    """
    What C{put}'s options say to encrypt to, or L{None} for a plain upload.

    @raise UsageError: a recipient is not one, or a passphrase is mixed
        with recipients.
    """
    from ftx.client.e2e.errors import BadKey
    from ftx.client.e2e.keys import Recipient, readRecipients

    keys: List[object] = []
    for text in getattr(args, "encrypt_to", None) or []:
        try:
            keys.append(Recipient.parse(text))
        except BadKey as e:
            raise UsageError(str(e))
    for path in getattr(args, "recipients_file", None) or []:
        keys.extend(_readKeys(readRecipients, path, "recipients file"))
    if getattr(args, "passphrase", False):
        if keys:
            raise UsageError("--passphrase cannot be combined with recipients (age allows it alone)")
        keys.append(_passphrase(confirm=True))
    return keys or None


def identitiesFor(args) -> list:
    """
    What C{--decrypt} tries: the C{-i} files, a passphrase, or else the
    default identity file.

    @raise UsageError: none is at hand, or a file holds no identity.
    """
    from ftx.client.e2e.keys import defaultIdentityPath, readIdentities

    keys: List[object] = []
    for path in getattr(args, "identity", None) or []:
        keys.extend(_readKeys(readIdentities, path, "identity file"))
    if getattr(args, "passphrase", False):
        keys.append(_passphrase(confirm=False))
    if not keys:
        default = defaultIdentityPath()
        if not os.path.exists(default):
            raise UsageError("--decrypt needs an identity: -i FILE, --passphrase, or {} (ftx keygen makes it)".format(
                default))
        keys.extend(_readKeys(readIdentities, default, "identity file"))
    return keys


def plainName(name: str) -> str:
    """
    The local name of a decrypted file: without its C{.age}.
    """
    return name[: -len(AGE_SUFFIX)] if name.endswith(AGE_SUFFIX) and len(name) > len(AGE_SUFFIX) else name


def doKeygen(ctx, args) -> int:
    """
    Write a new identity, readable only by the user, and print its
    recipient (the public key others encrypt to) on stdout.
    """
    from ftx.client.e2e.keys import defaultIdentityPath, generateIdentity, writeIdentity

    path = args.output or defaultIdentityPath()
    identity = generateIdentity()
    try:
        writeIdentity(path, identity)
    except FileExistsError:
        raise Conflict("{} exists; an identity is never overwritten (choose another with -o)".format(path))
    ctx.reporter.note("wrote a new identity to {} (keep it secret; it is readable only by you)".format(path))
    ctx.reporter.note("its public key follows; give it to whoever encrypts for you (ftx put --encrypt-to KEY)")
    print(identity.recipient())
    return 0
