"""
An object-store backend: L{S3Storage} keeps the files in one bucket of an
S3-compatible engine (tested against SeaweedFS), so that several ftx front
ends over the same bucket are interchangeable. See docs/scale-out.rst.

Needs the C{s3} extra (C{pip install 'ftx[s3]'}, which brings boto3); the
import of boto3 happens only when a bucket is opened.
"""

from ftx.server.s3.storage import S3Storage, openBucket

__all__ = ["S3Storage", "openBucket"]
