"""
Interrupted downloads (kill -9, Ctrl-C) leave a partial file that ``cget``
and a re-run ``mget`` continue; progress bars appear only on a terminal.
"""

from __future__ import annotations

import os
import signal

import pytest

from ftx.cli import status as cli
from tests.support import sha1, writeRandom
from tests.test_cli_helpers import ftx, interruptMidway, spawn, startServer

HUGE = 200 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server, root = startServer(tmp_path_factory, files={"a-small.txt": b"a" * 1000, "c-small.txt": b"c" * 2000})
    server.digest = writeRandom(str(root / "b-huge.bin"), HUGE, seed=3)
    server.rootPath = root
    try:
        yield server
    finally:
        server.stop()


def test_killedSgetThenCget(server, tmp_path):
    partial = tmp_path / ".b-huge.bin.ftx-partial"
    process, _ = interruptMidway(server, ["sget", "b-huge.bin"], tmp_path, partial)
    assert process.returncode == -signal.SIGKILL
    assert 0 < partial.stat().st_size < HUGE
    assert not (tmp_path / "b-huge.bin").exists()
    result = ftx(server, "cget", "b-huge.bin", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert "continued b-huge.bin" in result.err
    assert sha1(str(tmp_path / "b-huge.bin")) == server.digest
    assert not partial.exists()


def test_interruptedMgetRerun(server, tmp_path):
    partial = tmp_path / ".b-huge.bin.ftx-partial"
    interruptMidway(server, ["mget", "*"], tmp_path, partial)
    assert (tmp_path / "a-small.txt").exists() and not (tmp_path / "c-small.txt").exists()
    result = ftx(server, "mget", "*", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert "a-small.txt is already here and identical; skipped" in result.err
    assert "continued b-huge.bin" in result.err
    assert "received c-small.txt" in result.err
    assert "mget: 2 fetched, 1 skipped, 0 failed" in result.err
    assert sha1(str(tmp_path / "b-huge.bin")) == server.digest
    assert (tmp_path / "c-small.txt").read_bytes() == b"c" * 2000
    assert not partial.exists()


def test_ctrlCExitsWithPartialKept(server, tmp_path):
    partial = tmp_path / ".b-huge.bin.ftx-partial"
    process, err = interruptMidway(server, ["sget", "b-huge.bin"], tmp_path, partial, sig=signal.SIGINT)
    assert process.returncode == cli.EXIT_INTERRUPTED
    assert err == "ftx: interrupted; the partial download is kept ('ftx cget b-huge.bin' continues it)\n"
    assert partial.stat().st_size > 0


def test_progressOnTerminal(server, tmp_path):
    import pexpect

    child = spawn(["--server", server.address, "sget", "b-huge.bin"], cwd=tmp_path)
    child.expect(pexpect.EOF)
    child.close()
    output = child.before.decode("utf-8", "replace")
    assert child.exitstatus == 0
    assert "%" in output and "MiB" in output and "\x1b[" in output
    assert "received b-huge.bin" in output


def test_batchProgressOnTerminal(server, tmp_path):
    import pexpect

    child = spawn(["--server", server.address, "mget", "*-small.txt"], cwd=tmp_path)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "mget (2 files)" in child.before.decode("utf-8", "replace")


def test_noProgressWhenQuiet(server, tmp_path):
    import pexpect

    child = spawn(["--server", server.address, "--quiet", "sget", "a-small.txt"], cwd=tmp_path)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert child.before == b""
    assert (tmp_path / "a-small.txt").exists()


def test_noProgressInAPipe(server, tmp_path):
    result = ftx(server, "sget", "b-huge.bin", cwd=tmp_path)
    assert result.returncode == 0
    assert "%" not in result.err and "\r" not in result.err and "\x1b" not in result.err
    assert result.err.startswith("received b-huge.bin")
    assert os.path.getsize(tmp_path / "b-huge.bin") == HUGE
