"""
End-to-end encryption's cost: the same file uploaded and downloaded with
the real ``ftx`` command, plain and age-encrypted, in the same run against
the same ``twistd ftx`` on 127.0.0.1. Reports wall seconds, MiB/s, the
encrypted/plain ratio (target >= 0.5) and CPU seconds per GiB for the
client (the ``ftx`` process, threads included) and the server.

    .venv/bin/python bench/e2e.py                 # 1 GiB, 3 reps
    .venv/bin/python bench/e2e.py --size 256M --reps 1

Every received file is compared with the source (size and SHA-1).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support import BIN, ServerProcess  # noqa: E402

FTX = os.path.join(BIN, "ftx")
GiB = 1 << 30


def parseSize(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1:].upper()])
    return int(text)


def sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def timed(args, env, server: psutil.Process):
    """
    Run ``ftx ARGS``; wall seconds, its CPU seconds, the server's.
    """
    serverBefore = sum(server.cpu_times()[:2])
    start = time.perf_counter()
    process = subprocess.Popen([FTX, *args], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    err = process.stderr.read().decode("utf-8", "replace")
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit("ftx {} failed ({}): {}".format(" ".join(args), process.returncode, err))
    return wall, usage.ru_utime + usage.ru_stime, sum(server.cpu_times()[:2]) - serverBefore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="file size (default 1G)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "ftx-bench-e2e"))
    options = parser.parse_args()
    size = parseSize(options.size)
    work = Path(options.workdir)
    shutil.rmtree(work, True)
    (work / "root").mkdir(parents=True)
    (work / "here").mkdir()
    source = work / "source.bin"
    with open(source, "wb") as f:
        left = size
        while left:
            f.write(os.urandom(min(left, 1 << 24)))
            left -= min(left, 1 << 24)
    digest = sha1(source)
    env = dict(os.environ, XDG_CONFIG_HOME=str(work / "config"), XDG_STATE_HOME=str(work / "state"))
    env.pop("FTX_SERVER", None)
    server = ServerProcess(str(work / "root"))
    try:
        env["FTX_SERVER"] = server.address
        keyed = subprocess.run([FTX, "keygen", "-q"], env=env, capture_output=True, check=True)
        recipient = keyed.stdout.decode().strip()
        serverProcess = psutil.Process(server.process.pid)
        cases = [
            ("upload", "plain", ["put", str(source), "--as", "plain.bin", "-q"], None),
            ("upload", "age", ["put", str(source), "-r", recipient, "--as", "enc.age", "-q"], None),
            ("download", "plain", ["sget", "plain.bin", "-o", str(work / "here" / "got"), "-q"], "got"),
            ("download", "age", ["sget", "enc.age", "--decrypt", "-o", str(work / "here" / "got"), "-q"], "got"),
        ]
        results = {}
        for rep in range(options.reps):
            # Every other rep runs encrypted first: what the previous
            # transfer left for the disk to write back slows the next one.
            order = cases if rep % 2 == 0 else [cases[1], cases[0], cases[3], cases[2]]
            for kind, mode, args, received in order:
                if kind == "upload":
                    # Each upload makes a new file, as the plain one does.
                    stored = work / "root" / args[args.index("--as") + 1]
                    if stored.exists():
                        os.unlink(stored)
                measured = timed(args, env, serverProcess)
                if received is not None:
                    got = work / "here" / received
                    if got.stat().st_size != size or sha1(got) != digest:
                        raise SystemExit("{} {}: the received file differs from the source".format(kind, mode))
                    os.unlink(got)
                results.setdefault((kind, mode), []).append(measured)
                print("rep {} {} {}: {:.2f} s".format(rep + 1, kind, mode, measured[0]), file=sys.stderr)
        # Encrypting alone, for scale: a fresh encrypted upload overlaps it
        # with sending (ftx.client.e2e.sending).
        # Decrypting alone likewise: a download decrypts while it receives
        # (ftx.client.e2e.following). CPU seconds are this process's.
        from ftx.client.e2e import decryptFile, encryptFile, generateIdentity, newPlan

        identity = generateIdentity()
        started, cpu = time.perf_counter(), time.process_time()
        encryptFile(str(source), str(work / "alone.age"), newPlan([identity.recipient()]))
        encryptAlone = (time.perf_counter() - started, time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        decryptFile(str(work / "alone.age"), str(work / "alone.out"), [identity])
        decryptAlone = (time.perf_counter() - started, time.process_time() - cpu)
        os.unlink(work / "alone.age")
        os.unlink(work / "alone.out")
    finally:
        server.stop()
    gib = size / GiB
    print("\nEnd-to-end encryption cost: {} MiB file, {} reps (median), nproc {}\n".format(
        size >> 20, options.reps, os.cpu_count()))
    print("| transfer | mode | wall s | MiB/s | vs plain | client CPU s/GiB | server CPU s/GiB |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("upload", "download"):
        plainWall = statistics.median(r[0] for r in results[(kind, "plain")])
        for mode in ("plain", "age"):
            rows = results[(kind, mode)]
            wall = statistics.median(r[0] for r in rows)
            print("| {} | {} | {:.2f} | {:.0f} | {:.2f}x | {:.2f} | {:.2f} |".format(
                kind, mode, wall, (size >> 20) / wall, plainWall / wall,
                statistics.median(r[1] for r in rows) / gib, statistics.median(r[2] for r in rows) / gib))
    for what, (wall, cpu) in (("encrypting", encryptAlone), ("decrypting", decryptAlone)):
        print("\n{} alone (file to file, no network): {:.2f} s, {:.0f} MiB/s, {:.2f} CPU s/GiB".format(
            what, wall, (size >> 20) / wall, cpu / gib), end="")
    print()
    shutil.rmtree(work, True)


if __name__ == "__main__":
    main()
