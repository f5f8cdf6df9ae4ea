"""
The web view's pure parts: request paths to storage names, Range headers,
and the listing built from a flat list of files.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from ftx.errors import PermissionDenied
from ftx.server.storage import StoredFile
from ftx.server.web.listing import Entry, entriesBelow, humanSize
from ftx.server.web.paths import WebPath, linkTo, parseRequestPath
from ftx.server.web.ranges import Unsatisfiable, parseRange


class RequestPathTests(SynchronousTestCase):
    def test_rootAndFolders(self) -> None:
        self.assertEqual(parseRequestPath(b"/"), WebPath(b"", True))
        self.assertEqual(parseRequestPath(b"/a/b"), WebPath(b"a/b", False))
        self.assertEqual(parseRequestPath(b"/a/b/"), WebPath(b"a/b", True))

    def test_segmentsUnquotedOneByOne(self) -> None:
        self.assertEqual(parseRequestPath(b"/caf%C3%A9/%25"), WebPath("café/%".encode(), False))
        self.assertEqual(parseRequestPath(b"/raw%FF"), WebPath(b"raw\xff", False))

    def test_refusesEscapes(self) -> None:
        """
        Every way out the protocol refuses is refused here too, encoded or
        not: C{..}, an encoded slash, NUL, backslash, control characters,
        empty parts and partial-upload names.
        """
        for raw in [
            b"/../etc/passwd",
            b"/a/../../x",
            b"/%2e%2e/x",
            b"/a%2F..%2F..%2Fx",
            b"/a%2fb",
            b"/x%00y",
            b"/a%5C..%5Cb",
            b"/a%0Ab",
            b"/a//b",
            b"/.f.ftx-partial",
            b"/sub/.f.ftx-partial",
        ]:
            self.assertRaises(PermissionDenied, parseRequestPath, raw)

    def test_linksRoundTrip(self) -> None:
        for segments in ([b"a b", b"<x>&\"'"], [b"100%", b"q?#"], [b"\xff\xfe"], ["é".encode()]):
            link = linkTo(segments).encode("ascii")
            self.assertEqual(parseRequestPath(link).segments, segments)
        self.assertEqual(linkTo([b"d"], folder=True), "/d/")
        self.assertEqual(linkTo([], folder=True), "/")


class RangeTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(parseRange(b"bytes=0-99", 1000), (0, 99))
        self.assertEqual(parseRange(b"bytes=500-", 1000), (500, 999))
        self.assertEqual(parseRange(b"bytes=-100", 1000), (900, 999))
        self.assertEqual(parseRange(b"bytes=-5000", 1000), (0, 999))
        self.assertEqual(parseRange(b"bytes=990-5000", 1000), (990, 999))
        self.assertEqual(parseRange(b"Bytes = 1-1", 10), (1, 1))

    def test_wholeFileWhenNotOneByteRange(self) -> None:
        for header in [None, b"", b"items=0-1", b"bytes=0-1,5-6", b"bytes=x-1", b"bytes=5-1", b"bytes=-", b"bytes=1"]:
            self.assertIsNone(parseRange(header, 1000), header)

    def test_unsatisfiable(self) -> None:
        for header, size in [(b"bytes=1000-", 1000), (b"bytes=2000-3000", 1000), (b"bytes=-0", 1000), (b"bytes=0-", 0)]:
            self.assertRaises(Unsatisfiable, parseRange, header, size)


class ListingTests(SynchronousTestCase):
    FILES = [
        StoredFile(b"a.txt", 3, 100),
        StoredFile(b"docs/x", 10, 200),
        StoredFile(b"docs/deep/y", 5, 300),
        StoredFile(b"docsz", 1, 50),
        StoredFile(b"z/q", 2, 10),
    ]

    def test_rootChildren(self) -> None:
        self.assertEqual(
            entriesBelow(self.FILES, b""),
            [
                Entry(b"docs", True, 15, 300, 2),
                Entry(b"z", True, 2, 10, 1),
                Entry(b"a.txt", False, 3, 100, 1),
                Entry(b"docsz", False, 1, 50, 1),
            ],
        )

    def test_folderChildren(self) -> None:
        self.assertEqual(
            entriesBelow(self.FILES, b"docs"),
            [Entry(b"deep", True, 5, 300, 1), Entry(b"x", False, 10, 200, 1)],
        )

    def test_sizes(self) -> None:
        self.assertEqual(humanSize(0), "0 B")
        self.assertEqual(humanSize(1023), "1023 B")
        self.assertEqual(humanSize(1536), "1.5 KiB")
        self.assertEqual(humanSize(3 << 30), "3.0 GiB")
