"""
The benchmark's results files read back and drawn: bench/results.py parses
the Markdown that bench/run.py writes, bench/plot.py turns it into a PNG,
bench/targets.py checks issue 14's targets against it.

No benchmark runs here: a small results file in run.py's format stands in.
"""

from __future__ import annotations

import importlib
import os
import struct
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

BENCH = Path(__file__).resolve().parent.parent / "bench"

try:
    import matplotlib  # noqa: F401
except ImportError:
    NO_MATPLOTLIB = ("matplotlib is not installed, so bench/plot.py cannot be "
                     "tested: pip install -e '.[test]'")
else:
    NO_MATPLOTLIB = None


def _bench(name: str):
    """
    Import one of bench/'s scripts (a folder of scripts, not a package),
    leaving neither bench/ on sys.path nor its scripts' bare names in
    sys.modules, so that no other test can import them by accident.
    """
    path, modules = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path[:] = path
        for added in set(sys.modules) - modules:
            if getattr(sys.modules[added], "__file__", "") and \
                    Path(sys.modules[added].__file__).parent == BENCH:
                del sys.modules[added]


SAMPLE = """\
# ftx benchmark results (quick)

- date: 2026-11-30 04:00:00 UTC
- command: `python bench/run.py --quick`

### download-1g: one 256MiB file, client pulls (MB/s)

| row | median | min–max | ×limit | ×best peer | server RSS peak MiB | server CPU s | client RSS peak MiB | client CPU s | checked |
|---|---|---|---|---|---|---|---|---|---|
| limit | 2000 MB/s | 1900–2100 | 1.00 | 2.00 | 14 | 0.10 | 14 | 0.20 | ok 3×1 |
| pyftpdlib + lftp | 1000 MB/s | 950–1050 | 0.50 | 1.00 | 32 | 0.10 | 8 | 0.30 | ok 3×1 |
| ftx-cli | 1500 MB/s | 1400–1600 | 0.75 | 1.50 | 37 | 0.10 | 50 | 0.40 | ok 3×1 |
| ftx-cli transfer (wall − start-up) | 1800 MB/s | 1700–1900 | 0.90 | 1.80 | | | | | start-up 0.150 s |
| ftx-api | 1700 MB/s | 1600–1800 | 0.85 | 1.70 | 37 | 0.10 | 60 | 0.40 | ok 3×1 |

### mget-1000 (disk): 200 files of 64 KiB, one connection, on disk

| row | median | min–max | ×limit | ×best peer | server RSS peak MiB | server CPU s | client RSS peak MiB | client CPU s | checked |
|---|---|---|---|---|---|---|---|---|---|
| limit | 2400 files/s (157 MB/s) | 2000–3000 | 1.00 | 2.00 | 14 | 0.03 | 14 | 0.46 | ok 3×200 |
| ftx-api | 2200 files/s (144 MB/s) | 2000–3000 | 0.92 | 1.80 | 38 | 0.13 | 58 | 0.70 | ok 3×200 |

### mget-1000 (tmpfs): 200 files of 64 KiB, one connection, on tmpfs /dev/shm

| row | median | min–max | ×limit | ×best peer | server RSS peak MiB | server CPU s | client RSS peak MiB | client CPU s | checked |
|---|---|---|---|---|---|---|---|---|---|
| limit | 9000 files/s (590 MB/s) | 8000–9500 | 1.00 | 5.00 | 14 | 0.03 | 15 | 0.14 | ok 3×200 |
| ftx-api | 6000 files/s (393 MB/s) | 5000–7000 | 0.67 | 3.00 | 38 | 0.09 | 55 | 0.39 | ok 3×200 |

### concurrent-100: 20 clients at once (aggregate MB/s)

| row | median | min–max | ×limit | ×best peer | server RSS peak MiB | server CPU s | client RSS peak MiB | client CPU s | checked |
|---|---|---|---|---|---|---|---|---|---|
| limit | 1500 MB/s | 1400–1600 | 1.00 | 1.30 | 44 | 0.22 | 45 | 0.88 | ok 3×20 |
| ftx-cli | n/a: one CLI process per client measures start-up; see ftx-api | | | | | | | | |
| ftx-api | 950 MB/s | 900–1000 | 0.63 | 0.80 | 48 | 0.20 | 181 | 1.67 | ok 3×20 |

### stalled-reader: 256MiB download, client frozen 3 s after 8 MiB (read the server RSS column)

| row | median | min–max | ×limit | ×best peer | server RSS peak MiB | server CPU s | client RSS peak MiB | client CPU s | checked |
|---|---|---|---|---|---|---|---|---|---|
| limit | 60 MB/s | 60–60 | 1.00 | 1.00 | 14 | 0.48 | 14 | 0.58 | ok 1×1 |
| ftx-api | 58 MB/s | 58–58 | 0.97 | 0.97 | 37 | 0.44 | 63 | 1.22 | ok 1×1 |

### latency: a small command, whole process (ms, median of 5)

| row | median | min–max | over reactor import | client CPU s | checked |
|---|---|---|---|---|---|
| reactor import | 200 ms | 190–210 | – | 0.19 | ok 5 |
| ftx list (10 files) | 230 ms | 220–260 | reactor import + 30 ms | 0.22 | ok 5 |
| ftx df | 260 ms | 250–270 | reactor import + 60 ms | 0.24 | ok 5 |

### hash-1g: SHA-1 of a 256 MiB file (MB/s of file hashed)

| row | median | min–max | ×hashlib | seconds (median) |
|---|---|---|---|---|
| hashlib.sha1 in-process | 1300 MB/s | 1210–1306 | 1.00 | 0.206 |
| ftx-api hash (first) | 1200 MB/s | 1190–1210 | 0.92 | 0.224 |
| ftx-api hash (repeat, cached?) | 260000 MB/s | 250000–270000 | 200.00 | 0.001 |

_Total run time: 100 s._
"""


