"""
Several front ends over one bucket: two (and for the SIGKILL case three)
real ``twistd ftx --storage s3`` processes over the same bucket and prefix
of the real engine (L{tests.seaweed}), used through the real ``ftx``
command and, where a test must stop mid-body, a raw socket.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import socket
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests import seaweed
from tests.clitools import ftx, waitFor
from tests.support import ServerProcess, sha1, writeRandom

MiB = 1 << 20
#: Big enough for a hidden chunk (8 MiB) and a compose of parts.
SIZE = 12 * MiB
#: Leases of the front ends here, short so that a dead one's runs out soon.
LEASE = 2


def frontEnd(prefix: str, bucket: str, lease: float = 60) -> ServerProcess:
    folder = tempfile.mkdtemp(prefix="ftx-front-")
    root = os.path.join(folder, "unused")
    os.makedirs(root)
    server = ServerProcess(
        root, "--storage", "s3", "--s3-endpoint", seaweed.engine().endpoint, "--s3-bucket", bucket,
        "--s3-prefix", prefix, "--s3-lease", str(lease),
    )
    server.folder = folder
    return server


def stopFrontEnd(server: ServerProcess) -> None:
    server.stop()
    shutil.rmtree(server.folder, True)


class RawUpload:
    """
    A ``put`` over a bare socket, to stop anywhere in the body.
    """

    def __init__(self, server: ServerProcess, name: str = None, size: int = 0) -> None:
        self.socket = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self._pending = b""
        greeting = self.line()
        assert greeting.startswith("220 "), greeting
        if name is not None:
            self.put(name, size)

    def put(self, name: str, size: int) -> None:
        self.socket.sendall("put {} {}\r\n".format(name, size).encode())

    def line(self) -> str:
        while b"\r\n" not in self._pending:
            data = self.socket.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self._pending += data
        line, self._pending = self._pending.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def close(self) -> None:
        self.socket.close()


class _FrontEndPair:
    """
    Front ends A and B over one bucket and prefix, shared by the tests of
    L{TwoFrontEndTests}: trial has no C{setUpClass}, so the first test
    starts them and the last one to finish stops them (by PID); when a run
    selects only some of the tests, they stop when the interpreter exits.
    """

    def __init__(self) -> None:
        self.fronts = None
        self._left: set = set()

    def __call__(self, case) -> tuple:
        if self.fronts is None:
            engine = seaweed.engine()
            bucket = engine.newBucket()
            first = frontEnd("shared/", bucket, LEASE)
            try:
                second = frontEnd("shared/", bucket, LEASE)
            except BaseException:
                stopFrontEnd(first)
                raise
            self.fronts = (engine.client, bucket, "shared/", first, second)
            atexit.register(self._stop)
            cls = type(case)
            self._left = {name for name in dir(cls) if name.startswith("test_")}
        case.addCleanup(self._finished, case._testMethodName)
        return self.fronts

    def _finished(self, name: str) -> None:
        self._left.discard(name)
        if not self._left:
            self._stop()

    def _stop(self) -> None:
        fronts, self.fronts = self.fronts, None
        if fronts is not None:
            atexit.unregister(self._stop)
            stopFrontEnd(fronts[3])
            stopFrontEnd(fronts[4])


_PAIR = _FrontEndPair()


class TwoFrontEndTests(SynchronousTestCase):
    """
    Front ends A and B over one bucket and prefix (L{_PAIR}).
    """

    def setUp(self) -> None:
        self.client, self.bucket, self.prefix, self.a, self.b = _PAIR(self)
        self.local = tempfile.mkdtemp(prefix="ftx-local-")
        self.addCleanup(shutil.rmtree, self.local, True)

    def file(self, name: str, size: int = SIZE, seed: int = 1) -> str:
        path = os.path.join(self.local, name)
        writeRandom(path, size, seed)
        return path

    def stored(self, name: str):
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.prefix + name)
        except Exception:
            return None

    def hiddenKeys(self, name: str):
        area = "{}.ftx-uploads/{}.ftx-partial/".format(self.prefix, name)
        return [o["Key"] for o in self.client.list_objects_v2(Bucket=self.bucket, Prefix=area).get("Contents", ())]

    def held(self, server: ServerProcess, name: str) -> int:
        raw = RawLine(server)
        try:
            return int(raw.ask("partial {}".format(name)).split()[1])
        finally:
            raw.close()

    def interrupt(self, server: ServerProcess, name: str, data: bytes, sent: int) -> None:
        """
        Send the first C{sent} bytes of C{data} as an upload of C{name},
        then cut the connection, and wait until the front end kept them.
        """
        upload = RawUpload(server, name, len(data))
        self.assertTrue(upload.line().startswith("350"))
        upload.send(data[:sent])
        upload.close()
        self.assertTrue(waitFor(lambda: self.held(self.b, name) == sent, timeout=30), self.held(self.b, name))

    def test_uploadThroughAListAndDownloadThroughB(self) -> None:
        path = self.file("one.bin")
        result = ftx(self.a, "put", path, "--as", "ab/one.bin")
        self.assertEqual(result.returncode, 0, result.err)
        listing = ftx(self.b, "list", "ab/*")
        self.assertIn("ab/one.bin", listing.out)
        out = os.path.join(self.local, "got")
        os.makedirs(out)
        result = ftx(self.b, "sget", "ab/one.bin", cwd=out)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertEqual(sha1(os.path.join(out, "one.bin")), sha1(path))
        self.assertEqual(ftx(self.b, "hash", "ab/one.bin").out.split()[0], sha1(path))
        # The digests were stored with the object at finish.
        self.assertEqual(self.stored("ab/one.bin")["Metadata"]["ftx-sha1"], sha1(path))

    def test_interruptedOnAResumedOnB(self) -> None:
        path = self.file("resumed.bin", seed=2)
        with open(path, "rb") as f:
            data = f.read()
        self.interrupt(self.a, "resumed.bin", data, 9 * MiB)
        self.assertIsNone(self.stored("resumed.bin"))
        result = ftx(self.b, "put", path)
        self.assertEqual(result.returncode, 0, result.err)
        self.assertIn("-> resumed.bin", result.err)
        self.assertTrue(result.err.startswith("resumed "), result.err)
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + "resumed.bin")["Body"].read()
        self.assertEqual(hashlib.sha1(body).hexdigest(), sha1(path))
        self.assertEqual(self.hiddenKeys("resumed.bin"), [])

    def test_simultaneousPutsOneWins(self) -> None:
        """
        Puts of one name through A and B at the same moment: the lease
        lets exactly one in; the other gets 409 at once.
        """
        for round in range(5):
            name = "race-{}.bin".format(round)
            first, second = RawUpload(self.a), RawUpload(self.b)
            try:
                first.put(name, 3)
                second.put(name, 3)
                replies = [first.line(), second.line()]
                codes = sorted(r.split()[0] for r in replies)
                self.assertEqual(codes, ["350", "409"], replies)
                self.assertIn("an upload to {} is already in progress".format(name), [r for r in replies if r.startswith("409")][0])
                winner = first if replies[0].startswith("350") else second
                winner.send(b"abc" + "sha1 {}\r\n".format(hashlib.sha1(b"abc").hexdigest()).encode())
                self.assertTrue(winner.line().startswith("226"))
            finally:
                first.close()
                second.close()
            self.assertEqual(self.stored(name)["ContentLength"], 3)

    def test_wrongDigestLeavesNothing(self) -> None:
        for name, size in (("bad-small.bin", 1000), ("bad-big.bin", 9 * MiB)):
            upload = RawUpload(self.a, name, size)
            try:
                self.assertTrue(upload.line().startswith("350"))
                upload.send(os.urandom(size) + b"sha1 " + b"0" * 40 + b"\r\n")
                reply = upload.line()
            finally:
                upload.close()
            self.assertTrue(reply.startswith("422"), reply)
            self.assertIsNone(self.stored(name))
            self.assertEqual(self.hiddenKeys(name), [])

    def test_killedFrontEndLeaseExpires(self) -> None:
        """
        A front end killed by SIGKILL mid-upload holds the name until its
        lease runs out; then the upload resumes through another.
        """
        path = self.file("orphan.bin", seed=3)
        with open(path, "rb") as f:
            data = f.read()
        doomed = frontEnd(self.prefix, self.bucket, LEASE)
        self.addCleanup(stopFrontEnd, doomed)
        upload = RawUpload(doomed, "orphan.bin", len(data))
        self.assertTrue(upload.line().startswith("350"))
        upload.send(data[: 9 * MiB])
        # The first chunk (8 MiB) is written; the rest dies with the process.
        self.assertTrue(waitFor(lambda: self.held(self.b, "orphan.bin") == 8 * MiB, timeout=30))
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(10)
        upload.close()
        blocked = RawUpload(self.b, "orphan.bin", len(data))
        try:
            self.assertIn("already in progress", blocked.line())
        finally:
            blocked.close()
        self.assertTrue(waitFor(lambda: ftx(self.b, "put", path).returncode == 0, timeout=LEASE * 5, interval=0.5))
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + "orphan.bin")["Body"].read()
        self.assertEqual(hashlib.sha1(body).hexdigest(), sha1(path))


class RawLine:
    """
    One command and its reply line over a bare socket.
    """

    def __init__(self, server: ServerProcess) -> None:
        self.socket = socket.create_connection(("127.0.0.1", server.port), timeout=30)

    def ask(self, command: str) -> str:
        self.socket.sendall(command.encode() + b"\r\n")
        data = b""
        while data.count(b"\r\n") < 2:  # the greeting, then the reply
            piece = self.socket.recv(4096)
            if not piece:
                break
            data += piece
        return data.split(b"\r\n")[1].decode("utf-8", "replace")

    def close(self) -> None:
        self.socket.close()
