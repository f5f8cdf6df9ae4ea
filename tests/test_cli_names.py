"""
How the command line reads a name typed as a folder (issue 13 item 5):
C{photos/}, C{photos/.}, C{./photos} and C{.}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli.remotefiles import escapeMask, folderForm


class FolderFormTests(SynchronousTestCase):
    def test_folderForms(self) -> None:
        for text, expected in [
            ("photos", ("photos", False)),
            ("photos/", ("photos", True)),
            ("photos//", ("photos", True)),
            ("photos/.", ("photos", True)),
            ("photos/./", ("photos", True)),
            ("./photos", ("photos", False)),
            ("./photos/a.jpg", ("photos/a.jpg", False)),
            (".", ("", True)),
            ("./", ("", True)),
            ("photos/*.jpg", ("photos/*.jpg", False)),
            (".profile", (".profile", False)),
        ]:
            self.assertEqual(folderForm(text), expected, text)

    def test_escapeMask(self) -> None:
        self.assertEqual(escapeMask("a*b?[c].txt"), "a[*]b[?][[]c].txt")