class ParseTests(SynchronousTestCase):
    """results.py reads back what run.py writes."""

    def test_tables(self):
        results = _bench("results")
        tables = results.by_key(results.parse(SAMPLE))
        self.assertEqual(
            list(tables),
            ["download-1g", "mget-1000 (disk)", "mget-1000 (tmpfs)", "concurrent-100",
             "stalled-reader", "latency", "hash-1g"])
        download = tables["download-1g"]
        self.assertEqual(download.value("ftx-api"), 1700.0)
        self.assertEqual(download.value("ftx-cli", "×limit"), 0.75)
        self.assertEqual(tables["mget-1000 (disk)"].value("limit"), 2400.0)
        self.assertIsNone(tables["concurrent-100"].value("ftx-cli"))
        self.assertEqual(results.unit(tables["mget-1000 (disk)"].row("limit")["median"]), "files/s")

    def test_committedBefore(self):
        """
        The committed run from before issue 14 parses into every case it has.
        """
        results = _bench("results")
        tables = results.by_key(results.load(BENCH / "results-before-14.md"))
        for key in ("download-1g", "upload-1g", "mget-1000 (disk)", "mget-1000 (tmpfs)",
                    "concurrent-100", "stalled-reader", "hash-1g"):
            self.assertIn(key, tables)
        self.assertEqual(tables["download-1g"].value("ftx-api"), 1483.0)
        self.assertEqual(tables["stalled-reader"].value("ftx-api", "server RSS peak MiB"), 37.0)


class PanelTests(SynchronousTestCase):
    """What each panel of the plot holds, before anything is drawn."""

    def test_baselinesAreLines(self):
        plot = _bench("plot")
        results = _bench("results")
        panels = {p.key: p for p in plot.panels(results.parse(SAMPLE))}
        download = panels["download-1g"]
        self.assertNotIn("limit", download.bars)
        self.assertEqual([(v, s) for _, v, s in download.lines], [(2000.0, 0)])
        self.assertEqual(download.bars["ftx-api"], [1700.0])
        latency = panels["latency"]
        self.assertEqual(latency.lines[0][1], 200.0)
        self.assertEqual(latency.targets, [("target: reactor import + 40 ms", 240.0)])

    def test_groupedVariants(self):
        """The two mget tables share a panel, one bar per variant."""
        plot = _bench("plot")
        results = _bench("results")
        panels = {p.key: p for p in plot.panels(results.parse(SAMPLE))}
        mget = panels["mget-1000"]
        self.assertEqual(mget.series, ["disk", "tmpfs"])
        self.assertEqual(mget.bars["ftx-api"], [2200.0, 6000.0])
        self.assertEqual(len(mget.lines), 2)

    def test_memoryCaseUsesServerRss(self):
        plot = _bench("plot")
        results = _bench("results")
        panels = {p.key: p for p in plot.panels(results.parse(SAMPLE))}
        self.assertEqual(panels["stalled-reader"].unit, "MiB")
        self.assertEqual(panels["stalled-reader"].bars["ftx-api"], [37.0])
        self.assertEqual(panels["concurrent-100"].bars["ftx-cli"], [None])
        self.assertNotIn("ftx-api hash (repeat, cached?)", panels["hash-1g"].bars)


class RenderTests(SynchronousTestCase):
    """bench/plot.py writes a real PNG."""

    skip = NO_MATPLOTLIB

    def test_png(self):
        plot = _bench("plot")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "results.md"
            source.write_text(SAMPLE, encoding="utf-8")
            self.assertEqual(plot.main([str(source), "-o", str(Path(tmp) / "out.png")]), 0)
            data = (Path(tmp) / "out.png").read_bytes()
            # Written through a temporary name, none of which is left.
            self.assertEqual(sorted(os.listdir(tmp)), ["out.png", "results.md"])
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", data[16:24])
        self.assertGreater(width, 800)
        self.assertGreater(height, 400)
        self.assertGreater(len(data), 20_000)

    def test_noTables(self):
        """A file with no table is a clear error, not an empty picture."""
        plot = _bench("plot")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "empty.md"
            source.write_text("# nothing here\n", encoding="utf-8")
            self.assertEqual(plot.main([str(source)]), 1)
            self.assertFalse((Path(tmp) / "empty.png").exists())


