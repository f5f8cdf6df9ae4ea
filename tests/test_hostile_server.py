"""
The client against a malicious server (issue 12, items 1 and 2).

A fake server (L{tests.hostile}) answers the real ``ftx`` command and the
embedded API with names chosen to write outside the target folder
(C{.ssh/authorized_keys} for C{*.jpg}, C{../x}, absolute names, names
through a local link, names that do not match the mask) and with text
that would rewrite the terminal. Nothing may be written outside the
folder, the good files of a batch must still arrive, the command must exit
non-zero, and nothing the server sent may reach stdout or stderr raw.
"""

from __future__ import annotations

import io
import json
import os

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx.cli.progress import Reporter
from ftx.cli.terminal import printable
from ftx.client import connect, safenames
from ftx.cli.status import EXIT_LOST, EXIT_PERMISSION
from ftx.errors import FtxError, UnsafeName
from ftx.protocol import wire
from tests.clitools import spawn
from tests.hostile import EVIL_TEXT, RAW_CONTROLS, HostileFactory, listenHostile, runCli
from tests.reliability import record, snapshot
from tests.support import temporaryFolder

REFUSED = "hostile-server names refused"


class Sandbox:
    """
    C{top/local}, the folder the client works in, beside C{top/outside},
    which holds a file and must come out of every test untouched, as must
    everything else under C{top}.
    """

    def __init__(self, testCase) -> None:
        self.top = temporaryFolder(testCase, "ftx-hostile-")
        self.local = os.path.join(self.top, "local")
        self.outside = os.path.join(self.top, "outside")
        os.mkdir(self.local)
        os.mkdir(self.outside)
        with open(os.path.join(self.outside, "keep.txt"), "wb") as f:
            f.write(b"must not change")

    def freeze(self) -> None:
        self.before = snapshot(self.top, skip=self.local)

    def localFiles(self) -> set:
        found = set()
        for directory, _, filenames in os.walk(self.local):
            found.update(os.path.relpath(os.path.join(directory, n), self.local) for n in filenames)
        return found

    def check(self, testCase, expected: set, refused: int) -> None:
        """
        Only C{expected} arrived in C{local} (links set up by the test
        aside), nothing changed elsewhere; C{refused} hostile names were
        offered. Counted in the reliability figures.
        """
        after = snapshot(self.top, skip=self.local)
        changed = {k for k in set(self.before) | set(after) if self.before.get(k) != after.get(k)}
        unexpected = {n for n in self.localFiles() - expected if not os.path.islink(os.path.join(self.local, n))}
        record(REFUSED, refused, len(changed) + len(unexpected), "refused", "written outside the target")
        testCase.assertEqual(changed, set())
        testCase.assertEqual(unexpected, set())
        testCase.assertTrue(expected <= self.localFiles(), self.localFiles())


def assertNoRawControls(testCase, *texts: str) -> None:
    for text in texts:
        for control in RAW_CONTROLS:
            testCase.assertNotIn(control, text, "raw {!r} reached the terminal:\n{}".format(control, text))


def refusals(err: str) -> int:
    """
    How many files were reported refused (not counting the closing line).
    """
    return len([line for line in err.splitlines() if "refused the name" in line and "files failed" not in line])


GOOD_A = (b"good-a.jpg", b"A" * 1000)
GOOD_B = (b"good-b.jpg", b"B" * 2000)


def hostileJpgs(sandbox: Sandbox):
    """
    What a hostile server answers C{mget *.jpg} with: two good files and
    five it must not be allowed to write.
    """
    return [
        GOOD_A,
        (b".ssh/authorized_keys", b"ssh-ed25519 AAAA attacker"),
        (os.fsencode(os.path.join(sandbox.outside, "absolute.jpg")), b"absolute"),
        (b"a\x1b]0;pwned\x07.jpg", b"escape in a name"),
        (b"sub/deeper.jpg", b"not what *.jpg matches"),
        (b"..", b"the parent itself"),
        GOOD_B,
    ]


def hostileDeep(sandbox: Sandbox):
    """
    What a hostile server answers C{mget */*.jpg} with: names that match
    the mask but climb out, through C{..}, a local link, or a backslash.
    """
    os.symlink(sandbox.outside, os.path.join(sandbox.local, "link"))
    return [
        (b"../escaped.jpg", b"climbs out"),
        (b"link/through-link.jpg", b"through a local link"),
        (b"d/a\\b.jpg", b"backslash"),
        (b"real/good.jpg", b"G" * 300),
        (b"real/also.jpg", b"H" * 300),
    ]


