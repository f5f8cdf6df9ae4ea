"""
Embedding the ftx client in a Twisted program.

Run a server first (``twistd -n ftx --port 1234 --root files/``), then::

    python examples/fetch_and_upload.py localhost:1234 some-file.txt

It lists the server, downloads one file with a progress line (checked end
to end by the connection's checksum), compares the server's SHA-1 of it
with one computed here, and uploads it back under a new name.
"""

import hashlib
import sys

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from ftx.client import connect
from ftx.errors import FtxError


def showProgress(name: str, done: int, total: int) -> None:
    percent = 100 * done // total if total else 100
    sys.stderr.write("\r{} {:3d}%".format(name, percent))
    if done == total:
        sys.stderr.write("\n")


async def main(reactor, address: str, name: str) -> None:
    client = await connect(reactor, address)
    try:
        for entry in await client.list():
            print("{:>12}  {}".format(entry.size, entry.name))
        transfer = await client.sget(name, "downloaded-copy", progress=showProgress)
        print("received {} bytes, {} {}".format(transfer.size, transfer.checksum, transfer.digest))
        remote = await client.hash(name)
        with open("downloaded-copy", "rb") as f:
            local = hashlib.sha1(f.read()).hexdigest()
        print("sha1 {} ({})".format(remote, "matches" if remote == local else "DIFFERS"))
        await client.put("downloaded-copy", "copy-of-" + name.replace("/", "_"))
        space = await client.df()
        print("server disk: {} bytes free of {}".format(space.free, space.total))
    except FtxError as e:
        print("ftx: {}".format(e), file=sys.stderr)
        raise SystemExit(1)
    finally:
        await client.quit()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: fetch_and_upload.py HOST:PORT NAME")
    react(lambda reactor: ensureDeferred(main(reactor, sys.argv[1], sys.argv[2])))
