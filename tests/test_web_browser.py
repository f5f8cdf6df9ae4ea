"""
The web view in a real browser: Debian's Chromium, headless, driven by
Playwright, against a real C{twistd ftx --http-port}. The listing's links
are there, folders open by clicking, a click on a file downloads its exact
bytes, a hostile name stays text, and accounts log in with Basic.

Needs C{chromium} (C{apt-get update && apt-get install -y chromium}; .ci/run
does it) and Playwright for Python (in the C{test} extra). Without them
these tests are skipped with the reason, in capitals, on every run.
"""

from __future__ import annotations

import atexit
import os
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import browser
from tests.support import temporaryFolder
from tests.test_web_twistd import startWeb

REPORT = os.urandom(300_000)
FILES = {
    "report.bin": REPORT,
    "docs/guide.txt": b"read me\n",
    "<img src=x onerror=alert(1)>.txt": b"evil",
}


def _skipUnlessBrowser() -> None:
    reason = browser.unavailable()
    if reason is not None:
        message = "BROWSER TESTS SKIPPED: " + reason
        sys.stderr.write("\n" + message + "\n")
        raise SkipTest(message)


_shared: dict = {}


def _sharedBrowser():
    """
    One driver and one browser for the module, started on first use and
    closed at exit: starting them takes seconds, and trial has no
    C{setUpClass}. Each test gets its own context (cookies, credentials).
    """
    if "browser" not in _shared:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        try:
            _shared["browser"] = browser.launch(playwright)
        except BaseException:
            playwright.stop()
            raise
        _shared["playwright"] = playwright
        atexit.register(_closeShared)
    return _shared["browser"]


def _closeShared() -> None:
    _shared.pop("browser").close()
    _shared.pop("playwright").stop()


class BrowserTests(SynchronousTestCase):
    def setUp(self) -> None:
        _skipUnlessBrowser()
        self.browser = _sharedBrowser()
        folder = temporaryFolder(self, "ftx-browser-")
        self.root = os.path.join(folder, "root")
        for name, data in FILES.items():
            path = os.path.join(self.root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

    def _page(self, **contextOptions):
        context = self.browser.new_context(accept_downloads=True, **contextOptions)
        self.addCleanup(context.close)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    def test_linksAndClickDownloads(self) -> None:
        """
        The page lists a link per entry; clicking a folder opens it,
        clicking a file downloads the same bytes the server holds.
        """
        _, port = startWeb(self, self.root)
        base = "http://127.0.0.1:{}".format(port)
        page = self._page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        response = page.goto(base + "/")
        self.assertEqual(response.status, 200)
        links = page.eval_on_selector_all("td.name a", "links => links.map(a => [a.textContent, a.getAttribute('href')])")
        self.assertEqual(
            links,
            [
                ["docs/", "/docs/"],
                ["<img src=x onerror=alert(1)>.txt", "/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt"],
                ["report.bin", "/report.bin"],
            ],
        )
        self.assertEqual(page.locator("img").count(), 0)
        self.assertEqual(dialogs, [])

        with page.expect_download() as info:
            page.get_by_role("link", name="report.bin").click()
        download = info.value
        self.assertEqual(download.suggested_filename, "report.bin")
        with open(download.path(), "rb") as f:
            self.assertEqual(f.read(), REPORT)

        page.get_by_role("link", name="docs/").click()
        page.wait_for_url(base + "/docs/")
        self.assertEqual(page.locator("td.name a").last.get_attribute("href"), "/docs/guide.txt")
        page.get_by_role("link", name="../").click()
        page.wait_for_url(base + "/")

    def test_basicLogin(self) -> None:
        """
        With accounts, the browser gets a challenge without credentials
        and the account's listing with them.
        """
        _, port = startWeb(self, self.root, "--auth", "memory:alice:wonder", "--anonymous", "none")
        url = "http://127.0.0.1:{}/".format(port)
        from playwright.sync_api import Error

        # A headless browser cannot show the password prompt: the
        # challenge surfaces as this navigation error.
        with self.assertRaises(Error) as refused:
            self._page().goto(url)
        self.assertIn("ERR_INVALID_AUTH_CREDENTIALS", str(refused.exception))
        page = self._page(http_credentials={"username": "alice", "password": "wonder"})
        self.assertEqual(page.goto(url).status, 200)
        self.assertIn("signed in as alice", page.locator("footer").inner_text())
