"""
The web view served in-process on a real loopback port: the listing page,
downloads with ranges and validators, confinement and accounts. (The same
view under a real C{twistd} with curl and a real browser:
L{tests.test_web_twistd}, L{tests.test_web_browser}.)
"""

from __future__ import annotations

import hashlib
import os

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web import http

from ftx.server.accounts import AccessControl, AccessRules, Permissions
from ftx.server.filesystem import FilesystemStorage
from ftx.testing import MemoryStorage
from tests.webtools import fetch, header, makeTree, serveWeb

BIG = os.urandom(700 * 1024 + 17)
FILES = {
    "big.bin": BIG,
    "notes.txt": b"hello\n",
    "sub/deep/inner.txt": b"inner\n",
    "<img src=x onerror=alert(1)>.txt": b"x",
    "alice/mine.txt": b"alice's\n",
}


class ListingTests(TestCase):
    async def test_rootPage(self) -> None:
        """
        The root page links every file and top folder, with sizes, and
        shows names escaped: a name is chosen by whoever uploaded it.
        """
        root = makeTree(self, FILES)
        with open(os.path.join(root, ".big.bin.ftx-partial"), "wb") as f:
            f.write(b"half")
        url = await serveWeb(self, reactor, root)
        response, page = await fetch(reactor, url + "/")
        self.assertEqual(response.code, 200)
        self.assertEqual(header(response, "content-type"), "text/html; charset=utf-8")
        self.assertIn(b'href="/big.bin"', page)
        self.assertIn(b'href="/notes.txt"', page)
        self.assertIn(b'href="/sub/"', page)
        self.assertIn(b'title="%d bytes"' % len(BIG), page)
        self.assertNotIn(b"<img", page)
        self.assertIn(b"&lt;img src=x onerror=alert(1)&gt;.txt", page)
        self.assertIn(b'href="/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt"', page)
        self.assertNotIn(b"ftx-partial", page)
        self.assertNotIn(b"inner.txt", page)

    async def test_folders(self) -> None:
        """
        A folder without its trailing slash redirects to it; with it, its
        page lists what is directly inside and links back up.
        """
        url = await serveWeb(self, reactor, makeTree(self, FILES))
        response, _ = await fetch(reactor, url + "/sub")
        self.assertEqual(response.code, http.FOUND)
        self.assertEqual(header(response, "location"), "/sub/")
        response, page = await fetch(reactor, url + "/sub/deep/")
        self.assertEqual(response.code, 200)
        self.assertIn(b'href="/sub/deep/inner.txt"', page)
        self.assertIn(b'href="/sub/"', page)

    async def test_emptyFolderAndMissing(self) -> None:
        root = makeTree(self, FILES)
        os.mkdir(os.path.join(root, "empty"))
        url = await serveWeb(self, reactor, root)
        response, page = await fetch(reactor, url + "/empty/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"This folder is empty.", page)
        response, _ = await fetch(reactor, url + "/nothing/")
        self.assertEqual(response.code, 404)
        response, _ = await fetch(reactor, url + "/notes.txt/")
        self.assertEqual(response.code, 404)

    async def test_folderWithWildcardName(self) -> None:
        """
        A folder whose name holds C{*} lists its files, not a mask's.
        """
        url = await serveWeb(self, reactor, makeTree(self, {"a*b/in.txt": b"1", "axb/no.txt": b"2"}))
        response, page = await fetch(reactor, url + "/a%2Ab/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"in.txt", page)
        self.assertNotIn(b"no.txt", page)

    async def test_memoryStorage(self) -> None:
        """
        The view needs nothing but L{IStorage}: the in-memory backend
        serves the same pages and ranges.
        """
        storage = MemoryStorage({b"m/one.txt": b"0123456789"})
        url = await serveWeb(self, reactor, storage)
        response, page = await fetch(reactor, url + "/m/")
        self.assertIn(b'href="/m/one.txt"', page)
        response, body = await fetch(reactor, url + "/m/one.txt", headers={"Range": "bytes=3-5"})
        self.assertEqual((response.code, body), (206, b"345"))


class DownloadTests(TestCase):
    async def test_wholeFile(self) -> None:
        """
        The bytes, their length, the SHA-1 as ETag and the date as
        Last-Modified; downloads never turn into a page in the view's
        origin (sandboxed, no sniffing).
        """
        root = makeTree(self, FILES)
        url = await serveWeb(self, reactor, root)
        response, body = await fetch(reactor, url + "/big.bin")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, BIG)
        self.assertEqual(response.length, len(BIG))
        self.assertEqual(header(response, "etag"), '"{}"'.format(hashlib.sha1(BIG).hexdigest()))
        self.assertEqual(header(response, "accept-ranges"), "bytes")
        mtime = int(os.stat(os.path.join(root, "big.bin")).st_mtime)
        self.assertEqual(header(response, "last-modified"), http.datetimeToString(mtime).decode())
        self.assertEqual(header(response, "content-security-policy"), "sandbox")
        self.assertEqual(header(response, "x-content-type-options"), "nosniff")

    async def test_etagIsTheCachedDigest(self) -> None:
        """
        The ETag comes from the storage's digest cache: after the first
        request it is there, and the protocol's C{hash} answers from it.
        """
        root = makeTree(self, FILES)
        storage = FilesystemStorage(root)
        url = await serveWeb(self, reactor, storage)
        await fetch(reactor, url + "/notes.txt", b"HEAD")
        f, _ = storage.openForRead(b"notes.txt")
        self.addCleanup(f.close)
        self.assertEqual(storage.cachedDigest(f), hashlib.sha1(b"hello\n").hexdigest())

    async def test_ranges(self) -> None:
        url = await serveWeb(self, reactor, makeTree(self, FILES))
        response, body = await fetch(reactor, url + "/big.bin", headers={"Range": "bytes=1000-1999"})
        self.assertEqual(response.code, 206)
        self.assertEqual(body, BIG[1000:2000])
        self.assertEqual(header(response, "content-range"), "bytes 1000-1999/{}".format(len(BIG)))
        self.assertEqual(response.length, 1000)
        response, body = await fetch(reactor, url + "/big.bin", headers={"Range": "bytes=-10"})
        self.assertEqual((response.code, body), (206, BIG[-10:]))
        response, body = await fetch(reactor, url + "/big.bin", headers={"Range": "bytes=300000-"})
        self.assertEqual((response.code, body), (206, BIG[300000:]))
        response, body = await fetch(reactor, url + "/big.bin", headers={"Range": "bytes={}-".format(len(BIG))})
        self.assertEqual(response.code, 416)
        self.assertEqual(header(response, "content-range"), "bytes */{}".format(len(BIG)))

    async def test_ifRange(self) -> None:
        """
        A range applies only to the file the client has the start of: a
        stale ETag or date gets the whole file.
        """
        url = await serveWeb(self, reactor, makeTree(self, FILES))
        response, _ = await fetch(reactor, url + "/big.bin", b"HEAD")
        etag, date = header(response, "etag"), header(response, "last-modified")
        for condition, code in [(etag, 206), (date, 206), ('"0000"', 200), ("Mon, 01 Jan 2001 00:00:00 GMT", 200)]:
            response, body = await fetch(reactor, url + "/big.bin", headers={"Range": "bytes=10-", "If-Range": condition})
            self.assertEqual(response.code, code, condition)
            self.assertEqual(body, BIG[10:] if code == 206 else BIG)

    async def test_notModified(self) -> None:
        url = await serveWeb(self, reactor, makeTree(self, FILES))
        response, _ = await fetch(reactor, url + "/notes.txt", b"HEAD")
        etag, date = header(response, "etag"), header(response, "last-modified")
        for headers, code in [
            ({"If-None-Match": etag}, 304),
            ({"If-None-Match": 'W/"abc", ' + etag}, 304),
            ({"If-None-Match": '"abc"'}, 200),
            ({"If-Modified-Since": date}, 304),
            ({"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200),
        ]:
            response, body = await fetch(reactor, url + "/notes.txt", headers=headers)
            self.assertEqual(response.code, code, headers)
            self.assertEqual(body, b"" if code == 304 else b"hello\n")

    async def test_onlyReading(self) -> None:
        """
        The view is read-only: any method but GET and HEAD gets 405 and
        changes nothing.
        """
        root = makeTree(self, FILES)
        url = await serveWeb(self, reactor, root)
        for method in (b"PUT", b"DELETE", b"POST"):
            response, _ = await fetch(reactor, url + "/notes.txt", method)
            self.assertEqual(response.code, http.NOT_ALLOWED, method)
        with open(os.path.join(root, "notes.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello\n")

    async def test_head(self) -> None:
        url = await serveWeb(self, reactor, makeTree(self, FILES))
        response, body = await fetch(reactor, url + "/big.bin", b"HEAD")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(header(response, "etag"), '"{}"'.format(hashlib.sha1(BIG).hexdigest()))

    async def test_clientLeavesMidBody(self) -> None:
        """
        A client that goes away mid-download leaves the server serving
        others; the producer stops and closes the file.
        """
        from twisted.internet.protocol import ClientCreator, Protocol

        url = await serveWeb(self, reactor, makeTree(self, {"huge.bin": os.urandom(8 << 20), "a.txt": b"a"}))
        port = int(url.rsplit(":", 1)[1])
        received = []

        class Quitter(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)
                self.transport.loseConnection()

        client = await ClientCreator(reactor, Quitter).connectTCP("127.0.0.1", port)
        client.transport.write(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        from tests.support import waitUntil

        self.assertTrue(await waitUntil(reactor, lambda: received and not client.transport.connected))
        response, body = await fetch(reactor, url + "/a.txt")
        self.assertEqual(body, b"a")


    async def test_noEtagForAFileJustChanged(self) -> None:
        """
        A file changed too recently for the digest cache to trust a digest
        of it (L{ftx.server.digests.SETTLED_NS}) is served without an ETag,
        never with one that may not be its content's.
        """
        root = makeTree(self, FILES)
        url = await serveWeb(self, reactor, root)
        with open(os.path.join(root, "notes.txt"), "wb") as f:
            f.write(b"fresh\n")
        response, body = await fetch(reactor, url + "/notes.txt")
        self.assertEqual((response.code, body), (200, b"fresh\n"))
        self.assertIsNone(header(response, "etag"))
        self.assertIsNotNone(header(response, "last-modified"))


class ConfinementTests(TestCase):
    async def test_noWayOut(self) -> None:
        """
        C{..} plain or encoded, encoded slashes, NUL and partial-upload
        names are refused; a link leading outside the root is not served.
        """
        outside = makeTree(self, {"secret.txt": b"TOPSECRET"})
        root = makeTree(self, FILES)
        os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "link.txt"))
        os.symlink(outside, os.path.join(root, "linkdir"))
        with open(os.path.join(root, ".notes.txt.ftx-partial"), "wb") as f:
            f.write(b"PARTIAL")
        url = await serveWeb(self, reactor, root)
        for path in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/sub%2F..%2F..%2Fsecret.txt",
            "/sub%2fdeep/inner.txt",
            "/notes.txt%00",
            "/link.txt",
            "/linkdir/secret.txt",
            "/linkdir/",
            "/.notes.txt.ftx-partial",
            "/%2Fetc%2Fpasswd",
        ]:
            response, body = await fetch(reactor, url + path)
            self.assertIn(response.code, (403, 404), path)
            self.assertNotIn(b"TOPSECRET", body, path)
            self.assertNotIn(b"PARTIAL", body, path)
        response, page = await fetch(reactor, url + "/")
        self.assertNotIn(b"link", page)


def _accounts(root: str, anonymous=None, addressLimit: int = 10) -> AccessControl:
    storage = FilesystemStorage(root)
    rules = AccessRules.parse("alice r home=alice\nbob none\ncarol rwd\n")
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"wonder", bob=b"builder", carol=b"c")
    return AccessControl(
        storage, rules, [checker], anonymous, reactor=reactor, loginDelay=0, maxAddressFailures=addressLimit
    )


def _basic(user: str, password: str) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode("{}:{}".format(user, password).encode()).decode()}


