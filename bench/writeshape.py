"""
What the shape of a file's writes costs the kernel: CPU seconds to write
1 GiB into a new file, by the size of each C{write} and where it starts.

    python bench/writeshape.py              # 5 rounds, 1 GiB each
    python bench/writeshape.py --rounds 9 --size 512M

Why this exists: a compressed download of random data spent twice the
system time of a plain one, all of it copying into the page cache
(C{copy_folio_from_iter_atomic}). Its raw blocks are written 1 MiB at a
time at 1 MiB boundaries; a plain body's writes rarely line up so. Each
shape runs in a fresh process (as each download does), rounds alternate
the shapes, and the file is removed after each, so no shape inherits
another's page cache. The figures are medians of the system CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

MiB = 1 << 20
#: name -> (first write's size, the write size after it)
SHAPES = {
    "1 MiB at 1 MiB boundaries": (0, MiB),
    "1 MiB, shifted 1 page": (4096, MiB),
    "1 MiB, shifted 3330 bytes": (3330, MiB),
    "256 KiB at 256 KiB boundaries": (0, 256 << 10),
    "1 MiB cut in 256 KiB writes (ftx)": (0, None),
}


def writeOnce(path: str, total: int, first: int, piece) -> float:
    """
    Write C{total} bytes into a new file at C{path}: C{first} bytes, then
    pieces of C{piece} bytes (L{None}: 1 MiB buffers each written by
    L{ftx._io.fileio.writeAll}); the system CPU seconds it took.
    """
    import mmap

    buffer = mmap.mmap(-1, MiB)
    for at in range(0, MiB, 4096):
        buffer[at] = 1
    view = memoryview(buffer)
    with open(path, "wb", buffering=0) as f:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        done = f.write(view[:first]) if first else 0
        if piece is None:
            from ftx._io.fileio import writeAll

            while done < total:
                writeAll(f, view)
                done += MiB
        else:
            while done < total:
                done += f.write(view[: min(piece, total - done)])
        spent = resource.getrusage(resource.RUSAGE_SELF).ru_stime - before
    os.unlink(path)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="1G", help="bytes per file: 1G, 512M ...")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    units = {"G": 1 << 30, "M": MiB, "K": 1024}
    total = int(args.size[:-1]) * units[args.size[-1].upper()] if args.size[-1].isalpha() else int(args.size)
    if args.one:
        first, piece = SHAPES[args.one[0]]
        print("{:.4f}".format(writeOnce(args.one[1], total, first, piece)))
        return
    path = os.path.join(args.workdir, "ftx-writeshape-{}.bin".format(os.getpid()))
    results = {name: [] for name in SHAPES}
    for _ in range(args.rounds):
        for name in SHAPES:
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--size", args.size, "--one", name, path],
                check=True, capture_output=True, text=True,
            ).stdout
            results[name].append(float(out))
    print("system CPU s to write {} into a new file, fresh process each, {} rounds".format(args.size, args.rounds))
    print()
    print("| writes | median | min | max |")
    print("|---|--:|--:|--:|")
    for name, spent in results.items():
        print("| {} | {:.2f} | {:.2f} | {:.2f} |".format(name, statistics.median(spent), min(spent), max(spent)))


if __name__ == "__main__":
    main()
