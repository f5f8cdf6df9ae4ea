"""
The interactive shell, driven through a pseudo-terminal like a person
would: a numbered listing, ``sget`` by number, errors that keep the
session going, and leaving with ``quit`` or Ctrl-D.
"""

from __future__ import annotations

import pytest

from tests.test_cli_helpers import connections, spawn, startServer, waitFor

FILES = {"alpha.txt": b"alpha\n", "beta.bin": b"\x00\x01" * 5000, "docs/gamma.md": b"# gamma\n"}
PROMPT = "ftx> "


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server, _ = startServer(tmp_path_factory, files=FILES)
    try:
        yield server
    finally:
        server.stop()


def _shell(server, tmp_path, *args):
    env = {"FTX_HISTORY": str(tmp_path / "history")}
    child = spawn(["--server", server.address, *args], cwd=tmp_path, env=env)
    child.expect("Connected to {}".format(server.address))
    child.expect_exact(PROMPT)
    return child


def _run(child, line: str) -> str:
    child.sendline(line)
    child.expect_exact(PROMPT)
    return child.before.decode("utf-8", "replace")


def test_listSgetByNumberQuit(server, tmp_path):
    import pexpect

    local = tmp_path / "local"
    local.mkdir()
    before = connections(server)
    child = _shell(server, local, "shell")
    listing = _run(child, "list")
    lines = [line for line in listing.splitlines() if line.strip() and not line.startswith("list")]
    assert lines[0].split()[0] == "1" and lines[0].endswith("alpha.txt")
    assert lines[2].split()[0] == "3" and lines[2].endswith("docs/gamma.md")
    _run(child, "sget 2")
    assert (local / "beta.bin").read_bytes() == FILES["beta.bin"]
    assert "no entry 7" in _run(child, "sget 7")
    assert "invalid choice" in _run(child, "frobnicate")
    assert "no such file" in _run(child, "sget missing.txt")
    assert "Commands" in _run(child, "help")
    assert "examples:" in _run(child, "help mget")
    _run(child, "mget docs/*")
    assert (local / "docs" / "gamma.md").read_bytes() == FILES["docs/gamma.md"]
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "sget 2" in (local / "history").read_text()
    assert waitFor(lambda: connections(server) == before + 1, 5, 0.05)


def test_hashByNumberAndCtrlD(server, tmp_path):
    import hashlib

    import pexpect

    child = _shell(server, tmp_path)  # no command on a terminal: the shell
    _run(child, "list")
    assert hashlib.sha1(FILES["alpha.txt"]).hexdigest() + "  alpha.txt" in _run(child, "hash 1")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_reconnectsAfterIdleTimeout(tmp_path_factory, tmp_path):
    import time

    import pexpect

    server, _ = startServer(tmp_path_factory, "--idle-timeout", "1", files={"x.txt": b"x"})
    try:
        child = _shell(server, tmp_path, "shell")
        assert "x.txt" in _run(child, "list")
        # Let the server close the idle connection, then carry on.
        time.sleep(1.6)
        assert "x.txt" in _run(child, "list")
        child.sendintr()  # Ctrl-C at the prompt: a fresh prompt, not an exit
        child.expect_exact(PROMPT)
        child.sendline("exit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        server.stop()
