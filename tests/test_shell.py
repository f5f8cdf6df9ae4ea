"""
The interactive shell, driven through a pseudo-terminal like a person
would: a numbered listing, ``sget`` by number, errors that keep the
session going, and leaving with ``quit`` or Ctrl-D.
"""

from __future__ import annotations

import hashlib
import re
import shlex

from twisted.trial.unittest import SynchronousTestCase

from tests.clitools import (
    SharedServer,
    connectedTo,
    connections,
    disconnections,
    serverFor,
    spawn,
    temporaryFolder,
    waitFor,
)

FILES = {
    "alpha.txt": b"alpha\n", "beta.bin": b"\x00\x01" * 5000, "docs/gamma.md": b"# gamma\n", "my file.txt": b"spaces\n",
}
#: prompt_toolkit draws "ftx> " as "ftx>" and a cursor move.
PROMPT = "ftx>"

SERVER = SharedServer(files=FILES)


def _shell(server, folder, *args):
    # pexpect does not answer prompt_toolkit's cursor position request.
    env = {"FTX_HISTORY": str(folder / "history"), "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = spawn(["--server", server.address, *args], cwd=folder, env=env)
    child.expect("Connected to {}".format(server.address))
    child.expect_exact(PROMPT)
    return child


_LINE_ACCEPTED = "\x1b[?2004l"
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run(child, line: str) -> str:
    """
    Type C{line}, wait for the next prompt; what the command printed,
    without the terminal's escape sequences.
    """
    child.sendline(line)
    # prompt_toolkit redraws "ftx> LINE" as it is typed (and a completion
    # menu under it); when it hands the line over it turns the terminal's
    # bracketed paste off: the next prompt after that is the fresh one.
    child.expect_exact(_LINE_ACCEPTED)
    child.expect_exact(PROMPT)
    return _ESCAPE.sub("", child.before.decode("utf-8", "replace"))


@SERVER.serves
class ShellTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)

    def test_listSgetByNumberQuit(self) -> None:
        import pexpect

        server, local = self.server, self.local
        before = connections(server)
        child = _shell(server, local, "shell")
        listing = _run(child, "list")
        lines = [line for line in listing.splitlines() if line.strip() and not line.startswith("list")]
        self.assertEqual(lines[0].split()[0], "1")
        self.assertTrue(lines[0].endswith("alpha.txt"), lines)
        self.assertEqual(lines[2].split()[0], "3")
        self.assertTrue(lines[2].endswith("docs/gamma.md"), lines)
        _run(child, "sget 2")
        self.assertEqual((local / "beta.bin").read_bytes(), FILES["beta.bin"])
        self.assertIn("no entry 7", _run(child, "sget 7"))
        self.assertIn("unknown command 'frobnicate'", _run(child, "frobnicate"))
        self.assertIn("no such file", _run(child, "sget missing.txt"))
        self.assertIn("Commands", _run(child, "help"))
        self.assertIn("examples:", _run(child, "help mget"))
        _run(child, "mget docs/*")
        self.assertEqual((local / "docs" / "gamma.md").read_bytes(), FILES["docs/gamma.md"])
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)
        self.assertIn("sget 2", (local / "history").read_text())
        self.assertTrue(waitFor(lambda: connections(server) == before + 1, 5, 0.05), server.output())

    def test_hashByNumberAndCtrlD(self) -> None:
        import pexpect

        child = _shell(self.server, self.local)  # no command on a terminal: the shell
        _run(child, "list")
        self.assertIn(hashlib.sha1(FILES["alpha.txt"]).hexdigest() + "  alpha.txt", _run(child, "hash 1"))
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)


class IdleShellTests(SynchronousTestCase):
    def test_reconnectsAfterIdleTimeout(self) -> None:
        import pexpect

        server = serverFor(self, "--idle-timeout", "1", files={"x.txt": b"x"})
        child = _shell(server, temporaryFolder(self), "shell")
        self.assertIn("x.txt", _run(child, "list"))
        self.assertTrue(connectedTo(child.pid, server))
        # Let the server close the idle connection and the client see it
        # closed, then carry on.
        self.assertTrue(waitFor(lambda: disconnections(server) == 1, 10, 0.05), server.output())
        self.assertTrue(waitFor(lambda: not connectedTo(child.pid, server), 10, 0.05))
        self.assertIn("x.txt", _run(child, "list"))
        self.assertEqual(connections(server), 2, server.output())
        child.sendintr()  # Ctrl-C at the prompt: a fresh prompt, not an exit
        child.expect_exact(PROMPT)
        child.sendline("exit")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)


