"""
Benchmark ftx against a plain-Python limit and against FTP peers.

Usage::

    python bench/run.py [--quick|--full] [--only CASE,...] [--rows ROW,...]
                        [--reps N] [--workdir DIR] [--timeout S]

Prints one Markdown table per case and writes the same to
bench/results-latest.md, then the table of issue 14's targets
(targets.py) and a plot of every table, bench/results-latest.png
(plot.py; needs matplotlib, the ``bench`` extra). See bench/README.rst for
what the rows and cases are and how to read the tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import commands  # noqa: E402
import report  # noqa: E402
import results  # noqa: E402
import targets  # noqa: E402
from cases import Paths, all_cases, settings_for  # noqa: E402
from datasets import DataDir  # noqa: E402
from rows import all_rows, ftx_unavailable  # noqa: E402
from runner import RowResult, run_case, run_hash_case  # noqa: E402

CASE_KEYS = ["download-1g", "upload-1g", "mget-1000", "concurrent-100",
             "stalled-reader", "hash-1g", "latency", "rerun", "idle"]
RESULTS = Path(__file__).resolve().parent / "results-latest.md"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="256 MiB files, 200 small files, 20 clients, 3 reps, "
                           "6 per command (< 3 min)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="1 GiB files, 1000 small files, 100 clients, 5 reps, "
                           "20 per command (default)")
    p.add_argument("--only", help="comma-separated cases: " + ",".join(CASE_KEYS))
    p.add_argument("--rows", help="comma-separated rows, spaces optional (e.g. limit,pyftpdlib+lftp,ftx-api)")
    p.add_argument("--reps", type=int, help="measured reps per row (after one warm-up); "
                   "the latency case takes 4x as many, at most its default")
    p.add_argument("--workdir", default="/tmp/ftx-bench",
                   help="where data and received files go (default /tmp/ftx-bench, on disk)")
    p.add_argument("--shm-dir", default="/dev/shm/ftx-bench",
                   help="tmpfs dir for the mget tmpfs variant; removed at the end")
    p.add_argument("--s3", action="store_true",
                   help="also run the S3-backend rows (bench/s3rows.py: needs the engine and boto3)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="hard limit in seconds on every transfer (default 300)")
    args = p.parse_args(argv)
    args.mode = args.mode or "full"
    args.only = args.only.split(",") if args.only else list(CASE_KEYS)
    unknown = set(args.only) - set(CASE_KEYS)
    if unknown:
        p.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def _terminate(signum, frame):
    # Turn SIGTERM into an exception so every finally block stops its servers.
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    settings = settings_for(args.mode, args.reps, args.timeout)
    paths = Paths(Path(args.workdir).resolve(), Path(args.shm_dir))

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = all_rows()
    if args.rows:
        wanted = {w.replace(" ", "") for w in args.rows.split(",")}
        rows = [r for r in rows if r.name.replace(" ", "") in wanted or r.slug in wanted]
        if not rows:
            sys.exit(f"--rows matched no row; rows are: {', '.join(r.name for r in all_rows())}")
    ftx_reason = ftx_unavailable()
    progress(f"ftx: {ftx_reason or 'importable'}")

    data = DataDir(paths.data)
    out = [report.header(args.mode, [Path(sys.executable).name] + sys.argv, str(paths.work))]
    try:
        for case in all_cases(settings, paths):
            if case.key not in args.only:
                continue
            progress(f"{case.key}: preparing data")
            case.prepare(data)
            data.save()
            result = run_case(case, rows, paths, progress) if not ftx_reason else \
                _run_without_ftx(case, rows, paths, progress, ftx_reason)
            table = report.case_table(result)
            print(table, flush=True)
            out.append(table)
        if "hash-1g" in args.only:
            table = _hash(settings, paths, data, rows, ftx_reason, progress)
            print(table, flush=True)
            out.append(table)
        for key, run_one in (("latency", _latency), ("rerun", _rerun), ("idle", _idle)):
            if key not in args.only:
                continue
            progress(f"{key}: preparing")
            try:
                table = run_one(args, settings, paths, data, ftx_reason, progress)
            except Exception as e:  # one broken case must not lose the others' tables
                progress(f"{key}: FAILED: {e!r}")
                table = f"### {key}\n\nfailed: {type(e).__name__}: {str(e)[:300]}\n"
            print(table, flush=True)
            out.append(table)
        if args.s3:
            import s3rows

            table = s3rows.run(args.mode == "quick", args.reps or 3, paths.work)
            print(table, flush=True)
            out.append(table)
    finally:
        shutil.rmtree(paths.shm, ignore_errors=True)
    goals = targets.table(results.parse("\n".join(out)))
    print(goals, flush=True)
    out.append(goals)
    out.append(f"_Total run time: {time.monotonic() - started:.0f} s._\n")
    tmp = RESULTS.with_name(RESULTS.name + ".tmp")
    tmp.write_text("\n".join(out))
    os.replace(tmp, RESULTS)
    progress(f"wrote {RESULTS} in {time.monotonic() - started:.0f} s")
    _plot(progress)
    return 0


def _plot(progress) -> None:
    """The PNG beside the Markdown; a missing matplotlib costs the plot only."""
    try:
        import plot

        progress(f"wrote {plot.render_file(RESULTS)}")
    except ImportError as e:
        progress(f"no plot: {e} (pip install -e '.[bench]')")
    except ValueError as e:
        progress(f"no plot: {e}")


def _latency(args, settings, paths, data, ftx_reason, progress) -> str:
    if ftx_reason:
        return f"### latency\n\n{ftx_reason}\n"
    reps = commands.latency_reps(settings, args.reps)
    return commands.run_latency(settings, paths, data, reps, progress)


def _rerun(args, settings, paths, data, ftx_reason, progress) -> str:
    if ftx_reason:
        return f"### rerun\n\n{ftx_reason}\n"
    return commands.run_rerun(settings, paths, data, settings.reps, progress)


def _idle(args, settings, paths, data, ftx_reason, progress) -> str:
    if ftx_reason:
        return f"### idle\n\n{ftx_reason}\n"
    import idle

    connections = 200 if settings.mode == "quick" else 1000
    reps = settings.memory_reps
    samples = idle.measure(connections, reps, lambda line: progress(f"  idle {line}"))
    return idle.table(samples, connections)


def _run_without_ftx(case, rows, paths, progress, reason):
    """Run the case with the ftx rows marked unavailable, keeping their place."""
    runnable = [r for r in rows if r.kind != "ftx"]
    result = run_case(case, runnable, paths, progress)
    by_name = {rr.row.name: rr for rr in result.rows}
    result.rows = [by_name.get(r.name) or RowResult(r, skipped=reason) for r in rows]
    return result


def _hash(settings, paths, data, rows, ftx_reason, progress) -> str:
    api = next((r for r in rows if r.name == "ftx-api"), None)
    if ftx_reason or api is None:
        return f"### hash-1g\n\n{ftx_reason or 'n/a: ftx-api row not selected'}\n"
    label = f"{settings.big_size >> 20}M"
    progress("hash-1g: preparing data")
    source = data.ensure(f"hash/hash-{label}.bin", settings.big_size)
    data.save()
    reps = max(1, settings.memory_reps)
    times = run_hash_case(source, api, reps, paths, settings.timeout, progress)
    return report.hash_table(times, settings.big_size, reps)


if __name__ == "__main__":
    sys.exit(main())
