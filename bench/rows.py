"""
The rows of every table: which server to start and which client to run.

A row pairs a server (started once per case and kept for all its reps) with
a client (started once per transfer). Each client turns an operation into
the argv of the process(es) to run; a client that cannot do an operation
says why, and the table shows that reason instead of a number.

The ftx rows are built from the planned interfaces (``twistd ftx``, the
``ftx`` command, ``ftx.client.api.connect``) and are marked not available while
``import ftx.client.api`` fails, so the harness works before ftx exists and the
rows light up as soon as it does.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent
FTP_USER = "bench"
FTP_PASSWORD = "bench"

Argv = List[str]


class NotSupported(Exception):
    """This client cannot do this operation; the message says why."""


# -- servers ---------------------------------------------------------------


@dataclass
class ServerKind:
    name: str
    script: Optional[str] = None  # a bench/ script taking --port --root

    def argv(self, port: int, root: Path) -> Argv:
        if self.script is not None:
            return [PYTHON, str(BENCH / self.script), "--port", str(port), "--root", str(root)]
        # ftx: the twistd plugin, as a user would run it. Every client of
        # the benchmark comes from 127.0.0.1, so the per-address cap (32 by
        # default, issue 12) is lifted: concurrent-100 and idle.py open
        # more connections than that from one address.
        return [
            str(VENV_BIN / "twistd"), "-n", "--pidfile=", "ftx",
            "--port", f"tcp:{port}:interface=127.0.0.1", "--root", str(root),
            "--max-per-address", "0",
        ]


LIMIT_SERVER = ServerKind("limit", "limit_server.py")
PYFTPDLIB = ServerKind("pyftpdlib", "pyftpd_server.py")
TWISTED_FTP = ServerKind("twisted-ftp", "twisted_ftp_server.py")
FTX_SERVER = ServerKind("ftx")


# -- clients ---------------------------------------------------------------


class Client:
    """
    Builds client argvs. Destinations are always ``dest_dir/NAME``, so the
    harness knows where to look whatever the client.
    """

    name = "?"
    #: the client prints {"seconds": T} for its transfer alone
    reports_time = False

    def download(self, port: int, name: str, dest_dir: Path) -> Argv:
        raise NotSupported("no download")

    def upload(self, port: int, src: Path, name: str) -> Argv:
        raise NotSupported("no upload")

    def mget(self, port: int, mask: str, dest_dir: Path) -> Argv:
        raise NotSupported("no mget")

    def concurrent(self, port: int, names: Sequence[str], dest_dir: Path) -> List[Argv]:
        raise NotSupported("no concurrent mode")

    def hash(self, port: int, name: str) -> Argv:
        raise NotSupported("no hash")

    def startup(self, port: int, local_dir: Path) -> Optional[Argv]:
        """
        A whole process that costs what this client's start-up costs, or
        None where start-up is not part of the figure (clients that time
        themselves).
        """
        return None


class ScriptClient(Client):
    """One of the Python client scripts in bench/ (they share one CLI)."""

    reports_time = True

    def __init__(self, name: str, script: str) -> None:
        self.name = name
        self.script = script

    def _argv(self, port: int, *args: object) -> Argv:
        return [PYTHON, str(BENCH / self.script), "--port", str(port), *map(str, args)]

    def download(self, port, name, dest_dir):
        return self._argv(port, "download", name, dest_dir / name)

    def upload(self, port, src, name):
        return self._argv(port, "upload", src, name)

    def mget(self, port, mask, dest_dir):
        return self._argv(port, "mget", mask, dest_dir)

    def concurrent(self, port, names, dest_dir):
        # One process, one thread or connection per simulated client.
        return [self._argv(port, "concurrent", dest_dir, *names)]


class FtxApiClient(ScriptClient):
    def __init__(self) -> None:
        super().__init__("ftx-api", "ftx_api_client.py")

    def hash(self, port, name):
        return self._argv(port, "hash", name)


class LftpClient(Client):
    """
    lftp, one process per transfer, settings only to make it scriptable.

    TLS negotiation, retries and the transfer log are switched off; HOME is
    pointed into the work dir by the harness so no user rc file applies.
    """

    name = "lftp"
    _SETTINGS = (
        "set cmd:interactive false; set ftp:ssl-allow no; set xfer:log no; "
        "set net:max-retries 1; set net:timeout 60; set xfer:clobber on"
    )

    def _argv(self, port: int, command: str) -> Argv:
        login = f"open -u {FTP_USER},{FTP_PASSWORD} -p {port} 127.0.0.1"
        return ["lftp", "-c", f"{self._SETTINGS}; {login}; {command}"]

    def download(self, port, name, dest_dir):
        return self._argv(port, f"get {_q(name)} -o {_q(dest_dir / name)}")

    def upload(self, port, src, name):
        return self._argv(port, f"put {_q(src)} -o {_q(name)}")

    def mget(self, port, mask, dest_dir):
        return self._argv(port, f"mget -O {_q(dest_dir)} {_q(mask)}")

    def concurrent(self, port, names, dest_dir):
        # lftp has no threads to offer: each simulated client is an lftp.
        return [self.download(port, n, dest_dir) for n in names]


def _q(value: object) -> str:
    """Quote for lftp's command parser, which follows shell rules."""
    return shlex.quote(str(value))


