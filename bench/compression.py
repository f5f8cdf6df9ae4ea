"""
Compressed transfers against plain ones: MB/s of FILE data delivered.

    .venv/bin/python bench/compression.py                 # 1 GiB files (issue 16)
    .venv/bin/python bench/compression.py --size 256M     # quicker

Two files (generated text logs, random bytes), each downloaded with
````FtxClient.sget`` (the embedded API in a child process; the time is the
download's, start-up excluded, the CPU the whole child's) from ``twistd ftx`` (another
child) over loopback, unlimited and through a 100 Mbit/s limit, with
``--compress zstd`` and ``--compress none`` (and ``auto``, which is off on
loopback). Every received file is checked against its source (size and
SHA-1). The limit is the server's ``--limit-rate`` when this twistd has
it, else a token-bucket TCP proxy in this process (the table says which).

Wall-clock MB/s depends on what else runs on the machine: the CPU seconds
of the client and the server are printed beside them, and the rows of one
table are taken in one run, interleaved rep by rep.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
LISTENING = re.compile(r"ftx listening on .* \(port (\d+)\)")
MiB = 1 << 20


def parseSize(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    match = re.fullmatch(r"(\d+)([KMG]?)(i?B)?", text.strip(), re.I)
    if not match:
        raise argparse.ArgumentTypeError("not a size: {}".format(text))
    return int(match.group(1)) * units[match.group(2).upper()]


def makeText(path: str, size: int) -> None:
    """
    Web-server-like log lines: timestamps, hosts, paths, ids and timings
    that change from line to line (zstd -1 makes them about 13 times
    smaller, as it does real access logs).
    """
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    paths = [b"/api/v1/items", b"/api/v1/users", b"/static/app.js", b"/login", b"/api/v2/search", b"/health"]
    agents = [b"curl/8.5.0", b"Mozilla/5.0 (X11; Linux x86_64)", b"python-requests/2.31", b"Go-http-client/1.1"]
    written, i = 0, 0
    with open(path + ".tmp", "wb") as f:
        while written < size:
            lines = []
            for _ in range(4096):
                lines.append(
                    b'10.%d.%d.%d - - [30/Nov/2026:%02d:%02d:%02d +0000] "GET %s/%d?page=%d HTTP/1.1" %d %d "%s" %dms\n'
                    % (
                        i % 7, (i * 13) % 256, (i * 101) % 256, (i // 3600) % 24, (i // 60) % 60, i % 60,
                        paths[i % 6], (i * 7919) % 100000, i % 23, (200, 200, 200, 304, 404, 500)[i % 6],
                        (i * 37) % 20000, agents[i % 4], (i * 11) % 900,
                    )
                )
                i += 1
            block = b"".join(lines)[: size - written]
            f.write(block)
            written += len(block)
    os.replace(path + ".tmp", path)


def makeRandom(path: str, size: int) -> None:
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path + ".tmp", "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 16 * MiB))
            f.write(chunk)
            left -= len(chunk)
    os.replace(path + ".tmp", path)


def sha1(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def cpuSeconds(pid: int) -> float:
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, root: str, logs: str, extra=()) -> None:
        self.logPath = os.path.join(logs, "twistd-{}.log".format(len(os.listdir(logs))))
        self.log = open(self.logPath, "wb")
        args = [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "ftx", "--port", "tcp:0:interface=127.0.0.1",
                "--root", root, *extra]
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.logPath, "rb") as f:
                match = LISTENING.search(f.read().decode("utf-8", "replace"))
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("twistd ftx did not start; see " + self.logPath)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


class ThrottlingProxy:
    """
    A TCP proxy on 127.0.0.1 that lets at most C{rate} bytes a second
    through in each direction (a token bucket, 64 KiB deep), for twistd
    builds without C{--limit-rate}. Threads, two per connection.
    """

    def __init__(self, target: int, rate: float) -> None:
        self.target = target
        self.rate = rate
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source, sink) -> None:
        depth = 64 << 10
        tokens, last = float(depth), time.monotonic()
        try:
            while True:
                data = source.recv(depth)
                if not data:
                    break
                while True:
                    now = time.monotonic()
                    tokens = min(depth, tokens + (now - last) * self.rate)
                    last = now
                    if tokens >= len(data):
                        break
                    time.sleep((len(data) - tokens) / self.rate)
                tokens -= len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


def hasLimitRate() -> bool:
    out = subprocess.run([os.path.join(BIN, "twistd"), "ftx", "--help"], capture_output=True, text=True).stdout
    return "--limit-rate" in out


def runClient(port: int, name: str, mode: str, dest: str) -> None:
    """
    The client child: connect, download, print the seconds the download
    took (from C{sget} to the file in place, without the start-up).
    """
    from twisted.internet import defer, task

    from ftx.client import connect

    async def run(reactor):
        ftx = await connect(reactor, "127.0.0.1:{}".format(port), compress=mode)
        started = time.monotonic()
        await ftx.sget(name, os.path.join(dest, name))
        print("{:.6f} {}".format(time.monotonic() - started, ftx.protocol.compression))
        await ftx.quit()

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


def download(port: int, name: str, mode: str, dest: str, source: str, timeout: float):
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    args = [sys.executable, os.path.abspath(__file__), "--client", str(port), name, mode, dest]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, _, rusage = os.wait4(process.pid, 0)
    process.returncode = 0
    out = process.stdout.read().decode()
    err = process.stderr.read().decode("utf-8", "replace")
    try:
        wall = float(out.split()[0])
    except (IndexError, ValueError):
        raise RuntimeError("{} {} failed: {}".format(name, mode, err.strip()[-500:]))
    target = os.path.join(dest, name)
    if not os.path.exists(target) or os.path.getsize(target) != os.path.getsize(source) or sha1(target) != sha1(source):
        raise RuntimeError("{} {} arrived wrong: {}".format(name, mode, err.strip()[-300:]))
    shutil.rmtree(dest)
    return wall, rusage.ru_utime + rusage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parseSize, default=1 << 30, help="size of each file (default 1G)")
    parser.add_argument("--rate", type=float, default=100e6, help="the limit in bit/s (default 100e6)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "ftx-bench-compress"))
    parser.add_argument("--proxy", action="store_true", help="throttle with the proxy even if twistd has --limit-rate")
    parser.add_argument("--only", default="", help="comma-separated: text,random,unlimited,limited")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--client", nargs=4, metavar=("PORT", "NAME", "MODE", "DEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, name, mode, dest = args.client
        runClient(int(port), name, mode, dest)
        return
    only = set(filter(None, args.only.split(",")))
    root = os.path.join(args.workdir, "root")
    logs = os.path.join(args.workdir, "logs")
    os.makedirs(root, exist_ok=True)
    os.makedirs(logs, exist_ok=True)
    sys.stderr.write("making the files ({} bytes each)...\n".format(args.size))
    makeText(os.path.join(root, "text.log"), args.size)
    makeRandom(os.path.join(root, "random.bin"), args.size)
    byteRate = args.rate / 8
    useServerLimit = hasLimitRate() and not args.proxy
    plain = Server(root, logs)
    limited = Server(root, logs, ["--limit-rate", "{}/s".format(int(byteRate))]) if useServerLimit else None
    proxy = None if useServerLimit else ThrottlingProxy(plain.port, byteRate)
    links = [("unlimited", plain.port, plain)]
    limitName = "{:g} Mbit/s ({})".format(args.rate / 1e6, "server --limit-rate" if useServerLimit else "bench proxy")
    links.append((limitName, limited.port if limited else proxy.port, limited or plain))
    rows = {}
    try:
        for rep in range(args.reps):
            for data in ("text.log", "random.bin"):
                if only & {"text", "random"} and data.split(".")[0] not in only:
                    continue
                for link, port, server in links:
                    kind = "unlimited" if link == "unlimited" else "limited"
                    if only & {"unlimited", "limited"} and kind not in only:
                        continue
                    modes = ("none", "zstd", "auto") if kind == "unlimited" else ("none", "zstd")
                    for mode in modes:
                        before = cpuSeconds(server.process.pid)
                        wall, client = download(port, data, mode, os.path.join(args.workdir, "dest"),
                                                os.path.join(root, data), args.timeout)
                        serverCpu = cpuSeconds(server.process.pid) - before
                        rows.setdefault((data, link, mode), []).append((wall, client, serverCpu))
                        sys.stderr.write("{} {} {}: {:.1f} s\n".format(data, link, mode, wall))
    finally:
        for s in (plain, limited):
            if s is not None:
                s.stop()
        if proxy is not None:
            proxy.close()
    print("compressed vs plain downloads (ftx sget), {} MiB files, best and median of {} rep(s); {}".format(
        args.size // MiB, args.reps, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print()
    print("| file | link | --compress | MB/s delivered | vs none | median MB/s | vs none (medians) | client CPU s | server CPU s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for (data, link, mode), results in rows.items():
        wall, client, server = min(results)
        base = min(rows[(data, link, "none")])[0]
        middle = statistics.median(r[0] for r in results)
        baseMiddle = statistics.median(r[0] for r in rows[(data, link, "none")])
        print("| {} | {} | {} | {:.1f} | {:.2f}x | {:.1f} | {:.2f}x | {:.2f} | {:.2f} |".format(
            data, link, mode, args.size / wall / 1e6, base / wall, args.size / middle / 1e6, baseMiddle / middle,
            client, server))


if __name__ == "__main__":
    main()
