"""
L{ftx._io.lazymodules}: a module deferred costs nothing until used, then
is the real module; what the reactor imports and a command never uses stays
deferred; and the command still connects over what it deferred (a UNIX
socket). Each check that defers runs in a fresh interpreter: deferring
changes C{sys.modules} for good.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ftx._io import lazymodules
from ftx.server.filesystem import FilesystemStorage
from ftx.server.protocol import FtxServerFactory
from tests.support import runFtx, temporaryFolder


def python(code: str) -> str:
    """
    Run C{code} in a new interpreter; its stdout, which must end well.
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError("the child failed:\n" + result.stderr[-2000:])
    return result.stdout


class DeferImportsTests(SynchronousTestCase):
    def test_runsOnFirstUse(self):
        """
        A deferred module is in C{sys.modules} and importable, but its code
        (and what it imports) runs only when an attribute is read; then it
        is the real module.
        """
        out = python(
            "import sys\n"
            "from ftx._io import lazymodules\n"
            "print(lazymodules.deferImports(['http.cookiejar']))\n"
            "from http import cookiejar\n"
            "print(lazymodules.isDeferred(cookiejar), 'urllib.request' in sys.modules)\n"
            "jar = cookiejar.CookieJar()\n"
            "print(lazymodules.isDeferred(cookiejar), 'urllib.request' in sys.modules, len(jar))\n"
        )
        self.assertEqual(out.splitlines(), ["['http.cookiejar']", "True False", "False True 0"])

    def test_leavesOthersAlone(self):
        """
        A module already imported, or not installed, is not deferred.
        """
        before = sys.modules["os"]
        self.assertEqual(lazymodules.deferImports(["os", "ftx_no_such_module", "ftx_no_such_package.child"]), [])
        self.assertIs(sys.modules["os"], before)
        self.assertNotIn("ftx_no_such_module", sys.modules)
        self.assertFalse(lazymodules.isDeferred(before))

    def test_leavesWhatItsPackageImports(self):
        """
        A module that finding it imported, because its package imports it,
        is left as it is: the package already holds the real module, and a
        lazy copy put in its place would never run.
        """
        out = python(
            "import sys\n"
            "from ftx._io import lazymodules\n"
            "print('json' in sys.modules, lazymodules.deferImports(['json.decoder']))\n"
            "import json\n"
            "print(lazymodules.isDeferred(sys.modules['json.decoder']), sys.modules['json.decoder'] is json.decoder)\n"
        )
        self.assertEqual(out.splitlines(), ["False []", "False True"])

    def test_theReactorLeavesThemDeferred(self):
        """
        Importing the reactor runs none of the modules the command defers;
        listening on UDP and on a UNIX socket then loads what they need.
        """
        socketPath = os.path.join(tempfile.mkdtemp(prefix="ftx-lazy-"), "s")
        self.addCleanup(shutil.rmtree, os.path.dirname(socketPath), True)
        out = python(
            "import sys\n"
            "from ftx._io import lazymodules, notls\n"
            "notls.leaveOutTLS()\n"
            "names = lazymodules.UNUSED_BY_COMMANDS\n"
            "print(sorted(lazymodules.deferImports(names)) == sorted(names))\n"
            "from twisted.internet import reactor\n"
            "from twisted.internet.protocol import DatagramProtocol, Factory\n"
            "print([n for n in names if not lazymodules.isDeferred(sys.modules[n])])\n"
            "for n in ('urllib.request', 'email', 'http.client'):\n"
            "    print(n in sys.modules)\n"
            "udp = reactor.listenUDP(0, DatagramProtocol(), interface='127.0.0.1')\n"
            "unix = reactor.listenUNIX({!r}, Factory())\n"
            "print(udp.getHost().port > 0, unix.getHost().name in ({!r}, {!r}))\n"
            "print([n for n in names if lazymodules.isDeferred(sys.modules[n])])\n"
            "udp.stopListening(); unix.stopListening()\n".format(socketPath, socketPath, os.fsencode(socketPath))
        )
        self.assertEqual(
            out.splitlines(),
            ["True", "[]", "False", "False", "False", "True True", "['http.cookiejar', 'twisted.internet.process']"],
        )


class DeferredUNIXTests(TestCase):
    async def test_commandOverUNIXSocket(self):
        """
        The C{ftx} command, which defers Twisted's UNIX socket support,
        still connects to a server on a UNIX socket.
        """
        root = temporaryFolder(self)
        with open(os.path.join(root, "a.txt"), "wb") as f:
            f.write(b"hello")
        socketPath = os.path.join(temporaryFolder(self), "ftx.sock")
        port = reactor.listenUNIX(socketPath, FtxServerFactory(FilesystemStorage(root), reactor))
        self.addCleanup(port.stopListening)
        local = temporaryFolder(self)
        result = await deferToThread(
            runFtx, ["--server", "unix:path=" + socketPath, "--quiet", "--dir", local, "sget", "a.txt"], timeout=60
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(local, "a.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello")
