"""
The mirror's plan without a server (L{ftx.cli.mirrorplan}): the order of
the include/exclude masks, what --delete removes, and the local walk that
never follows a link.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli.mirrorplan import EXCLUDE, INCLUDE, Filters, planMirror, scanTree
from ftx.client.results import Entry
from tests.support import temporaryFolder


def plan(source, target, filters=(), delete=False, folders=None, partials=(), same=lambda name: True):
    return planMirror({name: Entry(name, size, 0) for name, size in source.items()}, target, Filters(filters),
                      same, lambda name: "get", delete, folders, partials)


class FiltersTests(SynchronousTestCase):
    def test_firstMatchDecides(self) -> None:
        rules = Filters([(INCLUDE, "keep.tmp"), (EXCLUDE, "*.tmp")])
        self.assertTrue(rules.included("a/keep.tmp"))
        self.assertFalse(rules.included("a/other.tmp"))
        self.assertTrue(rules.included("a/other.txt"))
        reversed_ = Filters([(EXCLUDE, "*.tmp"), (INCLUDE, "keep.tmp")])
        self.assertFalse(reversed_.included("keep.tmp"))

    def test_anchoredAndFolderMasks(self) -> None:
        rules = Filters([(EXCLUDE, "build/cache"), (EXCLUDE, "logs/")])
        self.assertFalse(rules.included("build/cache/x.o"))
        self.assertTrue(rules.included("src/build/cache/x.o"))
        self.assertFalse(rules.included("deep/logs/today.txt"))
        # A file named like the folder mask is not a folder.
        self.assertTrue(rules.included("logs"))

    def test_wildcardsNeverCrossSlash(self) -> None:
        rules = Filters([(EXCLUDE, "a/*.jpg")])
        self.assertFalse(rules.included("a/x.jpg"))
        self.assertTrue(rules.included("a/b/x.jpg"))


class PlanTests(SynchronousTestCase):
    def test_onlyNewAndChanged(self) -> None:
        result = plan({"new": 1, "same": 2, "changed": 3}, {"same": 2, "changed": 3},
                      same=lambda name: name == "same")
        self.assertEqual([a.name for a in result.transfers], ["changed", "new"])
        self.assertEqual((result.unchanged, result.deletions), (1, []))

    def test_quickCheckInlineAsTheCall(self) -> None:
        """
        C{quickCheck}: the target's L{LocalFile}s compared inline (not a
        link, same size and time) give the plan the call would; with a
        mask, the call is used.
        """
        from ftx.cli.mirrorplan import LocalFile

        source = {name: Entry(name, size, mtime) for name, size, mtime in [
            ("same", 2, 7), ("older", 2, 6), ("longer", 3, 7), ("link", 2, 7), ("new", 1, 7), ("skip.tmp", 1, 7)]}
        target = {"same": LocalFile("p/same", 2, 7), "older": LocalFile("p/older", 2, 7),
                  "longer": LocalFile("p/longer", 2, 7), "link": LocalFile("p/link", 2, 7, True),
                  "gone": LocalFile("p/gone", 1, 1), "skip.tmp": LocalFile("p/skip.tmp", 1, 7)}

        def same(name):
            mine, entry = target[name], source[name]
            return not mine.link and mine.size == entry.size and mine.mtime == entry.mtime

        for filters in ([], [(EXCLUDE, "*.tmp")]):
            made = [planMirror(source, target, Filters(filters), same, lambda name: "get", True, [], [], quickCheck=quick)
                    for quick in (False, True)]
            self.assertEqual(made[0].transfers, made[1].transfers)
            self.assertEqual((made[0].unchanged, made[0].excluded, made[0].deletions),
                             (made[1].unchanged, made[1].excluded, made[1].deletions))
        self.assertEqual([a.name for a in made[1].transfers], ["link", "longer", "new", "older"])
        inline = planMirror(source, target, Filters([]), None, lambda name: "get", False, quickCheck=True)
        self.assertEqual(([a.name for a in inline.transfers], inline.unchanged),
                         (["link", "longer", "new", "older"], 2))

    def test_nothingDeletedWithoutTheFlag(self) -> None:
        result = plan({"a": 1}, {"a": 1, "b": 1, "d/c": 1}, folders=["d"])
        self.assertEqual(result.deletions, [])

    def test_localDeletionsDeepestFolderFirst(self) -> None:
        result = plan({"keep/a": 1}, {"keep/a": 1, "keep/old": 1, "x/y/z": 1, "tmp.log": 1},
                      filters=[(EXCLUDE, "*.log")], delete=True, folders=["keep", "x", "x/y"],
                      partials=["x/y/zz", "keep/a"])
        self.assertEqual([(a.verb, a.name) for a in result.deletions], [
            ("delete", "keep/old"), ("delete", "x/y/z"), ("delete", "x/y/.zz.ftx-partial"),
            ("rmdir", "x/y"), ("rmdir", "x"),
        ])

    def test_serverFolderGoesWhole(self) -> None:
        result = plan({"a/keep": 1}, {"a/keep": 1, "a/b/1": 1, "a/b/c/2": 1, "top": 1, "gone/x": 1}, delete=True)
        self.assertEqual([(a.verb, a.name) for a in result.deletions],
                         [("rmtree", "a/b"), ("rmtree", "gone"), ("delete", "top")])

    def test_excludedFolderKeptWhole(self) -> None:
        result = plan({}, {"cache/x": 1}, filters=[(EXCLUDE, "cache/")], delete=True, folders=["cache"])
        self.assertEqual(result.deletions, [])


class ScanTests(SynchronousTestCase):
    def test_linksListedNotFollowed(self) -> None:
        top = temporaryFolder(self)
        outside = temporaryFolder(self)
        with open(os.path.join(outside, "secret"), "wb") as f:
            f.write(b"s")
        os.mkdir(os.path.join(top, "d"))
        with open(os.path.join(top, "d", "f"), "wb") as f:
            f.write(b"abc")
        with open(os.path.join(top, "d", ".g.ftx-partial"), "wb") as f:
            f.write(b"ab")
        os.symlink(outside, os.path.join(top, "linked"))
        for withStat in (True, False):
            tree = scanTree(top, withStat)
            self.assertEqual(sorted(tree.files), ["d/f", "linked"])
            self.assertTrue(tree.files["linked"].link)
            self.assertFalse(tree.files["d/f"].link)
            self.assertEqual(tree.files["d/f"].size, 3 if withStat else -1)
            self.assertEqual(list(tree.partials), ["d/g"])
            self.assertEqual(tree.folders, ["d"])
