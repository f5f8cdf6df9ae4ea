"""
``twistd ftx --storage s3 ...``: the options, checked before the server
starts, with the clear errors a user sees.
"""

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ftx.server.s3 import S3Storage
from ftx.server.tap import Options, makeFactory
from tests import seaweed
from twisted.internet.testing import MemoryReactorClock


def _parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class StorageOptionTests(SynchronousTestCase):
    def test_localIsTheDefault(self):
        options = _parse("--root", ".")
        self.assertEqual(options["storage"], "local")

    def test_refusals(self):
        cases = [
            (("--storage", "nfs"), "--storage must be local or s3: 'nfs'"),
            (("--storage", "s3", "--s3-bucket", "b"), "--storage s3 needs --s3-endpoint"),
            (("--storage", "s3", "--s3-endpoint", "http://127.0.0.1:1"), "--storage s3 needs --s3-bucket"),
            (("--s3-bucket", "b"), "--s3-bucket needs --storage s3"),
        ]
        for args, message in cases:
            e = self.assertRaises(usage.UsageError, _parse, *args)
            self.assertEqual(str(e), message)

    def test_missingBucket(self):
        endpoint = seaweed.engine().endpoint
        e = self.assertRaises(usage.UsageError, _parse, "--storage", "s3", "--s3-endpoint", endpoint, "--s3-bucket", "not-there")
        self.assertEqual(str(e), "the bucket not-there does not exist at {}; create it first".format(endpoint))

    def test_s3Storage(self):
        engine = seaweed.engine()
        bucket = engine.newBucket()
        options = _parse("--storage", "s3", "--s3-endpoint", engine.endpoint, "--s3-bucket", bucket,
                         "--s3-prefix", "/files/", "--s3-capacity", "10G", "--s3-lease", "2m")
        self.addCleanup(options.s3Bucket.close)
        self.assertEqual((options["s3-prefix"], options["s3-capacity"], options["s3-lease"]), ("files/", 10 << 30, 120.0))
        reactor = MemoryReactorClock()
        factory = makeFactory(options, reactor)
        self.assertEqual([t[0] for t in reactor.triggers["after"]["shutdown"]], [factory.storage.close])
        self.assertIsInstance(factory.storage, S3Storage)
        self.assertEqual(factory.storage.location, "s3://{}/files/".format(bucket))
        self.assertEqual(factory.storage.diskSpace(), (10 << 30, 10 << 30))

    def test_refusedCredentials(self):
        """
        Credentials come from the environment (boto3's chain); wrong ones
        are a clear error before the server starts.
        """
        import os

        engine = seaweed.engine()
        bucket = engine.newBucket()
        environment = dict(os.environ, AWS_SECRET_ACCESS_KEY="wrong")
        self.patch(os, "environ", environment)
        e = self.assertRaises(usage.UsageError, _parse, "--storage", "s3", "--s3-endpoint", engine.endpoint, "--s3-bucket", bucket)
        self.assertEqual(
            str(e),
            "access to the bucket {} at {} was refused: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials".format(bucket, engine.endpoint),
        )