class FtxCliClient(Client):
    """
    The ``ftx`` command, one process per transfer.

    ``--quiet`` and ``--overwrite`` are passed only where ``--help`` lists
    them (the first before the command, the second after it), so the row
    works with any revision of the CLI.
    """

    name = "ftx-cli"

    def __init__(self) -> None:
        self._help: dict = {}

    def _exe(self) -> Argv:
        exe = VENV_BIN / "ftx"
        if exe.exists():
            return [str(exe)]
        return [PYTHON, "-c", "import sys; from ftx.cli.main import main; sys.exit(main())"]

    def _mentions(self, flag: str, *command: str) -> bool:
        if command not in self._help:
            try:
                self._help[command] = subprocess.run(
                    self._exe() + [*command, "--help"], capture_output=True,
                    text=True, timeout=30, env=ftx_env(),
                ).stdout
            except (OSError, subprocess.SubprocessError):
                self._help[command] = ""
        # The whole option, not a part of another (--verify in --verify-tls).
        return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", self._help[command]) is not None

    def _argv(self, port: int, local_dir: Path, command: str, *args: object) -> Argv:
        argv = self._exe() + ["--server", f"127.0.0.1:{port}", "--dir", str(local_dir)]
        if self._mentions("--quiet"):
            argv.append("--quiet")
        argv.append(command)
        if self._mentions("--overwrite", command):
            argv.append("--overwrite")
        return argv + [str(a) for a in args]

    def download(self, port, name, dest_dir):
        return self._argv(port, dest_dir, "sget", name)

    def upload(self, port, src, name):
        if src.name != name:
            raise NotSupported("ftx put keeps the local name")
        return self._argv(port, src.parent, "put", src)

    def mget(self, port, mask, dest_dir):
        return self._argv(port, dest_dir, "mget", mask)

    def concurrent(self, port, names, dest_dir):
        raise NotSupported("n/a: one CLI process per client measures start-up; see ftx-api")

    def startup(self, port, local_dir):
        # Everything a transfer's process does except the transfer: start,
        # import, connect, greet, one small request, quit, exit. The API
        # row's own time also runs from connect to quit, so "wall minus
        # this" and the API's time cover the same steps.
        return self._argv(port, local_dir, "df")


# -- rows ------------------------------------------------------------------


@dataclass
class Row:
    name: str
    server: ServerKind
    client: Client
    kind: str  # "limit", "peer" or "ftx"

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "").replace("+", "_")

    def env(self, home: Path) -> dict:
        env = ftx_env() if self.kind == "ftx" else dict(os.environ)
        env["HOME"] = str(home)  # keeps lftp away from the user's rc files
        return env


def ftx_env() -> dict:
    """
    The environment for ftx processes: the repo first on sys.path, so the
    working tree is measured (and twistd finds twisted/plugins/ftx_plugin.py)
    whether or not ftx is installed.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(REPO), env.get("PYTHONPATH", "")] if p
    )
    return env


def ftx_unavailable() -> Optional[str]:
    """
    None if ``ftx.client.api`` imports; else the reason. A server or CLI that
    is missing later shows up as that row's failure, with its error.
    """
    probe = "import ftx.client.api"
    try:
        done = subprocess.run(
            [PYTHON, "-c", probe], capture_output=True, text=True, timeout=60,
            env=ftx_env(), cwd=REPO,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"n/a: ftx not importable ({e})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"n/a: ftx not importable ({last})"
    return None


def all_rows() -> List[Row]:
    limit = ScriptClient("limit", "limit_client.py")
    ftplib_client = ScriptClient("ftplib", "ftplib_client.py")
    lftp = LftpClient()
    return [
        Row("limit", LIMIT_SERVER, limit, "limit"),
        Row("pyftpdlib + lftp", PYFTPDLIB, lftp, "peer"),
        Row("pyftpdlib + ftplib", PYFTPDLIB, ftplib_client, "peer"),
        Row("twisted-ftp + lftp", TWISTED_FTP, lftp, "peer"),
        Row("ftx-cli", FTX_SERVER, FtxCliClient(), "ftx"),
        Row("ftx-api", FTX_SERVER, FtxApiClient(), "ftx"),
    ]
