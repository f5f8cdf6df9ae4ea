"""
The interactive shell, driven through a pseudo-terminal like a person
would: a numbered listing, ``sget`` by number, errors that keep the
session going, and leaving with ``quit`` or Ctrl-D.
"""

from __future__ import annotations

import hashlib
import re

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

FILES = {"alpha.txt": b"alpha\n", "beta.bin": b"\x00\x01" * 5000, "docs/gamma.md": b"# gamma\n"}
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


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run(child, line: str) -> str:
    """
    Type C{line}, wait for the next prompt; what the command printed,
    without the terminal's escape sequences.
    """
    child.sendline(line)
    # prompt_toolkit redraws "ftx> LINE" as it is typed; accepting the line
    # ends it with "\r\n" (the terminal adds a "\r"): the next prompt
    # after that is the fresh one.
    child.expect_exact("\r\r\n")
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
