"""
A download never overwrites a local file silently: --overwrite, --rename,
--skip, a question on a terminal, or a refusal that changes nothing.
"""

from __future__ import annotations

import pytest

from ftx.cli import status as cli
from ftx.cli.conflicts import renamed
from tests.test_cli_helpers import ftx, spawn, startServer

SERVER = b"the server's copy\n"
LOCAL = b"my local copy\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server, _ = startServer(tmp_path_factory, files={"a.txt": SERVER, "b.txt": b"b\n", "c.txt": b"c\n"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local(tmp_path):
    (tmp_path / "a.txt").write_bytes(LOCAL)
    return tmp_path


def test_refusedWithoutTerminal(server, local):
    result = ftx(server, "sget", "a.txt", cwd=local)
    assert result.returncode == cli.EXIT_CONFLICT
    assert result.err == (
        "ftx: error: a.txt already exists here; nothing was changed (use --overwrite, --rename or --skip)\n"
    )
    assert (local / "a.txt").read_bytes() == LOCAL
    assert sorted(p.name for p in local.iterdir()) == ["a.txt"]


def test_mgetRefusesBeforeDownloadingAnything(server, local):
    result = ftx(server, "mget", "*.txt", cwd=local)
    assert result.returncode == cli.EXIT_CONFLICT
    assert sorted(p.name for p in local.iterdir()) == ["a.txt"]
    assert (local / "a.txt").read_bytes() == LOCAL


def test_overwrite(server, local):
    result = ftx(server, "sget", "a.txt", "--overwrite", cwd=local)
    assert result.returncode == 0, result.err
    assert (local / "a.txt").read_bytes() == SERVER


def test_skip(server, local):
    result = ftx(server, "mget", "*.txt", "--skip", cwd=local)
    assert result.returncode == 0, result.err
    assert (local / "a.txt").read_bytes() == LOCAL
    assert (local / "b.txt").read_bytes() == b"b\n"
    assert "kept the existing a.txt" in result.err


def test_renameCounts(server, local):
    for expected in ("a (1).txt", "a (2).txt"):
        result = ftx(server, "sget", "a.txt", "--rename", cwd=local)
        assert result.returncode == 0, result.err
        assert (local / expected).read_bytes() == SERVER
    assert (local / "a.txt").read_bytes() == LOCAL


def test_identicalIsSkippedWithoutAsking(server, tmp_path):
    (tmp_path / "a.txt").write_bytes(SERVER)
    result = ftx(server, "sget", "a.txt", cwd=tmp_path)
    assert result.returncode == 0
    assert "already here and identical" in result.err


def test_renamedNames(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"")
    (tmp_path / ".noext").write_bytes(b"")
    assert renamed(str(tmp_path / "x.tar.gz")) == str(tmp_path / "x (1).tar.gz")
    assert renamed(str(tmp_path / ".noext")) == str(tmp_path / ".noext (1)")
    (tmp_path / ".x (1).tar.gz.ftx-partial").write_bytes(b"")
    assert renamed(str(tmp_path / "x.tar.gz")) == str(tmp_path / "x (2).tar.gz")


@pytest.mark.parametrize(
    "answer, content, extra",
    [("n", LOCAL, None), ("y", SERVER, None), ("r", LOCAL, "a (1).txt")],
)
def test_askedOnTerminal(server, local, answer, content, extra):
    import pexpect

    child = spawn(["--server", server.address, "sget", "a.txt"], cwd=local)
    child.expect(r"a\.txt already exists\. Overwrite it\? \[y\]es, \[n\]o \(skip\), \[r\]ename, \[a\]ll")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (local / "a.txt").read_bytes() == content
    if extra:
        assert (local / extra).read_bytes() == SERVER


def test_allOverwritesTheRest(server, local):
    import pexpect

    (local / "b.txt").write_bytes(b"old b\n")
    (local / "c.txt").write_bytes(b"old c\n")
    child = spawn(["--server", server.address, "mget", "*.txt"], cwd=local)
    child.expect("Overwrite it")
    child.sendline("a")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (local / "a.txt").read_bytes() == SERVER
    assert (local / "c.txt").read_bytes() == b"c\n"