class AccountTests(TestCase):
    async def test_loginRequired(self) -> None:
        """
        With accounts and no anonymous reading, a request without
        credentials, or with wrong ones, gets 401 and a Basic challenge.
        """
        root = makeTree(self, FILES)
        access = _accounts(root)
        url = await serveWeb(self, reactor, access.realm.root, access)
        response, _ = await fetch(reactor, url + "/")
        self.assertEqual(response.code, 401)
        self.assertEqual(header(response, "www-authenticate"), 'basic realm="ftx"')
        response, _ = await fetch(reactor, url + "/", headers=_basic("alice", "nope"))
        self.assertEqual(response.code, 401)

    async def test_rightsAndHomes(self) -> None:
        """
        Each account sees what the protocol shows it: alice her home
        folder only, bob (no rights) nothing, carol the whole root.
        """
        root = makeTree(self, FILES)
        access = _accounts(root)
        url = await serveWeb(self, reactor, access.realm.root, access)
        response, page = await fetch(reactor, url + "/", headers=_basic("alice", "wonder"))
        self.assertEqual(response.code, 200)
        self.assertIn(b'href="/mine.txt"', page)
        self.assertNotIn(b"notes.txt", page)
        response, body = await fetch(reactor, url + "/mine.txt", headers=_basic("alice", "wonder"))
        self.assertEqual(body, b"alice's\n")
        response, _ = await fetch(reactor, url + "/../notes.txt", headers=_basic("alice", "wonder"))
        self.assertEqual(response.code, 403)
        response, _ = await fetch(reactor, url + "/", headers=_basic("bob", "builder"))
        self.assertEqual(response.code, 403)
        response, body = await fetch(reactor, url + "/notes.txt", headers=_basic("carol", "c"))
        self.assertEqual((response.code, body), (200, b"hello\n"))

    async def test_anonymousReading(self) -> None:
        root = makeTree(self, FILES)
        access = _accounts(root, anonymous=Permissions("r"))
        url = await serveWeb(self, reactor, access.realm.root, access)
        response, body = await fetch(reactor, url + "/notes.txt")
        self.assertEqual((response.code, body), (200, b"hello\n"))
        response, page = await fetch(reactor, url + "/", headers=_basic("alice", "wonder"))
        self.assertIn(b"mine.txt", page)
        self.assertNotIn(b"notes.txt", page)

    async def test_noAccountsNoReading(self) -> None:
        """
        Without accounts and with anonymous clients limited to writing,
        the view serves nobody.
        """
        root = makeTree(self, FILES)
        storage = FilesystemStorage(root)
        url = await serveWeb(self, reactor, storage, AccessControl(storage, anonymous=Permissions("w"), reactor=reactor))
        response, body = await fetch(reactor, url + "/notes.txt")
        self.assertEqual(response.code, 403)
        self.assertNotIn(b"hello", body)

    async def test_failedLoginsThrottled(self) -> None:
        """
        Failed web logins count in the protocol's per-address throttle:
        past the limit even the right password is refused for a while.
        """
        root = makeTree(self, FILES)
        access = _accounts(root, addressLimit=2)
        url = await serveWeb(self, reactor, access.realm.root, access)
        for _ in range(2):
            response, _ = await fetch(reactor, url + "/", headers=_basic("carol", "wrong"))
            self.assertEqual(response.code, 401)
        response, _ = await fetch(reactor, url + "/", headers=_basic("carol", "c"))
        self.assertEqual(response.code, 401)
        self.assertTrue(access.throttle.blocked("127.0.0.1"))
