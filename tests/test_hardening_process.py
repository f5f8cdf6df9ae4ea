"""
The server as a supervisor sees it (issue 12, items 11 and 12): a port
it cannot have ends its start with a failing status and one line; a
client that vanishes mid-download is an info line with the bytes sent,
never a critical error with a traceback.
"""

import os
import re
import socket
import struct
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.support import BIN, ServerProcess, temporaryFolder, writeRandom


class PortTakenTests(SynchronousTestCase):
    def _taken(self) -> int:
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        return taken.getsockname()[1]

    def _start(self, *arguments) -> str:
        result = subprocess.run(
            [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "ftx", "--root", temporaryFolder(self), *arguments],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        lines = [line for line in output.splitlines() if "cannot listen" in line]
        self.assertEqual(len(lines), 1, output)
        self.assertIn("in use", lines[0])
        return lines[0]

    def test_exitsNonZeroWithOneLine(self):
        port = self._taken()
        line = self._start("--port", "tcp:{}:interface=127.0.0.1".format(port))
        self.assertIn("ftx cannot listen on tcp:{}".format(port), line)

    def test_webPortTakenToo(self):
        port = self._taken()
        line = self._start("--port", "tcp:0:interface=127.0.0.1", "--http-port", "tcp:{}:interface=127.0.0.1".format(port))
        self.assertIn("ftx web view cannot listen on tcp:{}".format(port), line)


def _readUntil(sock, count: int) -> bytes:
    data = b""
    deadline = time.monotonic() + 10
    while len(data) < count and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class ClientDropsMidDownloadTests(SynchronousTestCase):
    def test_droppedDownloadIsAnInfoLine(self):
        """
        Clients that close, or reset, their connection in the middle of a
        large download leave one info line each with the bytes sent; no
        critical line, no traceback.
        """
        root = temporaryFolder(self)
        writeRandom(os.path.join(root, "big.bin"), 16 << 20)
        with ServerProcess(root) as server:
            for reset in (False, True):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                _readUntil(sock, 1)
                sock.sendall(b"sget big.bin\r\n")
                _readUntil(sock, 256 << 10)
                if reset:
                    # An RST, as when the client process is killed.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            deadline = time.monotonic() + 10
            while server.output().count("disconnected") < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            output = server.output()
        self.assertNotIn("Traceback", output)
        self.assertNotIn("#critical]", output)
        self.assertNotIn("#error]", output)
        dropped = re.findall(r"sget big\.bin (\d+) bytes in [\d.]+s: connection lost", output)
        self.assertEqual(len(dropped), 2, output)
        for sent in dropped:
            self.assertGreater(int(sent), 0, output)
            self.assertLess(int(sent), 16 << 20)
