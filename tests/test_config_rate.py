"""
C{limit-rate} in the client's config file (C{~/.config/ftx/config.toml}):
read as C{--limit-rate} reads its argument, below the command line (whose
C{--limit-rate 0} lifts it), and a bad value is a one-line usage error
naming the file and the key.
"""

from __future__ import annotations

import os
import time

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli.config import loadConfig
from ftx.cli.status import UsageError
from tests.support import ServerProcess, runFtx, sha1, temporaryFolder, writeRandom
from tests.test_ratelimit_sockets import fastest

RATE = 256 << 10
SIZE = 640 << 10


class ConfigRateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = temporaryFolder(self, "ftx-config-rate-")
        self.path = os.path.join(self.base, "config", "ftx", "config.toml")
        os.makedirs(os.path.dirname(self.path))

    def config(self, text: str) -> dict:
        with open(self.path, "w") as f:
            f.write(text)
        return loadConfig(self.path)

    def test_forms(self) -> None:
        """
        The forms C{--limit-rate} takes: binary letters, SI units, bits, a
        bare number of bytes (a TOML number too), 0 for no limit.
        """
        for text, rate in [
            ('"500K"', 500 << 10),
            ('"12.5MB/s"', 12_500_000),
            ('"100Mbit/s"', 12_500_000),
            ('"1.5MiB/s"', 1536 << 10),
            ('"2048"', 2048),
            ("65536", 65536),
            ('"0"', 0),
        ]:
            self.assertEqual(self.config("limit-rate = {}\n".format(text))["limit-rate"], rate, text)

    def test_badValues(self) -> None:
        for text, problem in [
            ('"fast"', "not a rate: 'fast'"),
            ('"-1M"', "not a rate"),
            ("true", "limit-rate must be a rate"),
            ("[1]", "limit-rate must be a rate"),
        ]:
            with self.assertRaises(UsageError) as caught:
                self.config("limit-rate = {}\n".format(text))
            message = str(caught.exception)
            self.assertIn(self.path, message)
            self.assertIn("limit-rate", message)
            self.assertIn(problem, message)


class CommandLineTests(SynchronousTestCase):
    """
    The real C{ftx} command with a config file of its own.
    """

    def setUp(self) -> None:
        base = temporaryFolder(self, "ftx-config-rate-")
        self.root, self.local = os.path.join(base, "root"), os.path.join(base, "local")
        os.mkdir(self.root)
        os.mkdir(self.local)
        self.configHome = os.path.join(base, "config")
        os.makedirs(os.path.join(self.configHome, "ftx"))
        self.digest = writeRandom(os.path.join(self.root, "a.bin"), SIZE, seed=9)

    def config(self, text: str) -> None:
        with open(os.path.join(self.configHome, "ftx", "config.toml"), "w") as f:
            f.write(text)

    def ftx(self, *args: str):
        started = time.monotonic()
        result = runFtx(list(args), cwd=self.local, env={"XDG_CONFIG_HOME": self.configHome})
        took = time.monotonic() - started
        err = result.stderr.decode("utf-8", "replace")
        self.assertNotIn("Traceback", err)
        return result.returncode, err, took

    def test_configLimitsAndTheFlagWins(self) -> None:
        self.config('limit-rate = "{}"\n'.format(RATE))
        with ServerProcess(self.root) as server:
            code, err, limited = self.ftx("--server", server.address, "get", "a.bin", "-o", "limited.bin")
            self.assertEqual(code, 0, err)
            code, err, lifted = self.ftx("--server", server.address, "get", "a.bin", "-o", "lifted.bin", "--limit-rate", "0")
            self.assertEqual(code, 0, err)
        for name in ("limited.bin", "lifted.bin"):
            self.assertEqual(sha1(os.path.join(self.local, name)), self.digest)
        # The file's limit held the first; the flag lifted it for the second
        # (which also pays for starting the command).
        self.assertGreaterEqual(limited, fastest(SIZE, RATE))
        self.assertLess(lifted, limited - fastest(SIZE, RATE) / 2)

    def test_badValueIsOneLine(self) -> None:
        self.config('limit-rate = "10 furlongs"\n')
        code, err, _ = self.ftx("--server", "127.0.0.1:1", "list")
        self.assertEqual(code, 2, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(os.path.join(self.configHome, "ftx", "config.toml"), err)
        self.assertIn("limit-rate: not a rate: '10 furlongs'", err)
