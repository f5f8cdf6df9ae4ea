"""
The line format and the error round trip, without I/O.
"""

from twisted.trial.unittest import SynchronousTestCase

import ftx.client.api
from ftx import errors
from ftx.protocol import wire


class NameEncodingTests(SynchronousTestCase):
    def test_roundTripOfAwkwardNames(self):
        """
        Spaces, percent signs, UTF-8, control bytes and bytes that are not
        UTF-8 survive encoding, and the encoded form has no space.
        """
        names = [b"plain.txt", b"my photo.jpg", "été/x y.txt".encode(), b"100%", b"a\r\nb", b"\xff\xfe", b"x+y=z&q"]
        for name in names:
            encoded = wire.encodeName(name)
            self.assertNotIn(" ", encoded)
            self.assertNotIn("\r", encoded)
            self.assertEqual(wire.decodeName(encoded), name)

    def test_slashesStayReadable(self):
        self.assertEqual(wire.encodeName("a/b/c.txt"), "a/b/c.txt")

    def test_badPercentRejected(self):
        self.assertRaises(errors.BadRequest, wire.decodeName, "bad%zz")
        self.assertRaises(errors.BadRequest, wire.decodeName, "")


class NumberTests(SynchronousTestCase):
    def test_valid(self):
        self.assertEqual(wire.parseNumber("0"), 0)
        self.assertEqual(wire.parseNumber("9223372036854775807"), 2**63 - 1)

    def test_invalid(self):
        for text in ["-1", "01", "1e3", "", " 1", "0x10", "9223372036854775808", "١٢"]:
            self.assertRaises(errors.BadRequest, wire.parseNumber, text)

    def test_digest(self):
        self.assertEqual(wire.parseDigest("A" * 40), "a" * 40)
        self.assertRaises(errors.BadRequest, wire.parseDigest, "g" * 40)
        self.assertRaises(errors.BadRequest, wire.parseDigest, "a" * 39)


class CommandTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(wire.parseCommand(b"SGET a%20b"), ("sget", ["a%20b"]))
        self.assertEqual(wire.parseCommand(b"list"), ("list", []))

    def test_invalidUtf8(self):
        self.assertRaises(errors.BadRequest, wire.parseCommand, b"sget \xff")

    def test_empty(self):
        self.assertRaises(errors.BadRequest, wire.parseCommand, b"")


class ErrorRoundTripTests(SynchronousTestCase):
    def test_everyErrorComesBackAsItsClass(self):
        """
        What the server formats, the client parses back into the same class
        with the same message.
        """
        classes = [
            errors.BadRequest, errors.LoginRequired, errors.PermissionDenied, errors.NotFound,
            errors.Conflict, errors.TooLarge, errors.BadOffset, errors.IntegrityError,
            errors.LoginFailed, errors.ServerError, errors.Unavailable, errors.NoSpace,
        ]
        codes = set()
        for cls in classes:
            line = wire.formatError(cls("something went\r\nwrong"))
            reply = wire.parseReply(line)
            self.assertTrue(reply.isError)
            back = errors.errorFromReply(reply.code, reply.errorMessage())
            self.assertIs(type(back), cls)
            self.assertEqual(str(back), "something went  wrong")
            codes.add(cls.code)
        self.assertEqual(len(codes), len(classes))

    def test_unknownCodeIsStillAnFtxError(self):
        error = errors.errorFromReply(499, "odd")
        self.assertIsInstance(error, errors.FtxError)
        self.assertEqual(error.code, 499)

    def test_malformedReply(self):
        self.assertRaises(errors.FtxError, wire.parseReply, b"hello")


class PublicNamesTests(SynchronousTestCase):
    def test_exported(self):
        for module in (ftx.client.api, errors):
            for name in module.__all__:
                self.assertTrue(hasattr(module, name), name)
