"""
The twistd options of the object-store backend:
C{--storage s3 --s3-endpoint URL --s3-bucket NAME [--s3-prefix P]
[--s3-region R]}, with C{--storage local} (files under C{--root}) the
default. Credentials are never options: boto3 takes them from
C{AWS_ACCESS_KEY_ID}/C{AWS_SECRET_ACCESS_KEY} or the standard AWS files.
"""

from __future__ import annotations

from twisted.python import usage

__all__ = ["OPTIONS", "checkStorage", "makeStorage"]

OPTIONS = [
    ["storage", None, "local", "Where files are kept: local (the folder --root) or s3 (a bucket; docs/scale-out.rst)."],
    ["s3-endpoint", None, None, "With --storage s3: the engine's S3 address, e.g. http://127.0.0.1:8333."],
    ["s3-bucket", None, None, "With --storage s3: the bucket, which must exist."],
    ["s3-prefix", None, "", "With --storage s3: keep the files under this key prefix."],
    ["s3-region", None, None, "With --storage s3: the region to sign requests for (default us-east-1)."],
    ["s3-capacity", None, "1T", "With --storage s3: the total size df reports (an S3 engine does not tell it)."],
    ["s3-lease", None, "60", "With --storage s3: how long a dead front end's upload blocks its name (e.g. 60, 2m)."],
]


def checkStorage(options, parseSize, parseDuration) -> None:
    """
    Check the storage options; with C{--storage s3}, connect to the bucket
    (kept as C{options.s3Bucket}) so that a missing bucket or a refused
    credential is a clear error before the server starts.

    @param parseSize: the server's parser of sizes (C{"1T"}).
    @param parseDuration: the server's parser of durations (C{"2m"}).
    @raise usage.UsageError: they do not fit together, or the bucket
        cannot be used.
    """
    kind = options["storage"]
    if kind not in ("local", "s3"):
        raise usage.UsageError("--storage must be local or s3: {!r}".format(kind))
    given = [name for name in ("s3-endpoint", "s3-bucket", "s3-region") if options[name]]
    if kind == "local":
        if given or options["s3-prefix"]:
            raise usage.UsageError("--{} needs --storage s3".format((given or ["s3-prefix"])[0]))
        return
    for name in ("s3-endpoint", "s3-bucket"):
        if not options[name]:
            raise usage.UsageError("--storage s3 needs --{}".format(name))
    prefix = options["s3-prefix"].strip("/")
    options["s3-prefix"] = prefix + "/" if prefix else ""
    options["s3-capacity"] = parseSize(str(options["s3-capacity"]))
    options["s3-lease"] = parseDuration(str(options["s3-lease"]))
    if options["s3-lease"] <= 0:
        raise usage.UsageError("--s3-lease must be more than 0")
    from ftx.server.s3.storage import openBucket

    try:
        options.s3Bucket = openBucket(options["s3-endpoint"], options["s3-bucket"], options["s3-region"])
    except ValueError as e:
        raise usage.UsageError(str(e))


def makeStorage(options, quota, reactor):
    """
    The L{ftx.server.s3.S3Storage} of checked options; its thread pool
    stops when the reactor shuts down.
    """
    from ftx.server.s3.storage import S3Storage

    storage = S3Storage(options.s3Bucket, options["s3-prefix"], quota, capacity=options["s3-capacity"], leaseSeconds=options["s3-lease"])
    reactor.addSystemEventTrigger("after", "shutdown", storage.close)
    return storage
