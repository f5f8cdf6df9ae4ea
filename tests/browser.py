"""
A real browser for the web view's tests: Debian's C{chromium}, driven by
Playwright for Python (its own browsers are never downloaded: Playwright
is pointed at the system one). Also makes the screenshot in the docs:

    .venv/bin/python -m tests.browser docs/web-view.png

which serves a small demo tree with a real C{twistd ftx --http-port} and
asks headless Chromium for a picture of the listing page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

#: Where Debian puts it (C{apt-get install -y chromium}); C{FTX_CHROMIUM}
#: names another.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromiumPath() -> Optional[str]:
    """
    The Chromium executable, or L{None} when there is none.
    """
    chosen = os.environ.get("FTX_CHROMIUM")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def unavailable() -> Optional[str]:
    """
    Why the browser tests cannot run here, or L{None} when they can.
    """
    if chromiumPath() is None:
        return "no Chromium: apt-get update && apt-get install -y chromium (or set FTX_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no Playwright for Python: pip install -e '.[test]'"
    return None


def launch(playwright):
    """
    Headless Chromium from the system, through C{playwright}
    (a C{sync_playwright()} context).
    """
    return playwright.chromium.launch(executable_path=chromiumPath(), headless=True)


def screenshot(url: str, path: str, width: int = 900, height: int = 360) -> None:
    """
    Save what headless Chromium shows at C{url} as a PNG, with Chromium's
    own C{--screenshot} (no driver in between).
    """
    subprocess.run(
        [
            chromiumPath(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size={},{}".format(width, height),
            "--screenshot={}".format(os.path.abspath(path)),
            url,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


DEMO = {
    "README.txt": b"Files shared with the team.\n",
    "reports/2026-q3.pdf": os.urandom(184_320),
    "reports/2026-q4.pdf": os.urandom(201_113),
    "photos/harbour.jpg": os.urandom(2_411_724),
    "photos/night/lights.jpg": os.urandom(1_806_003),
    "release-1.4.2.tar.gz": os.urandom(9_437_184 + 512),
    "notes <draft> & ideas.md": b"# ideas\n",
    "café-menu.txt": b"espresso\n",
}


def main(argv) -> int:
    from tests.support import ServerProcess
    from tests.test_web_twistd import webPort

    target = argv[1] if len(argv) > 1 else "docs/web-view.png"
    folder = tempfile.mkdtemp(prefix="ftx-shot-")
    root = os.path.join(folder, "root")
    try:
        for name, data in DEMO.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        with ServerProcess(root, "--http-port", "tcp:0:interface=127.0.0.1") as server:
            screenshot("http://127.0.0.1:{}/".format(webPort(server)), target)
    finally:
        shutil.rmtree(folder, True)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
