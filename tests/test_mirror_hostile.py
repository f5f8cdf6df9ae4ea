"""
C{ftx mirror} against a malicious server (L{tests.hostile}): names that
climb out of the folder, leave it through a local link, are absolute,
are not under the folder asked for, or hold terminal escapes. Nothing may
be written or deleted outside the target, the good files still arrive,
the command exits non-zero, and nothing the server sent is printed raw.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from ftx.cli.status import EXIT_PERMISSION
from tests.hostile import HostileFactory, listenHostile, runCli
from tests.test_hostile_server import Sandbox, assertNoRawControls

GOOD = [(b"photos/good-a.jpg", b"A" * 1000), (b"photos/deep/good-b.jpg", b"B" * 2000)]


class MirrorHostileTests(TestCase):
    def setUp(self) -> None:
        self.sandbox = Sandbox(self)
        self.copy = os.path.join(self.sandbox.local, "copy")
        os.mkdir(self.copy)
        os.symlink(self.sandbox.outside, os.path.join(self.copy, "link"))

    def hostileNames(self):
        return GOOD + [
            (b"photos/../escaped.jpg", b"climbs out"),
            (b"photos/link/through-link.jpg", b"through a local link"),
            (os.fsencode(os.path.join(self.sandbox.outside, "absolute.jpg")), b"absolute"),
            (b"elsewhere/not-asked.jpg", b"not under photos"),
            (b"photos/a\x1b]0;pwned\x07.jpg", b"escape in a name"),
            (b"photos/d\\b.jpg", b"backslash"),
        ]

    async def test_namesCannotEscapeTheTarget(self) -> None:
        address = listenHostile(self, reactor, HostileFactory(self.hostileNames()))
        with open(os.path.join(self.copy, "mine.txt"), "wb") as f:
            f.write(b"not on the server, kept without --delete")
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "mirror", "photos", "copy", cwd=self.sandbox.local)
        self.sandbox.check(self, {os.path.join("copy", "good-a.jpg"), os.path.join("copy", "deep", "good-b.jpg"),
                                  os.path.join("copy", "mine.txt")}, refused=6)
        self.assertEqual(result.code, EXIT_PERMISSION, result.out + result.err)
        refusals = [line for line in result.err.splitlines()
                    if "refused the name" in line and "files failed" not in line]
        self.assertEqual(len(refusals), 6, result.err)
        self.assertIn("6 of 8 files failed", result.err)
        assertNoRawControls(self, result.out, result.err)

    async def test_deleteReplacesALinkNeverFollowsIt(self) -> None:
        """
        With --delete, the target's link where the server has a folder is
        removed itself (deletions come first), and the server's folder is
        made in its place, inside the target; what the link pointed to is
        untouched, and the other hostile names are still refused.
        """
        address = listenHostile(self, reactor, HostileFactory(self.hostileNames()))
        with open(os.path.join(self.copy, "mine.txt"), "wb") as f:
            f.write(b"only inside the target may go")
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "mirror", "photos", "copy", "--delete",
                              cwd=self.sandbox.local)
        self.sandbox.check(self, {os.path.join("copy", "good-a.jpg"), os.path.join("copy", "deep", "good-b.jpg"),
                                  os.path.join("copy", "link", "through-link.jpg")}, refused=5)
        self.assertFalse(os.path.islink(os.path.join(self.copy, "link")))
        self.assertEqual(os.listdir(self.sandbox.outside), ["keep.txt"])
        self.assertEqual(result.code, EXIT_PERMISSION, result.out + result.err)
        self.assertIn("deleted mine.txt", result.out)
        self.assertIn("deleted link", result.out)
        assertNoRawControls(self, result.out, result.err)

    async def test_dryRunAgainstHostileNames(self) -> None:
        address = listenHostile(self, reactor, HostileFactory(self.hostileNames()))
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "mirror", "photos", "copy", "--dry-run",
                              cwd=self.sandbox.local)
        self.sandbox.check(self, set(), refused=6)
        self.assertIn("would get good-a.jpg", result.out)
        self.assertIn("would get link/through-link.jpg", result.out)
        assertNoRawControls(self, result.out, result.err)