class SafeNameRulesTests(SynchronousTestCase):
    """
    L{ftx.client.safenames} on its own: the rules every server name meets.
    """

    def test_refusedNames(self) -> None:
        for name in (b"", b"/etc/passwd", b"../x", b"a/../../x", b"a//b", b"./a", b"a\\b", b"a\x00b",
                     b"a\x1bb", b"a\rb", b"a\nb", b"x.ftx-partial", b"a/"):
            self.assertRaises(UnsafeName, safenames.localTarget, "folder", name, None)

    def test_maskRules(self) -> None:
        """
        The server's rules: wildcards never match C{/}; a mask without
        wildcards names a file or a folder whose whole tree it covers.
        """
        self.assertTrue(safenames.matchesMask(b"*.jpg", b"a.jpg"))
        self.assertTrue(safenames.matchesMask(b"*.jpg", b".hidden.jpg"))
        self.assertFalse(safenames.matchesMask(b"*.jpg", b"a/b.jpg"))
        self.assertFalse(safenames.matchesMask(b"*.jpg", b".ssh/authorized_keys"))
        self.assertTrue(safenames.matchesMask(b"photos", b"photos/2024/a.jpg"))
        self.assertTrue(safenames.matchesMask(b"photos", b"photos"))
        self.assertFalse(safenames.matchesMask(b"photos", b"photos2/a.jpg"))
        self.assertFalse(safenames.matchesMask(b"ph*", b"photos/a.jpg"))
        self.assertTrue(safenames.matchesMask(None, b"any/thing"))

    def test_throughLocalLink(self) -> None:
        sandbox = Sandbox(self)
        os.symlink(sandbox.outside, os.path.join(sandbox.local, "link"))
        os.symlink(os.path.join(sandbox.outside, "keep.txt"), os.path.join(sandbox.local, "file.txt"))
        os.symlink(os.path.join(sandbox.outside, "p"), os.path.join(sandbox.local, ".part.txt.ftx-partial"))
        for name in (b"link/x", b"file.txt", b"part.txt"):
            self.assertRaises(UnsafeName, safenames.localTarget, sandbox.local, name, None)
        os.mkdir(os.path.join(sandbox.local, "inner"))
        os.symlink("inner", os.path.join(sandbox.local, "alias"))
        self.assertEqual(safenames.localTarget(sandbox.local, b"alias/x", None), os.path.join(sandbox.local, "alias", "x"))
        self.assertEqual(safenames.localTarget(sandbox.local, b"a/b.jpg", b"*/*.jpg"), os.path.join(sandbox.local, "a", "b.jpg"))


class PrintableTests(SynchronousTestCase):
    def test_controlsEscaped(self) -> None:
        shown = printable(EVIL_TEXT + "\n\x00\x7f\x85\u2066\u2028")
        for control in RAW_CONTROLS + ("\n", "\x00", "\x7f", "\x85", "\u2066", "\u2028"):
            self.assertNotIn(control, shown)
        self.assertIn("\\x1b]0;pwned\\x07", shown)
        self.assertIn("\\u202e", shown)

    def test_ordinaryTextKept(self) -> None:
        text = "été 東京 photo (1).jpg 🙂 tab-less"
        self.assertEqual(printable(text), text)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class LiveDisplayTests(SynchronousTestCase):
    """
    On a terminal the bars are drawn by rich, which writes escape sequences
    of its own: the server's must still not get through, nor its markup.
    """

    def test_barsAndNotes(self) -> None:
        stream = _Terminal()
        reporter = Reporter(stream=stream)
        self.assertTrue(reporter.live)
        evil = "a" + EVIL_TEXT + "[link=http://example.com]x[/link].jpg"
        update = reporter.transfer(evil, 100)
        update(evil, 50, 100)
        reporter.note("received " + evil)
        reporter.transferDone(100)
        reporter.close()
        shown = stream.getvalue()
        # rich's own sequences (CSI colours, CR to redraw) are expected;
        # the server's are not.
        for raw in ("\x07", "\x1b]", "\x1b[2J", "\x9b", "\u202e"):
            self.assertNotIn(raw, shown)
        self.assertIn("received a\\x1b]0;pwned\\x07\\x1b[2J\\x0dgone", shown)
        # Shortened to its end in the bar, markup left as text.
        self.assertIn("x[/link].jpg \x1b[", shown)


