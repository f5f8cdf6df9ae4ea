"""
The web view as a user runs it: C{twistd ftx --http-port}, talked to by
curl. An interrupted download resumed with C{curl -C -} is byte-identical;
accounts work over plain HTTP (with a warning in the log) and over TLS.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

import trustme
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ftx.server.tap import Options
from tests.clitools import SharedServer
from tests.support import ServerProcess, temporaryFolder

CURL = shutil.which("curl")
WEB_LISTENING = re.compile(r"ftx web view on .* \(http port (\d+)\)")
WARNING = "HTTP Basic logins on"


def webPort(server: ServerProcess, timeout: float = 10.0) -> int:
    """
    The HTTP port a server started with C{--http-port ...:0} logged.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = WEB_LISTENING.search(server.output())
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise AssertionError("no web view in the log:\n" + server.output())


def curl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CURL, "-s", *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def startWeb(case, root: str, *extra: str, http: str = "tcp:0:interface=127.0.0.1"):
    server = ServerProcess(root, "--http-port", http, *extra)
    case.addCleanup(server.stop)
    return server, webPort(server)


BIG = os.urandom(6 << 20)
plainServer = SharedServer("--http-port", "tcp:0:interface=127.0.0.1", files={"big.bin": BIG})


def _needCurl() -> None:
    if CURL is None:
        raise AssertionError("curl is needed for these tests (apt-get install -y curl)")


@plainServer.serves
class CurlTests(SynchronousTestCase):
    """
    One server without accounts, shared by these tests.
    """

    def setUp(self) -> None:
        _needCurl()
        self.folder = temporaryFolder(self, "ftx-webd-")
        self.data = BIG

    def test_resumeInterruptedDownload(self) -> None:
        """
        curl killed mid-body, then C{curl -C -} (which asks for the rest
        with a Range): the file is byte-identical.
        """
        port = webPort(plainServer(self))
        url = "http://127.0.0.1:{}/big.bin".format(port)
        out = os.path.join(self.folder, "big.bin")
        # curl is cut off mid-body: it writes to a pipe this test stops
        # reading after 256 KiB (a full pipe holds it back), then it is
        # killed and what it delivered becomes the partial file. (Its own
        # --limit-rate did not hold it back when writing to a file here.)
        first = subprocess.Popen([CURL, "-s", url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        try:
            partial = first.stdout.read(256 * 1024)
        finally:
            first.kill()
            first.wait(10)
            first.stdout.close()
        with open(out, "wb") as f:
            f.write(partial)
        kept = os.path.getsize(out)
        self.assertTrue(0 < kept < len(self.data), kept)
        second = curl("-C", "-", "-o", out, "-w", "%{http_code}", url)
        self.assertEqual((second.returncode, second.stdout), (0, b"206"), second.stderr)
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha1(f.read()).hexdigest(), hashlib.sha1(self.data).hexdigest())

    def test_headers(self) -> None:
        """
        What C{curl -I} shows: the length, ranges accepted, the SHA-1 as
        ETag (the digest C{ftx hash} gives) and the date.
        """
        port = webPort(plainServer(self))
        time.sleep(0.06)  # past the digest cache's freshness margin (SETTLED_NS)
        result = curl("-I", "http://127.0.0.1:{}/big.bin".format(port))
        headers = result.stdout.decode("latin-1").lower()
        self.assertIn("content-length: {}\r\n".format(len(self.data)), headers)
        self.assertIn("accept-ranges: bytes\r\n", headers)
        self.assertIn('etag: "{}"\r\n'.format(hashlib.sha1(self.data).hexdigest()), headers)
        self.assertIn("last-modified: ", headers)


class AccountTests(SynchronousTestCase):
    def setUp(self) -> None:
        _needCurl()
        self.folder = temporaryFolder(self, "ftx-webd-")
        self.root = os.path.join(self.folder, "root")
        os.mkdir(self.root)
        with open(os.path.join(self.root, "big.bin"), "wb") as f:
            f.write(b"some bytes")

    def test_accountsOverPlainHTTP(self) -> None:
        """
        C{--auth} accounts log in with Basic; over plain HTTP the server
        says in its log that passwords cross in clear.
        """
        access = os.path.join(self.folder, "access")
        with open(access, "w") as f:
            f.write("alice r\n")
        server, port = startWeb(self, self.root, "--auth", "memory:alice:wonder", "--access", access, "--anonymous", "none")
        url = "http://127.0.0.1:{}/big.bin".format(port)
        self.assertEqual(curl("-o", os.devnull, "-w", "%{http_code}", url).stdout, b"401")
        ok = curl("-u", "alice:wonder", "-o", os.devnull, "-w", "%{http_code}", url)
        self.assertEqual(ok.stdout, b"200")
        self.assertIn(WARNING, server.output())

    def test_accountsOverTLS(self) -> None:
        """
        An C{ssl:} --http-port serves HTTPS (while the protocol port stays
        plain), with no warning about passwords.
        """
        ca = trustme.CA()
        pem = os.path.join(self.folder, "server.pem")
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
        caFile = os.path.join(self.folder, "ca.pem")
        ca.cert_pem.write_to_path(caFile)
        http = "ssl:0:interface=127.0.0.1:privateKey={0}:certKey={0}".format(pem)
        server, port = startWeb(self, self.root, "--auth", "memory:alice:wonder", http=http)
        url = "https://127.0.0.1:{}/".format(port)
        page = curl("--cacert", caFile, "-u", "alice:wonder", url)
        self.assertEqual(page.returncode, 0, page.stderr)
        self.assertIn(b'href="/big.bin"', page.stdout)
        self.assertNotIn(WARNING, server.output())


class OptionTests(SynchronousTestCase):
    def test_barePortIsTCP(self) -> None:
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root, True)
        options = Options()
        options.parseOptions(["--root", root, "--http-port", "8080"])
        self.assertEqual(options["http-port"], "tcp:8080")

    def test_offByDefault(self) -> None:
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root, True)
        options = Options()
        options.parseOptions(["--root", root])
        self.assertIsNone(options["http-port"])
