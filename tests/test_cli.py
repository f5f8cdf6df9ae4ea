"""
The ``ftx`` command against a real ``twistd ftx`` server: every command,
its output, and one clear line plus a documented exit status per error.
"""

from __future__ import annotations

import hashlib
import json
import socket

import pytest

from ftx.cli import status as cli
from ftx.cli.parser import buildParser
from tests.support import sha1
from tests.test_cli_helpers import connections, ftx, startServer, waitFor

FILES = {
    "a.txt": b"hello\n",
    "b.bin": bytes(range(256)) * 4096,  # 1 MiB
    "photos/x.jpg": b"jpeg" * 100,
    "photos/y.jpg": b"JPEG" * 50,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server, root = startServer(tmp_path_factory, files=FILES)
    server.rootPath = root
    try:
        yield server
    finally:
        server.stop()


def test_listAligned(server, tmp_path):
    result = ftx(server, "list", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.out.splitlines()
    assert [line.split()[-1] for line in lines] == sorted(FILES)
    assert "1.0 MiB" in lines[1] and " 1048576 " in lines[1]
    # Names start in the same column.
    assert len({line.index(line.split()[-1]) for line in lines}) == 1
    assert "4 files" in result.err


def test_listMaskAndJson(server, tmp_path):
    result = ftx(server, "list", "photos/*.jpg", "--json", cwd=tmp_path)
    entries = json.loads(result.out)
    assert [(e["name"], e["size"]) for e in entries] == [("photos/x.jpg", 400), ("photos/y.jpg", 200)]
    assert all(isinstance(e["mtime"], int) for e in entries)
    folder = json.loads(ftx(server, "list", "photos/", "--json", cwd=tmp_path).out)
    assert [e["name"] for e in folder] == ["photos/x.jpg", "photos/y.jpg"]


def test_sgetAndOutput(server, tmp_path):
    result = ftx(server, "sget", "photos/x.jpg", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert (tmp_path / "x.jpg").read_bytes() == FILES["photos/x.jpg"]
    assert "received photos/x.jpg" in result.err
    (tmp_path / "out").mkdir()
    assert ftx(server, "sget", "b.bin", "-o", "out/renamed.bin", cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "renamed.bin").read_bytes() == FILES["b.bin"]
    assert ftx(server, "--dir", str(tmp_path / "out"), "sget", "a.txt").returncode == 0
    assert (tmp_path / "out" / "a.txt").read_bytes() == FILES["a.txt"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".ftx-partial")]


def test_checksumOption(server, tmp_path):
    """
    By default a transfer is checked by XXH3-128 (the server has it);
    --checksum sha1 keeps SHA-1, and the note says which one checked it.
    """
    import xxhash

    result = ftx(server, "sget", "b.bin", "-o", "fast.bin", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert "XXH3-128 " + xxhash.xxh3_128(FILES["b.bin"]).hexdigest()[:12] in result.err
    result = ftx(server, "--checksum", "sha1", "sget", "b.bin", "-o", "sha.bin", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert "SHA-1 " + hashlib.sha1(FILES["b.bin"]).hexdigest()[:12] in result.err
    (tmp_path / "up.bin").write_bytes(FILES["b.bin"][::-1])
    result = ftx(server, "put", "up.bin", "--checksum", "sha1", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert "SHA-1 " + hashlib.sha1(FILES["b.bin"][::-1]).hexdigest()[:12] in result.err
    assert (server.rootPath / "up.bin").read_bytes() == FILES["b.bin"][::-1]
    assert ftx(server, "delete", "up.bin", cwd=tmp_path).returncode == 0
    assert ftx(server, "--checksum", "md5", "list", cwd=tmp_path).returncode == 2


def test_mgetKeepsFolders(server, tmp_path):
    result = ftx(server, "--quiet", "mget", "photos/*", "a.txt", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert result.err == ""
    for name in ("photos/x.jpg", "photos/y.jpg", "a.txt"):
        assert (tmp_path / name).read_bytes() == FILES[name]


def test_hashLikeSha1sum(server, tmp_path):
    digest = hashlib.sha1(FILES["b.bin"]).hexdigest()
    assert ftx(server, "hash", "b.bin", cwd=tmp_path).out == "{}  b.bin\n".format(digest)
    prefix = hashlib.sha1(FILES["b.bin"][:1000]).hexdigest()
    assert ftx(server, "hash", "b.bin", "1000", cwd=tmp_path).out.split()[0] == prefix
    assert ftx(server, "hash", "b.bin:1000", cwd=tmp_path).out.split()[0] == prefix


def test_putFilesFoldersAndGlobs(server, tmp_path):
    (tmp_path / "one.txt").write_bytes(b"one")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "top.txt").write_bytes(b"top")
    (tree / "sub" / "deep.txt").write_bytes(b"deep")
    (tmp_path / "log1.log").write_bytes(b"1")
    (tmp_path / "log2.log").write_bytes(b"22")
    before = connections(server)
    result = ftx(server, "put", "one.txt", "tree", "*.log", cwd=tmp_path)
    assert result.returncode == 0, result.err
    assert "put: 5 sent, 0 failed" in result.err
    assert waitFor(lambda: connections(server) == before + 1, 5, 0.05)
    root = server.rootPath
    assert (root / "one.txt").read_bytes() == b"one"
    assert (root / "tree" / "sub" / "deep.txt").read_bytes() == b"deep"
    assert (root / "tree" / "top.txt").read_bytes() == b"top"
    assert (root / "log2.log").read_bytes() == b"22"
    assert ftx(server, "put", "one.txt", "--as", "renamed/one.txt", cwd=tmp_path).returncode == 0
    assert (root / "renamed" / "one.txt").read_bytes() == b"one"
    assert sha1(str(root / "one.txt")) == hashlib.sha1(b"one").hexdigest()


def test_putMissingUploadsNothing(server, tmp_path):
    (tmp_path / "real.txt").write_bytes(b"x")
    result = ftx(server, "put", "real.txt", "missing.txt", cwd=tmp_path)
    assert result.returncode == cli.EXIT_NOT_FOUND
    assert result.err == "ftx: error: no such local file: missing.txt\n"
    assert not (server.rootPath / "real.txt").exists()


def test_delete(server, tmp_path):
    (server.rootPath / "gone.txt").write_bytes(b"bye")
    result = ftx(server, "delete", "gone.txt", cwd=tmp_path)
    assert result.returncode == 0 and "deleted gone.txt" in result.err
    assert not (server.rootPath / "gone.txt").exists()
    result = ftx(server, "delete", "gone.txt", cwd=tmp_path)
    assert result.returncode == cli.EXIT_NOT_FOUND


def test_df(server, tmp_path):
    text = ftx(server, "df", cwd=tmp_path).out.splitlines()
    assert [line.split()[0] for line in text] == ["total", "used", "free"]
    figures = json.loads(ftx(server, "df", "--json", cwd=tmp_path).out)
    assert figures["total"] >= figures["free"] > 0
    assert figures["used"] == figures["total"] - figures["free"]


def _freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(
    "args, status, words",
    [
        (["--server", "no-such-host.invalid:1234", "list"], cli.EXIT_CONNECT, "unknown host"),
        (["--server", "127.0.0.1:{free}", "list"], cli.EXIT_CONNECT, "connection refused"),
        (["sget", "nothing.txt"], cli.EXIT_NOT_FOUND, "no such file"),
        (["sget", "../etc/passwd"], cli.EXIT_PERMISSION, "root"),
        (["hash", "a.txt", "99"], cli.EXIT_USAGE, "fewer than"),
        (["frobnicate"], cli.EXIT_USAGE, "invalid choice"),
        (["sget"], cli.EXIT_USAGE, "required"),
        (["put", "a", "b", "--as", "c"], cli.EXIT_USAGE, "--as"),
        (["--server", "not an address", "list"], cli.EXIT_USAGE, "address"),
        (["--user", "bob", "list"], cli.EXIT_USAGE, "password"),
    ],
)
def test_errorsAreOneLine(server, tmp_path, args, status, words):
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"x")
    args = [a.replace("{free}", str(_freePort())) for a in args]
    result = ftx(server, *args, cwd=tmp_path)
    assert result.returncode == status, result.err
    assert result.err.count("\n") == 1 and result.err.startswith("ftx: error: "), result.err
    assert words in result.err


def test_integrityMismatchLeavesLocalFile(server, tmp_path):
    (tmp_path / "b.bin").write_bytes(b"not the same start")
    result = ftx(server, "cget", "b.bin", cwd=tmp_path)
    assert result.returncode == cli.EXIT_INTEGRITY
    assert "does not match" in result.err and result.err.count("\n") == 1
    assert (tmp_path / "b.bin").read_bytes() == b"not the same start"


def test_cgetOfCompleteFile(server, tmp_path):
    (tmp_path / "a.txt").write_bytes(FILES["a.txt"])
    result = ftx(server, "cget", "a.txt", cwd=tmp_path)
    assert result.returncode == 0 and "already complete" in result.err


def test_readOnlyServerRefusesPermission(tmp_path_factory, tmp_path):
    server, root = startServer(tmp_path_factory, "--read-only", files={"keep.txt": b"k"})
    try:
        (tmp_path / "new.txt").write_bytes(b"n")
        (tmp_path / "other.txt").write_bytes(b"o")
        put = ftx(server, "put", "new.txt", cwd=tmp_path)
        putMany = ftx(server, "--quiet", "put", "new.txt", "other.txt", cwd=tmp_path)
        delete = ftx(server, "delete", "keep.txt", cwd=tmp_path)
    finally:
        server.stop()
    assert put.returncode == putMany.returncode == delete.returncode == cli.EXIT_PERMISSION
    for result in (put, delete):
        assert result.err.count("\n") == 1 and result.err.startswith("ftx: error: "), result.err
    lines = putMany.err.splitlines()
    assert lines[0].startswith("ftx: error: new.txt: ") and lines[1].startswith("ftx: error: other.txt: ")
    assert lines[2].startswith("ftx: error: 2 of 2 files failed (the first: ") and len(lines) == 3
    assert (root / "keep.txt").exists() and not (root / "new.txt").exists()


def test_helpEverywhere(tmp_path):
    import subprocess

    from tests.test_cli_helpers import FTX

    top = subprocess.run([FTX, "--help"], capture_output=True, timeout=30)
    text = top.stdout.decode()
    assert top.returncode == 0 and "exit status:" in text
    for code, _ in cli.EXIT_CODES:
        assert "\n  {:>3}  ".format(code) in text
    parser = buildParser()
    for name, sub in parser.commands.items():
        assert "examples:" in sub.format_help(), name
    sget = subprocess.run([FTX, "sget", "--help"], capture_output=True, timeout=30)
    assert sget.returncode == 0 and b"--rename" in sget.stdout


def test_noCommandWithoutTerminal(tmp_path):
    from tests.support import runFtx

    result = runFtx([], cwd=str(tmp_path))
    assert result.returncode == cli.EXIT_USAGE
    assert result.stderr.startswith(b"ftx: error: no command")