@SERVER.serves
class ShellCompletionTests(SynchronousTestCase):
    """
    Tab completion in a real terminal: names with spaces come back quoted
    (remote for sget, local for put), and lftp/sftp's commands work.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)

    def tearDown(self) -> None:
        for name in ("up loaded.txt", "docs/up loaded.txt"):
            path = self.server.rootPath / name
            if path.exists():
                path.unlink()

    def test_tabCompletesQuotedRemoteAndLocalNames(self) -> None:
        import pexpect

        child = _shell(self.server, self.local, "shell")
        child.send("get my\t")
        child.expect_exact("'my file.txt'")
        _run(child, "")
        self.assertEqual((self.local / "my file.txt").read_bytes(), FILES["my file.txt"])
        (self.local / "up loaded.txt").write_bytes(b"up\n")
        child.send("put up\t")
        child.expect_exact("'up loaded.txt'")
        _run(child, "")
        self.assertEqual((self.server.rootPath / "up loaded.txt").read_bytes(), b"up\n")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)

    def test_remoteAndLocalFolders(self) -> None:
        import pexpect

        (self.local / "sub").mkdir()
        (self.local / "up loaded.txt").write_bytes(b"up\n")
        child = _shell(self.server, self.local, "shell")
        self.assertIn("/docs", _run(child, "cd docs"))
        self.assertIn("/docs", _run(child, "pwd"))
        listing = _run(child, "ls")
        self.assertIn("docs/gamma.md", listing)
        self.assertNotIn("alpha.txt", listing)
        _run(child, "put 'up loaded.txt'")
        self.assertEqual((self.server.rootPath / "docs" / "up loaded.txt").read_bytes(), b"up\n")
        self.assertIn("no folder nowhere", _run(child, "cd /nowhere"))
        self.assertIn(str(self.local / "sub"), _run(child, "lcd sub"))
        _run(child, "get gamma.md")
        self.assertEqual((self.local / "sub" / "gamma.md").read_bytes(), FILES["docs/gamma.md"])
        self.assertIn("gamma.md", _run(child, "lls"))
        self.assertIn(str(self.local / "sub"), _run(child, "lpwd"))
        self.assertIn("hello from sh", _run(child, "!echo hello from sh"))
        self.assertIn("/", _run(child, "cd .."))
        self.assertIn("alpha.txt", _run(child, "rm 'docs/up loaded.txt'") + _run(child, "ls alpha.txt"))
        self.assertFalse((self.server.rootPath / "docs" / "up loaded.txt").exists())
        help = _run(child, "help")
        for word in ("lcd", "lls", "pwd", "(also ls)", "(also get)", "(also rm)"):
            self.assertIn(word, help)
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)


class CompleterTests(SynchronousTestCase):
    """
    L{ftx.cli.shellcompletion.complete} without a terminal.
    """

    NAMES = ["my file.txt", "alpha.txt", "docs/gamma.md", "docs/my notes/a.txt", "my\x1b[2Jtrap", "al\npha"]
    KINDS = {"sget": "remote", "cd": "remote folders", "put": "local", "lcd": "local folders"}

    def complete(self, text: str):
        from ftx.cli.shellcompletion import complete

        return complete(text, ["sget", "shell", "put", "cd", "lcd"], self.KINDS, lambda: self.NAMES)

    def test_namesWithSpacesAreQuoted(self) -> None:
        self.assertEqual(self.complete("sget my"), (5, ["'my file.txt'"]))
        self.assertEqual(self.complete("sget 'my f"), (5, ["'my file.txt'"]))
        self.assertEqual(self.complete("sget my\\ f"), (5, ["'my file.txt'"]))
        self.assertEqual(self.complete("sget docs/my"), (5, ["'docs/my notes/'"]))

    def test_commandsAndFolders(self) -> None:
        self.assertEqual(self.complete("s"), (0, ["sget", "shell"]))
        self.assertEqual(self.complete("cd "), (3, ["docs/"]))
        self.assertEqual(self.complete("sget --ov"), (5, []))
        self.assertEqual(self.complete("!ls "), (4, []))

    def test_localPaths(self) -> None:
        folder = temporaryFolder(self)
        (folder / "a b.txt").write_bytes(b"")
        (folder / "sub dir").mkdir()
        self.assertEqual(self.complete("put {}/a".format(folder)), (4, [shlex.quote("{}/a b.txt".format(folder))]))
        self.assertEqual(self.complete("lcd {}/".format(folder)), (4, [shlex.quote("{}/sub dir/".format(folder))]))