class HostileCliTests(TestCase):
    """
    The real ``ftx`` command against the hostile server.
    """

    def setUp(self) -> None:
        self.sandbox = Sandbox(self)

    def serve(self, *args, **kwargs) -> str:
        self.factory = HostileFactory(*args, **kwargs)
        return listenHostile(self, reactor, self.factory)

    async def test_mgetKeepsToTheMask(self) -> None:
        """
        C{mget *.jpg} answered with C{.ssh/authorized_keys}, an absolute
        name, a name with escapes, a deeper name and C{..}: the two good
        files arrive, nothing else is written, each refusal is reported
        (escaped) and the command exits with the permission status.
        """
        files = hostileJpgs(self.sandbox)
        address = self.serve(files)
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "mget", "*.jpg", cwd=self.sandbox.local)
        self.sandbox.check(self, {"good-a.jpg", "good-b.jpg"}, refused=5)
        with open(os.path.join(self.sandbox.local, "good-b.jpg"), "rb") as f:
            self.assertEqual(f.read(), GOOD_B[1])
        self.assertEqual(result.code, EXIT_PERMISSION, result.err)
        self.assertEqual(refusals(result.err), 5, result.err)
        self.assertIn("\\x1b]0;pwned\\x07", result.err)
        assertNoRawControls(self, result.out, result.err)

    async def test_mgetRefusesWhatItDidNotList(self) -> None:
        """
        A server that lists only good files but sends others in the same
        C{mget} gets only the listed ones written; the unsafe extras are
        reported.
        """
        files = hostileJpgs(self.sandbox)
        address = self.serve([GOOD_A, GOOD_B], sent=files)
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "mget", "*.jpg", cwd=self.sandbox.local)
        self.sandbox.check(self, {"good-a.jpg", "good-b.jpg"}, refused=5)
        self.assertTrue(any(c.startswith(b"mget ") for c in self.factory.commands), self.factory.commands)
        self.assertEqual(result.code, EXIT_PERMISSION, result.err)
        self.assertEqual(refusals(result.err), 5, result.err)
        assertNoRawControls(self, result.out, result.err)

    async def test_mgetMatchingNamesThatClimbOut(self) -> None:
        """
        C{mget */*.jpg} answered with names that match the mask but leave
        the folder (C{..}, a local link to elsewhere, a backslash).
        """
        files = hostileDeep(self.sandbox)
        address = self.serve(files)
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "mget", "*/*.jpg", cwd=self.sandbox.local)
        self.sandbox.check(self, {os.path.join("real", "good.jpg"), os.path.join("real", "also.jpg")}, refused=3)
        self.assertEqual(result.code, EXIT_PERMISSION, result.err)
        self.assertEqual(refusals(result.err), 3, result.err)
        assertNoRawControls(self, result.out, result.err)

    async def test_listEscapesNames(self) -> None:
        """
        C{ftx list} shows hostile names with their controls escaped;
        C{--json} keeps them exact.
        """
        files = [(b"a\x1b]0;pwned\x07\r.jpg", b"x"), ("\u202egpj.exe".encode(), b"y"), (b"plain.txt", b"z")]
        address = self.serve(files)
        result = await runCli(self, reactor, address, "list", cwd=self.sandbox.local)
        self.assertEqual(result.code, 0, result.err)
        assertNoRawControls(self, result.out, result.err)
        self.assertIn("a\\x1b]0;pwned\\x07\\x0d.jpg", result.out)
        self.assertIn("\\u202egpj.exe", result.out)
        self.assertIn("plain.txt", result.out)
        listed = await runCli(self, reactor, address, "list", "--json", cwd=self.sandbox.local)
        names = [e["name"] for e in json.loads(listed.out)]
        self.assertEqual(names, ["a\x1b]0;pwned\x07\r.jpg", "\u202egpj.exe", "plain.txt"])
        assertNoRawControls(self, listed.out)

    async def test_errorTextEscaped(self) -> None:
        """
        An error message from the server (here for C{delete}) and a digest
        it made up are printed with their controls escaped.
        """
        address = self.serve([GOOD_A])
        deleted = await runCli(self, reactor, address, "delete", "good-a.jpg", cwd=self.sandbox.local)
        self.assertEqual(deleted.code, EXIT_PERMISSION, deleted.err)
        self.assertIn("\\x1b]0;pwned\\x07", deleted.err)
        hashed = await runCli(self, reactor, address, "hash", "good-a.jpg", cwd=self.sandbox.local)
        self.assertEqual(hashed.code, 0, hashed.err)
        assertNoRawControls(self, deleted.out, deleted.err, hashed.out, hashed.err)

    async def test_sgetToFolderGetsTheNameAskedFor(self) -> None:
        """
        C{sget NAME -o FOLDER} answered with another name: refused, nothing
        written.
        """
        os.mkdir(os.path.join(self.sandbox.local, "dest"))
        address = self.serve([GOOD_A], answers={GOOD_A[0]: (b"../../outside/keep.txt", b"replaced")})
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "sget", "good-a.jpg", "-o", "dest", cwd=self.sandbox.local)
        self.sandbox.check(self, set(), refused=1)
        self.assertEqual(result.code, EXIT_PERMISSION, result.err)
        self.assertIn("the server sent", result.err)
        assertNoRawControls(self, result.out, result.err)

    async def test_bodyFromAnotherOffset(self) -> None:
        """
        An C{sget} or C{mget} answered with a body that claims to start
        mid-file fails at once, leaves no partial file and never hangs.
        """
        address = self.serve([(b"x.jpg", b"0123456789"), (b"y.jpg", b"abcdefghij")], offset=5)
        self.sandbox.freeze()
        for args in (("sget", "x.jpg"), ("mget", "*.jpg")):
            result = await runCli(self, reactor, address, *args, cwd=self.sandbox.local, timeout=30)
            self.assertEqual(result.code, EXIT_LOST, result.err)
            self.assertIn("from byte 5, not 0 as asked", result.err)
            self.assertEqual(os.listdir(self.sandbox.local), [])
        self.sandbox.check(self, set(), refused=0)

    async def test_malformedAnswers(self) -> None:
        """
        Answers that break the protocol (a list entry without a number, a
        download answered with an unrelated success, C{df} without
        figures) end the command with one clear line: no traceback, no
        hang.
        """
        address = self.serve([GOOD_A], raw={
            "list": ["210 a.jpg big 0", "211 1"],
            "sget": ["200 ok" + EVIL_TEXT.replace(" ", "")],
            "df": ["212 plenty"],
        })
        results = [
            await runCli(self, reactor, address, *args, cwd=self.sandbox.local, timeout=30)
            for args in (("list",), ("sget", "good-a.jpg"), ("df",))
        ]
        for result in results:
            self.assertEqual(result.code, EXIT_LOST, result.err)
            self.assertIn("malformed answer from the server", result.err)
            assertNoRawControls(self, result.out, result.err)
        self.assertEqual(os.listdir(self.sandbox.local), [])

    async def test_cgetDoesNotWriteThroughALocalLink(self) -> None:
        """
        C{cget NAME} where the local file is a link to a file elsewhere:
        continuing it would append to that file.
        """
        outsideFile = os.path.join(self.sandbox.outside, "victim.jpg")
        with open(outsideFile, "wb") as f:
            f.write(b"0123456789")
        os.symlink(outsideFile, os.path.join(self.sandbox.local, "victim.jpg"))
        address = self.serve([(b"victim.jpg", b"0123456789APPENDED")])
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "cget", "victim.jpg", cwd=self.sandbox.local)
        self.sandbox.check(self, set(), refused=1)
        self.assertEqual(result.code, EXIT_PERMISSION, result.err)
        assertNoRawControls(self, result.out, result.err)

    async def test_shellListDriven(self) -> None:
        """
        In the shell, C{sget N} takes entry N of the server's listing: a
        hostile entry is refused, a good one fetched; the greeting and the
        listing reach the screen escaped.
        """
        files = [(b"../outside/up.jpg", b"up"), GOOD_A, (os.fsencode(os.path.join(self.sandbox.outside, "abs")), b"abs"),
                 (b"x/..", b"dots")]
        address = self.serve(files, version="ftx/1" + EVIL_TEXT.replace(" ", ""))
        self.sandbox.freeze()
        result = await runCli(self, reactor, address, "shell", cwd=self.sandbox.local,
                              stdin=b"list\nsget 1\nsget 2\nsget 3\nsget 4\ncget 1\nquit\n")
        self.sandbox.check(self, {"good-a.jpg"}, refused=4)
        self.assertEqual(refusals(result.err), 4, result.err)
        assertNoRawControls(self, result.out, result.err)


    async def test_onATerminal(self) -> None:
        """
        On a terminal (bars, a conflict question) a name with bidi controls
        is shown escaped in the question, the bars and the notes, and
        nothing of the server's reaches the screen raw.
        """
        existing, fresh = "\u202egpj.exe", "\u2066new\u2069.jpg"
        address = self.serve([(existing.encode(), b"new copy"), (fresh.encode(), b"N" * 5000), GOOD_A])
        with open(os.path.join(self.sandbox.local, existing), "wb") as f:
            f.write(b"old copy")

        def onTerminal():
            import pexpect

            child = spawn(["--server", address, "mget", "*"], cwd=self.sandbox.local)
            try:
                child.expect("Overwrite it")
                shown = child.before + child.after
                child.sendline("n")
                child.expect(pexpect.EOF)
                shown += child.before
            finally:
                child.close(force=True)
            return shown, child.exitstatus

        shown, status = await deferToThread(onTerminal)
        self.assertEqual(status, 0, shown)
        text = shown.decode("utf-8", "replace")
        self.assertIn("\\u202egpj.exe already exists", text)
        self.assertIn("\\u2066new\\u2069.jpg", text)
        for raw in ("\u202e", "\u2066", "\u2069", "\x07", "\x1b]"):
            self.assertNotIn(raw, text)
        with open(os.path.join(self.sandbox.local, existing), "rb") as f:
            self.assertEqual(f.read(), b"old copy")


