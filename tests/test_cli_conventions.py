"""
The ``ftx`` command as people coming from lftp, sftp, curl and rsync use it
(issue 13): the address forms they type, aliases and flags they look for,
a closed pipe, the config file and ~/.netrc, completion scripts and the man
page, sizes with units, and the messages for common set-up mistakes. Each
drives the real ``ftx`` (or ``twistd ftx``) in a subprocess or a pty.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys

from rich.progress import ProgressSample
from twisted.trial.unittest import SynchronousTestCase

from tests.clitools import FTX, SharedServer, ftx, serverFor, spawn, temporaryFolder
from tests.support import BIN, runFtx

BIG = bytes(range(256)) * 8192  # 2 MiB
FILES = {
    "my file.txt": b"spaces\n",
    "alpha.txt": b"alpha\n",
    "docs/gamma.md": b"# gamma\n",
    "big.bin": BIG,
}
#: Enough entries that "list --json" overflows a pipe's buffer.
MANY = {"many/file-{:04d}.txt".format(i): b"x" for i in range(1200)}

SERVER = SharedServer(files=dict(FILES, **MANY))
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _isolated(folder, **extra) -> dict:
    """
    An environment without the user's own config file and ~/.netrc.
    """
    env = {"HOME": str(folder), "XDG_CONFIG_HOME": str(folder / "config"), "NETRC": str(folder / "netrc")}
    env.update(extra)
    return env


def _run(args, folder, env=None, **kwargs):
    result = runFtx(list(args), cwd=str(folder), env=_isolated(folder, **(env or {})), **kwargs)
    result.out = result.stdout.decode("utf-8", "replace")
    result.err = result.stderr.decode("utf-8", "replace")
    if "Traceback" in result.err:
        raise AssertionError("ftx printed a traceback:\n" + result.err)
    return result


@SERVER.serves
class AddressTests(SynchronousTestCase):
    """
    Item 1: the address forms of other tools, and one line for the rest.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)

    def test_urlAndBlanksAndPortFlag(self) -> None:
        port = self.server.port
        for address in ("ftx://127.0.0.1:{}".format(port), " 127.0.0.1:{} ".format(port),
                        "FTX://127.0.0.1:{}/".format(port), "tcp:host=127.0.0.1:port={}".format(port)):
            result = _run(["--server", address, "ls", "alpha.txt"], self.local)
            self.assertEqual((address, result.returncode), (address, 0), result.err)
            self.assertIn("alpha.txt", result.out)
        result = _run(["--server", "127.0.0.1", "-p", str(port), "list", "alpha.txt"], self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("alpha.txt", result.out)

    def test_userInAddressMeansUser(self) -> None:
        server = serverFor(self, "--auth", "memory:bob:secret", files={"private.txt": b"p"})
        result = _run(["--server", "bob@{}".format(server.address), "list"], self.local, env={"FTX_PASSWORD": "secret"})
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("private.txt", result.out)
        result = _run(["--server", "ftx://bob@{}".format(server.address), "list"], self.local,
                      env={"FTX_PASSWORD": "wrong"})
        self.assertEqual(result.returncode, 5, result.err)

    def test_folderInAddress(self) -> None:
        address = "ftx://{}/docs".format(self.server.address)
        result = _run(["--server", address, "list"], self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(result.out.split()[-1], "docs/gamma.md")
        self.assertEqual(_run(["--server", address, "get", "gamma.md"], self.local).returncode, 0)
        self.assertEqual((self.local / "gamma.md").read_bytes(), FILES["docs/gamma.md"])

    def test_ipv6InBrackets(self) -> None:
        # Nothing listens on [::1] here: the address is understood (exit 3,
        # cannot connect), not refused as malformed (exit 2).
        result = _run(["--server", "[::1]:1", "list"], self.local)
        self.assertEqual(result.returncode, 3, result.err)

    def test_badAddressesAreOneLineUsageErrors(self) -> None:
        for address in ("127.0.0.1:notaport", "::1:1234", "http://127.0.0.1:1", "ftx://u:pw@127.0.0.1:1",
                        "two words:1", "ho_st:1", "127.0.0.1:70000", ""):
            result = _run(["--server", address, "list"], self.local)
            self.assertEqual((address, result.returncode), (address, 2), result.err)
            self.assertEqual(len(result.err.strip().splitlines()), 1, result.err)
            self.assertTrue(result.err.startswith("ftx: error: "), result.err)

    def test_ftxsMeansTLS(self) -> None:
        # A plain server: the TLS handshake fails, which shows TLS was asked for.
        result = _run(["--server", "ftxs://{}".format(self.server.address), "-v", "list"], self.local)
        self.assertIn("(TLS, anonymously)", result.err)
        self.assertNotEqual(result.returncode, 0)


@SERVER.serves
class ConventionTests(SynchronousTestCase):
    """
    Items 4, 9 and 12: pipes, aliases, flags people look for, units.
    """

    def setUp(self) -> None:
        self.server = SERVER(self)
        self.local = temporaryFolder(self)

    def test_closedStdoutEndsQuietly(self) -> None:
        env = dict(os.environ, **_isolated(self.local))
        process = subprocess.Popen([FTX, "--server", self.server.address, "list", "--json", "many/*"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.assertEqual(process.stdout.readline(), b"[\n")
        process.stdout.close()
        err = process.stderr.read().decode("utf-8", "replace")
        process.stderr.close()
        self.assertIn(process.wait(timeout=60), (0, 141))
        self.assertEqual(err, "")

    def test_aliases(self) -> None:
        result = ftx(self.server, "ls", "alpha.txt", cwd=self.local)
        self.assertIn("alpha.txt", result.out)
        self.assertEqual(ftx(self.server, "get", "alpha.txt", cwd=self.local).returncode, 0)
        self.assertEqual((self.local / "alpha.txt").read_bytes(), FILES["alpha.txt"])
        (self.server.rootPath / "gone.txt").write_bytes(b"x")
        self.assertEqual(ftx(self.server, "rm", "gone.txt", cwd=self.local).returncode, 0)
        self.assertFalse((self.server.rootPath / "gone.txt").exists())

    def test_typoSuggestsCommandWithoutDoubledPrefix(self) -> None:
        result = _run(["lst"], self.local)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.err.strip().splitlines(), ["ftx: error: unknown command 'lst'; did you mean list? (see 'ftx --help')"])
        result = _run(["sget"], self.local)
        self.assertTrue(result.err.startswith("ftx: error: sget: "), result.err)
        self.assertNotIn("ftx: error: ftx", result.err)

    def test_versionAndVerbose(self) -> None:
        result = _run(["--version"], self.local)
        self.assertRegex(result.out, r"^ftx \d+\.\d+")
        result = ftx(self.server, "-v", "hash", "alpha.txt", cwd=self.local)
        self.assertEqual(result.out, "{}  alpha.txt\n".format(hashlib.sha1(FILES["alpha.txt"]).hexdigest()))
        self.assertIn("connecting to {} (plain TCP, anonymously)".format(self.server.address), result.err)
        self.assertRegex(result.err, r"connected in \d+\.\d+ s; server ftx/\S+; checksum (sha1|xxh128)")
        self.assertRegex(result.err, r"hash took \d+\.\d+ s")

    def test_hashLengthWithUnit(self) -> None:
        for length, count in (("1M", 1 << 20), ("64K", 1 << 16), ("1.5MiB", 3 << 19), ("1000", 1000)):
            result = ftx(self.server, "hash", "big.bin", length, cwd=self.local)
            self.assertEqual(result.out.split()[0], hashlib.sha1(BIG[:count]).hexdigest(), (length, result.err))
        result = ftx(self.server, "hash", "big.bin", "1Q", cwd=self.local)
        self.assertEqual(result.returncode, 2)
        self.assertIn("not a size: '1Q'", result.err)

    def test_progressBarOneLineAt60Columns(self) -> None:
        child = spawn(["--server", self.server.address, "get", "big.bin"], self.local,
                      env=dict(_isolated(self.local), COLUMNS="60"))
        child.setwinsize(30, 60)
        output = child.read().decode("utf-8", "replace")
        child.close()
        self.assertEqual(child.exitstatus, 0, output)
        self.assertEqual((self.local / "big.bin").read_bytes(), BIG)
        frames = [line for line in re.split(r"[\r\n]", output) if "━" in line or "%" in line]
        self.assertTrue(frames, output)
        for frame in frames:
            visible = _ESCAPE.sub("", frame)
            self.assertLess(len(visible), 60, visible)
        # One line per bar: rich moves the cursor up only to redraw a
        # bar that took two lines.
        self.assertNotIn("\x1b[1A", output)
        self.assertNotRegex(output, r"\d (kB|MB|GB)\b")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class ProgressUnitsTests(SynchronousTestCase):
    """
    Item 12: sizes and rates in one unit system, each bar on one line
    however narrow the terminal.
    """

    def _frames(self, width: int) -> str:
        from ftx.cli.progress import Reporter

        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = str(width)
        if previous is None:
            self.addCleanup(os.environ.pop, "COLUMNS", None)
        else:
            self.addCleanup(os.environ.__setitem__, "COLUMNS", previous)
        stream = _Terminal()
        reporter = Reporter(stream=stream)
        reporter.startBatch("mget", 2, 20 << 30)
        update = reporter.transfer("photos/a rather long name of a holiday picture.jpg", 10 << 30)
        for done in range(1, 6):
            update("x", done << 30, 10 << 30)
            task = reporter._progress.tasks[-1]
            # As if a second had passed between updates.
            task._progress.clear()
            task._progress.extend([ProgressSample(0.0, 0), ProgressSample(1.0, 123.4 * (1 << 20))])
            reporter._progress.refresh()
        reporter.close()
        return stream.getvalue()

    def test_oneLineInBinaryUnits(self) -> None:
        for width in (40, 60, 80, 120):
            output = self._frames(width)
            # Each redraw starts by erasing the previous one; every line of
            # a frame must be a whole bar, ending with its percentage and
            # rates, never the wrapped rest of one.
            lines = [_ESCAPE.sub("", line) for line in re.split(r"[\r\n]", output)]
            lines = [line for line in lines if line.strip()]
            self.assertTrue(lines, output)
            for line in lines:
                self.assertIn("%", line, (width, lines))
                self.assertLess(len(line), width, (width, line))
            self.assertIn("123.4 MiB/s", output, width)
            self.assertNotRegex(output, r"\d (kB|MB|GB)\b")
            if width >= 80:
                self.assertIn("5.0/10.0 GiB", output)


class ConfigTests(SynchronousTestCase):
    """
    Item 10: the config file and ~/.netrc, below flags and the environment.
    """

    def setUp(self) -> None:
        self.local = temporaryFolder(self)

    def _config(self, text: str) -> None:
        folder = self.local / "config" / "ftx"
        folder.mkdir(parents=True)
        (folder / "config.toml").write_text(text)

    def test_configServerAndConflictPolicy(self) -> None:
        server = serverFor(self, files={"a.txt": b"server copy\n"})
        self._config('server = "{}"\nconflict = "skip"\nchecksum = "sha1"\n'.format(server.address))
        (self.local / "a.txt").write_bytes(b"local copy\n")
        result = _run(["-v", "get", "a.txt"], self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("checksum sha1", result.err)
        self.assertEqual((self.local / "a.txt").read_bytes(), b"local copy\n")
        # The shell's lines too.
        result = _run(["shell"], self.local, input=b"get a.txt\n")
        self.assertIn("kept the existing a.txt", result.err)
        self.assertEqual((self.local / "a.txt").read_bytes(), b"local copy\n")
        # A flag wins over the config file.
        result = _run(["get", "a.txt", "--overwrite"], self.local)
        self.assertEqual((self.local / "a.txt").read_bytes(), b"server copy\n", result.err)
        # So does the environment.
        result = _run(["list"], self.local, env={"FTX_SERVER": "127.0.0.1:1"})
        self.assertEqual(result.returncode, 3, result.err)

    def test_badConfigIsOneLine(self) -> None:
        self._config('sever = "x"\n')
        result = _run(["list"], self.local)
        self.assertEqual(result.returncode, 2)
        self.assertIn("unknown setting 'sever'", result.err)
        self.assertEqual(len(result.err.strip().splitlines()), 1)

    def test_netrcGivesUserAndPassword(self) -> None:
        server = serverFor(self, "--auth", "memory:bob:secret", files={"private.txt": b"p"})
        netrc = self.local / "netrc"
        netrc.write_text("machine 127.0.0.1 login bob password secret\n")
        netrc.chmod(0o600)
        result = _run(["--server", server.address, "list"], self.local)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("private.txt", result.out)
        # $FTX_PASSWORD comes before ~/.netrc.
        result = _run(["--server", server.address, "list"], self.local, env={"FTX_PASSWORD": "wrong"})
        self.assertEqual(result.returncode, 5, result.err)

    def test_homeNetrcReadableByOthersIsRefused(self) -> None:
        netrc = self.local / ".netrc"
        netrc.write_text("machine 127.0.0.1 login bob password secret\n")
        netrc.chmod(0o644)
        env = dict(os.environ, HOME=str(self.local), XDG_CONFIG_HOME=str(self.local / "config"))
        env.pop("NETRC", None)
        env.pop("FTX_SERVER", None)
        result = subprocess.run([FTX, "--server", "127.0.0.1:1", "list"], env=env, capture_output=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 2)
        self.assertIn("cannot use {}".format(netrc), result.stderr.decode())


class CompletionTests(SynchronousTestCase):
    """
    Item 11: completion scripts for the user's shell and the man page.
    """

    def setUp(self) -> None:
        self.local = temporaryFolder(self)

    def _bashComplete(self, words) -> list:
        script = _run(["--print-completion", "bash"], self.local).out
        (self.local / "ftx.bash").write_text(script)
        line = " ".join(words)
        program = (
            "source ftx.bash\n"
            "COMP_WORDS=({words}); COMP_CWORD={index}; COMP_LINE='{line}'; COMP_POINT={point}\n"
            "_shtab_ftx ftx '{last}' '{previous}'\n"
            "printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
        ).format(words=" ".join("'{}'".format(w) for w in words), index=len(words) - 1, line=line,
                 point=len(line), last=words[-1], previous=words[-2])
        result = subprocess.run(["bash", "--norc", "--noprofile"], input=program.encode(), cwd=str(self.local),
                                capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.decode().split()

    def test_bashCompletesCommandsAliasesAndOptions(self) -> None:
        self.assertEqual(sorted(self._bashComplete(["ftx", "l"])), ["list", "ls"])
        self.assertIn("--overwrite", self._bashComplete(["ftx", "sget", "--ov"]))
        self.assertIn("--print-completion", self._bashComplete(["ftx", "--print-c"]))

    def test_otherShellsAndManPage(self) -> None:
        self.assertIn("complete -c ftx", _run(["--print-completion", "fish"], self.local).out)
        self.assertIn("#compdef ftx", _run(["--print-completion", "zsh"], self.local).out)
        page = _run(["--print-man-page"], self.local).out
        self.assertTrue(page.startswith(".TH FTX"), page[:200])
        self.assertIn("\\-\\-print\\-completion", page)


class SetupMessageTests(SynchronousTestCase):
    """
    Item 14: one clear line for a TLS-less install, an anonymous client at
    a server with accounts, and an empty password file.
    """

    def setUp(self) -> None:
        self.local = temporaryFolder(self)

    def test_sslPortWithoutTLSExtra(self) -> None:
        # pyOpenSSL is installed here: mark it missing, as without ftx[tls].
        for option, ports in ((["--port"], "'ssl:0:privateKey=k.pem:certKey=c.pem'"),
                              (["--http-port"], "'ssl:0:privateKey=k.pem:certKey=c.pem', '--port', 'tcp:0'")):
            program = (
                "import sys; sys.modules['OpenSSL'] = None\n"
                "from twisted.scripts.twistd import run\n"
                "sys.argv = ['twistd', '-n', '--pidfile=', 'ftx', '{}', {}, '--root', '.']\n"
                "run()\n"
            ).format(option[0], ports)
            result = subprocess.run([sys.executable, "-c", program], cwd=str(self.local), capture_output=True,
                                    timeout=60, env=dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", "")))
            self.assertEqual(result.returncode, 1, option)
            lines = (result.stdout + result.stderr).decode().strip().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("{} ssl:0".format(option[0]), lines[0])
            self.assertIn("pip install 'ftx[tls]'", lines[0])

    def test_anonymousAtAccountsServerIsToldToUseUser(self) -> None:
        server = serverFor(self, "--auth", "memory:bob:secret", "--anonymous", "none", files={"private.txt": b"p"})
        result = _run(["--server", server.address, "list"], self.local)
        self.assertEqual(result.returncode, 5)
        self.assertIn("--user", result.err)
        self.assertNotIn("login USER PASSWORD", result.err)

    def test_emptyPasswordFile(self) -> None:
        (self.local / "pw").write_text("")
        result = _run(["--server", "127.0.0.1:1", "--user", "bob", "--password-file", "pw", "list"], self.local)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.err.strip(), "ftx: error: --password-file pw is empty: put the password on its first line")


class ServerUnitsTests(SynchronousTestCase):
    """
    Item 12: the server's options read sizes and durations like the CLI.
    """

    def test_sizesAndDurations(self) -> None:
        from twisted.python.usage import UsageError

        from ftx.server.tap import parseDuration, parseSize

        self.assertEqual(parseSize("10G"), 10 << 30)
        self.assertEqual(parseSize("1.5MiB"), 3 << 19)
        self.assertEqual(parseSize("64k"), 1 << 16)
        self.assertEqual(parseDuration("1h30m"), 5400)
        self.assertEqual(parseDuration("90"), 90)
        self.assertRaises(UsageError, parseSize, "ten")
        self.assertRaises(UsageError, parseDuration, "soon")

