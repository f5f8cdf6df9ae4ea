"""
Rate limits held over 10 s: target vs measured rate and the error.

Rows (each transfers about ten seconds' worth at the target rate):

  - server --limit-rate, a download and an upload;
  - server --limit-total, shared by N clients downloading at once (the
    rate of all of them together, and the spread between them);
  - client --limit-rate, a download and an upload, from an unlimited server;
  - the web view (--http-port) under --limit-rate: one curl download; and
    under --limit-total: curl downloading beside the ftx clients, all of
    them sharing the one total.

The server is ``twistd -n ftx`` on loopback; each client is a separate
Python process using the embedded API (``ftx.client.connect``), timing only
the transfer. Also printed: the server's and clients' CPU seconds (the
machine may be shared: CPU seconds mean more than wall time there).

Usage::

    python bench/ratelimit.py                  # 12.5MB/s (100 Mbit/s), 3 clients
    python bench/ratelimit.py --rate 2MB/s --clients 4 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def clientMain(argv) -> None:
    """
    One client process: C{ADDRESS get|put NAME LOCAL RATE}; prints a JSON
    line with the bytes moved, the wall-clock start and end, and its CPU
    seconds.
    """
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    from ftx.client.api import connect

    address, verb, name, local, rate = argv
    result = {}

    async def run(reactor):
        client = await connect(reactor, address, limitRate=int(rate) or None)
        try:
            started = time.time()
            if verb == "get":
                transfer = await client.sget(name, local)
            else:
                transfer = await client.put(local, name)
            ended = time.time()
        finally:
            await client.quit()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result.update(bytes=transfer.transferred, start=started, end=ended, cpu=usage.ru_utime + usage.ru_stime)
        print(json.dumps(result), flush=True)

    react(lambda reactor: ensureDeferred(run(reactor)))


def processCPU(pid: int) -> float:
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, root: str, *options: str) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "ftx", "--port", "tcp:0:interface=127.0.0.1", "--root", root] + list(options),
            stdout=self.log, stderr=subprocess.STDOUT, cwd=root,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.log.seek(0)
            text = self.log.read()
            found = re.search(r"\(port (\d+)\)", text)
            web = re.search(r"\(http port (\d+)\)", text)
            if found and (web or "--http-port" not in options):
                self.address = "127.0.0.1:{}".format(found.group(1))
                #: The web view's base URL, when the server has one.
                self.web = "http://127.0.0.1:{}".format(web.group(1)) if web else None
                self.cpu0 = processCPU(self.process.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the server did not start")

    def cpu(self) -> float:
        return processCPU(self.process.pid) - self.cpu0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def runClients(jobs):
    """
    Start one client process per C{(address, verb, name, local, rate)} at
    once; return their JSON results.
    """
    processes = [
        subprocess.Popen([sys.executable, __file__, "--client"] + [str(x) for x in job], stdout=subprocess.PIPE, text=True)
        for job in jobs
    ]
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError("a client failed")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


WEB = ["--http-port", "tcp:0:interface=127.0.0.1"]
CURL_TIMES = "%{size_download} %{time_starttransfer} %{time_total}"


def startCurl(url: str):
    """
    A curl download of C{url} to nowhere, started now; L{curlResult} waits.
    """
    return time.time(), subprocess.Popen(
        ["curl", "-s", "-f", "-o", os.devnull, "-w", CURL_TIMES, url], stdout=subprocess.PIPE, text=True
    )


def curlResult(started) -> dict:
    """
    What L{startCurl}'s download moved, from its first byte to its last
    (curl's own timing), like a client process's JSON line; the CPU is
    curl's (children's usage is counted once they are waited for).
    """
    wall, process = started
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out, _ = process.communicate(timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError("curl failed")
    size, first, total = out.split()
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"bytes": int(size), "start": wall + float(first), "end": wall + float(total), "cpu": cpu}


def row(label: str, target: float, results, serverCPU: float) -> dict:
    moved = sum(r["bytes"] for r in results)
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    measured = moved / span
    error = (measured - target) / target * 100
    spread = ""
    if len(results) > 1:
        rates = [r["bytes"] / (r["end"] - r["start"]) for r in results]
        spread = "{:.1f}%".format((max(rates) - min(rates)) / (sum(rates) / len(rates)) * 100)
    line = {
        "row": label, "target MB/s": target / 1e6, "measured MB/s": measured / 1e6, "error %": error,
        "seconds": span, "client CPU s": sum(r["cpu"] for r in results), "server CPU s": serverCPU, "spread": spread,
    }
    print(
        "{row:<44} {target MB/s:>9.3f} {measured MB/s:>11.3f} {error %:>+8.2f} {seconds:>8.2f} "
        "{client CPU s:>8.2f} {server CPU s:>8.2f} {spread:>7}".format(**line),
        flush=True,
    )
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", default="12.5MB/s", help="the limit (default 12.5MB/s = 100 Mbit/s)")
    parser.add_argument("--clients", type=int, default=3, help="clients sharing --limit-total (2-4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each row at the target rate")
    parser.add_argument("--work", default=None, help="folder for the data (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))
    from ftx._io.ratelimit import parseRate

    rate = parseRate(args.rate)
    work = tempfile.mkdtemp(prefix="ftx-bench-rate-", dir=args.work)
    rows = []
    try:
        root, local = os.path.join(work, "root"), os.path.join(work, "local")
        os.mkdir(root)
        os.mkdir(local)
        size = int(rate * args.seconds)
        share = size // args.clients
        with open(os.path.join(root, "big.bin"), "wb") as f:
            left = size
            while left:
                f.write(os.urandom(min(left, 1 << 20)))
                left -= min(left, 1 << 20)
        for n in range(args.clients):
            with open(os.path.join(root, "part{}.bin".format(n)), "wb") as f:
                f.write(os.urandom(share))
        shutil.copy(os.path.join(root, "big.bin"), os.path.join(local, "up.bin"))
        print("rate limit {} = {:.3f} MB/s, {:.0f} s a row (figures taken as the machine was)".format(
            args.rate, rate / 1e6, args.seconds))
        print("{:<44} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>7}".format(
            "row", "target", "measured", "error %", "seconds", "cli CPU", "srv CPU", "spread"))

        server = Server(root, "--limit-rate", str(rate), *WEB)
        try:
            out = runClients([(server.address, "get", "big.bin", os.path.join(local, "d1.bin"), 0)])
            rows.append(row("server --limit-rate, download", rate, out, server.cpu()))
            cpu = server.cpu()
            out = runClients([(server.address, "put", "up1.bin", os.path.join(local, "up.bin"), 0)])
            rows.append(row("server --limit-rate, upload", rate, out, server.cpu() - cpu))
            cpu = server.cpu()
            out = [curlResult(startCurl(server.web + "/big.bin"))]
            rows.append(row("web view --limit-rate, curl download", rate, out, server.cpu() - cpu))
        finally:
            server.stop()

        server = Server(root, "--limit-total", str(rate), *WEB)
        try:
            jobs = [
                (server.address, "get", "part{}.bin".format(n), os.path.join(local, "p{}.bin".format(n)), 0)
                for n in range(args.clients)
            ]
            out = runClients(jobs)
            rows.append(row("server --limit-total, {} clients download".format(args.clients), rate, out, server.cpu()))
            cpu = server.cpu()
            web = startCurl(server.web + "/part0.bin")
            out = runClients(jobs[1:]) + [curlResult(web)]
            rows.append(row("--limit-total, {} clients + curl (web)".format(args.clients - 1), rate, out, server.cpu() - cpu))
        finally:
            server.stop()

        server = Server(root)
        try:
            out = runClients([(server.address, "get", "big.bin", os.path.join(local, "d2.bin"), rate)])
            rows.append(row("client --limit-rate, download", rate, out, server.cpu()))
            cpu = server.cpu()
            out = runClients([(server.address, "put", "up2.bin", os.path.join(local, "up.bin"), rate)])
            rows.append(row("client --limit-rate, upload", rate, out, server.cpu() - cpu))
        finally:
            server.stop()
        worst = max(abs(r["error %"]) for r in rows)
        print("worst error {:.2f}% ({} 5%)".format(worst, "within" if worst <= 5 else "NOT within"))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return 0 if worst <= 5 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        sys.path.insert(0, os.path.dirname(HERE))
        clientMain(sys.argv[2:])
    else:
        sys.exit(main())