class HostileApiTests(TestCase):
    """
    The embedded API (L{ftx.client.connect}) against the hostile server:
    the checks live in the library, not only in the command line.
    """

    def setUp(self) -> None:
        self.sandbox = Sandbox(self)

    async def connected(self, *args, **kwargs):
        self.factory = HostileFactory(*args, **kwargs)
        address = listenHostile(self, reactor, self.factory)
        client = await connect(reactor, address)
        self.addCleanup(client.protocol.transport.abortConnection)
        return client

    async def test_mgetRefusesAndGoesOn(self) -> None:
        """
        C{client.mget} fails at the end with L{UnsafeName}; the good files
        of the batch are in place and nothing else was written; the
        connection is still usable.
        """
        client = await self.connected(hostileJpgs(self.sandbox))
        self.sandbox.freeze()
        received, refused = [], []
        with self.assertRaises(UnsafeName):
            await client.mget("*.jpg", self.sandbox.local, received=received.append, refused=refused.append)
        self.sandbox.check(self, {"good-a.jpg", "good-b.jpg"}, refused=5)
        self.assertEqual(sorted(t.name for t in received), ["good-a.jpg", "good-b.jpg"])
        self.assertEqual([e.name for e in refused], [name for name, _ in hostileJpgs(self.sandbox)[1:-1]])
        self.assertEqual(len(await client.list()), 7)

    async def test_mgetDeepNames(self) -> None:
        client = await self.connected(hostileDeep(self.sandbox))
        self.sandbox.freeze()
        with self.assertRaises(UnsafeName):
            await client.mget("*/*.jpg", self.sandbox.local)
        self.sandbox.check(self, {os.path.join("real", "good.jpg"), os.path.join("real", "also.jpg")}, refused=3)

    async def test_acceptNeverSeesAnUnsafeName(self) -> None:
        """
        A program's C{accept} that builds a path from the name it is given
        stays safe: unsafe names never reach it.
        """
        client = await self.connected(hostileJpgs(self.sandbox))
        self.sandbox.freeze()
        seen = []

        def accept(name: str, size: int):
            seen.append(name)
            return os.path.join(self.sandbox.local, name)

        with self.assertRaises(UnsafeName):
            await client.mget("*.jpg", self.sandbox.local, accept=accept)
        self.assertEqual(seen, ["good-a.jpg", "good-b.jpg"])
        self.sandbox.check(self, {"good-a.jpg", "good-b.jpg"}, refused=5)

    async def test_sgetOtherName(self) -> None:
        """
        C{client.sget} answered with another name than the one asked for
        fails with L{UnsafeName} and writes nothing; the connection goes on.
        """
        client = await self.connected([GOOD_A], answers={GOOD_A[0]: (b"../elsewhere.jpg", b"other")})
        self.sandbox.freeze()
        target = os.path.join(self.sandbox.local, "good-a.jpg")
        with self.assertRaises(UnsafeName):
            await client.sget("good-a.jpg", target)
        self.sandbox.check(self, set(), refused=1)
        self.assertEqual(len(await client.list()), 1)

    async def test_neverThroughALinkedPartialFile(self) -> None:
        """
        A program that names the local path itself is still protected from
        a link planted in place of the partial file: small and large
        downloads fail with a local error, the linked file is untouched,
        the connection goes on.
        """
        large = b"L" * (wire.SMALL_BODY + 1)
        client = await self.connected([(b"small.jpg", b"small"), (b"large.jpg", large)])
        for name in ("small.jpg", "large.jpg"):
            victim = os.path.join(self.sandbox.outside, "victim-" + name)
            with open(victim, "wb") as f:
                f.write(b"victim")
            os.symlink(victim, os.path.join(self.sandbox.local, "." + name + ".ftx-partial"))
        self.sandbox.freeze()
        for name in ("small.jpg", "large.jpg"):
            with self.assertRaises(FtxError):
                await client.sget(name, os.path.join(self.sandbox.local, name))
        self.sandbox.check(self, set(), refused=2)
        self.assertEqual(len(await client.list()), 2)