class TargetTests(SynchronousTestCase):
    """bench/targets.py sets each of issue 14's figures against its goal."""

    def test_sample(self):
        results = _bench("results")
        targets = _bench("targets")
        text = targets.table(results.parse(SAMPLE))
        lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
                 if line.startswith("| ")}
        self.assertIn("| 0.75x | >= 0.75x | yes |",
                      lines["1. download 1 GiB, `ftx` command (process wall) / limit"])
        # API 1700 MB/s, the command's transfer 1800 MB/s: 0.94x the API's time.
        self.assertIn("| 0.94x the API's time | <= 1.1x | yes |",
                      lines["1. download: command's transfer (wall − start-up) / API's transfer"])
        self.assertIn("| reactor import + 30 ms |", lines["3. `ftx list` of 10 files"])
        self.assertIn("| **no** |", lines["3. `ftx df`"])
        self.assertIn("| not measured |", lines["2. upload 1 GiB, `ftx` command / upload limit"])
        self.assertIn("| not measured |", lines["5. idle connection, server RSS each"])
        self.assertIn("| 0.63x | >= 0.6x | yes |", lines["5. 100 x 10 MiB concurrent, API / limit"])
        self.assertIn("| 37 MiB | <= 48 MiB | yes |", lines["5. stalled reader, ftx server RSS peak"])
        self.assertIn("| 0.92x | >= 0.9x | yes |", lines["5. `hash` of 1 GiB, ftx / hashlib.sha1"])


class TransferRowTests(SynchronousTestCase):
    """report.py's derived row: a whole process's transfer, start-up taken off."""

    def test_wallMinusStartup(self):
        from types import SimpleNamespace

        report = _bench("report")
        runner = _bench("runner")
        rows = _bench("rows")

        def rep(seconds, startup=None):
            return runner.Rep(seconds, 0, 0.0, 0, 0.0, 1, [], startup=startup)

        case = SimpleNamespace(unit="MB/s", title="download-1g: test", notes=lambda: [])
        result = runner.CaseResult(case, [
            runner.RowResult(rows.Row("limit", rows.LIMIT_SERVER, rows.Client(), "limit"),
                             reps=[rep(0.5)]),
            runner.RowResult(rows.Row("ftx-cli", rows.FTX_SERVER, rows.Client(), "ftx"),
                             reps=[rep(1.0, 0.25), rep(1.2, 0.3), rep(1.1, 0.2)]),
            runner.RowResult(rows.Row("ftx-api", rows.FTX_SERVER, rows.Client(), "ftx"),
                             reps=[rep(0.8)]),
        ], 1_000_000_000, 1)
        text = report.case_table(result)
        # Transfers 0.75, 0.9, 0.9 s: median rate 1111 MB/s; the API took 0.8 s.
        self.assertIn("| ftx-cli transfer (wall − start-up) | 1111 MB/s | 1111–1333 | 0.56 |",
                      text)
        self.assertIn("start-up 0.250 s", text)
        self.assertIn("is 1.12x the API's 0.800 s", text)
        self.assertNotIn("ftx-api transfer", text)


class CommandTableTests(SynchronousTestCase):
    """bench/commands.py's tables: whole-process medians over the reactor import."""

    def test_table(self):
        commands = _bench("commands")

        def result(name, walls, problem=None, skipped=None, server=None):
            probe = commands.Probe(name, ["true"], {}, server_pid=server)
            return commands.ProbeResult(
                probe, [commands.Timing(w, 0.1, 0.05, problem) for w in walls], skipped)

        text = commands.table("latency: test", [
            result(commands.REACTOR, [0.20, 0.21, 0.19]),
            result("ftx df", [0.25, 0.23, 0.30], server=1),
            result("ftx list", [0.1], problem="3 of 10 names | not\nlisted", server=1),
            result("ftx hash NAME", [], skipped="n/a: no hash here"),
        ], "ms", server_cpu=True)
        self.assertIn("| reactor import | 200 ms | 190–210 | – |  | 0.10 | ok 3 |", text)
        self.assertIn("| ftx df | 250 ms | 230–300 | reactor import + 50 ms | 0.05 | 0.10 | ok 3 |",
                      text)
        # A wrong answer is a failure, never a fast figure.
        self.assertIn("| ftx list | failed |", text)
        # What a program printed cannot break the table's row.
        self.assertIn("FAIL 1/1: 3 of 10 names / not listed |", text)
        self.assertIn("| ftx hash NAME | n/a: no hash here |", text)

    def test_latencyReps(self):
        commands = _bench("commands")
        cases = _bench("cases")
        full = cases.Settings("full", 1, 1, 1, reps=5, warmup=1, memory_reps=3, timeout=1)
        quick = cases.Settings("quick", 1, 1, 1, reps=3, warmup=1, memory_reps=1, timeout=1)
        self.assertEqual(commands.latency_reps(full, None), 20)
        self.assertEqual(commands.latency_reps(quick, None), 6)
        self.assertEqual(commands.latency_reps(full, 2), 8)
        self.assertEqual(commands.latency_reps(full, 1), 5)
        self.assertEqual(commands.latency_reps(full, 9), 20)
