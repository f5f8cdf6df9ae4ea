"""
L{ftx.cli.mirrorlisted.planAsListed}, the plan of a download mirror that
deletes nothing, made as the listing arrives: the same plan as the walk of
the local tree and L{ftx.cli.mirrorplan.planMirror} make, on a tree with
every kind of difference (links, folders in the way, partial downloads,
odd names, masks, a folder mirrored alone).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from ftx.cli.mirrorlisted import planAsListed
from ftx.cli.mirrorplan import EXCLUDE, Filters, planMirror, scanTree
from ftx.client.results import Entry
from tests.support import temporaryFolder

MTIME = 1_600_000_000


def _write(path: str, data: bytes, mtime: int = MTIME) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


class PlanAsListedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.top = temporaryFolder(self)
        outside = temporaryFolder(self)
        _write(os.path.join(outside, "same.txt"), b"12345")
        t = lambda *parts: os.path.join(self.top, *parts)  # noqa: E731
        _write(t("same.txt"), b"12345")
        _write(t("a", "same.txt"), b"12345")
        _write(t("a", "longer.txt"), b"1234")
        _write(t("a", "older.txt"), b"12345", MTIME - 1)
        _write(t("a", "b", "deep.txt"), b"12345")
        _write(t("a", ".partial-small.ftx-partial"), b"12")
        _write(t("a", ".partial-big.ftx-partial"), b"1234567")
        _write(t("a", "partial-big"), b"x")
        os.makedirs(t("folder-here"))
        _write(t("file-here"), b"12345")
        os.symlink("same.txt", t("link.txt"))
        os.symlink(outside, t("linkdir"))
        _write(t("skip", "x.tmp"), b"12345")
        self.listing = [Entry(name, size, MTIME) for name, size in [
            ("a/b/deep.txt", 5), ("a/b/new.txt", 5), ("a/longer.txt", 5), ("a/older.txt", 5),
            ("a/partial-big", 5), ("a/partial-small", 5), ("a/same.txt", 5), ("a/../same.txt", 5),
            ("file-here/inside.txt", 5), ("folder-here", 5), ("link.txt", 5), ("linkdir/same.txt", 5),
            ("missing/one.txt", 5), ("same.txt", 5), ("skip/x.tmp", 5),
        ]]

    def walked(self, folder: str, filters: Filters):
        """
        The plan the walk makes, as L{ftx.cli.mirror._download} asks it.
        """
        prefix = folder + "/" if folder else ""
        remote = {e.name[len(prefix):]: e for e in self.listing if e.name.startswith(prefix)}
        tree = scanTree(self.top)

        def same(name):
            mine, entry = tree.files[name], remote[name]
            return not mine.link and mine.size == entry.size and mine.mtime == entry.mtime

        def verb(name):
            partial = tree.partials.get(name)
            if partial is not None and os.path.getsize(partial) <= remote[name].size:
                return "continue"
            return "get"

        return planMirror(remote, tree.files, filters, same, verb, False, tree.folders, list(tree.partials))

    def assertSamePlan(self, folder: str, filters: Filters, batches) -> None:
        listed = planAsListed(self.top, folder, filters, batches)
        walked = self.walked(folder, filters)
        self.assertEqual(listed.transfers, walked.transfers)
        self.assertEqual((listed.unchanged, listed.excluded, listed.deletions),
                         (walked.unchanged, walked.excluded, []))

    def test_sameAsTheWalk(self) -> None:
        for filters in (Filters([]), Filters([(EXCLUDE, "*.tmp")])):
            # In one batch, and a file at a time.
            self.assertSamePlan("", filters, [self.listing])
            self.assertSamePlan("", filters, [[entry] for entry in self.listing])
        plan = planAsListed(self.top, "", Filters([]), [self.listing])
        self.assertEqual([(a.verb, a.name) for a in plan.transfers], [
            ("get", "a/../same.txt"), ("get", "a/b/new.txt"), ("get", "a/longer.txt"), ("get", "a/older.txt"),
            ("get", "a/partial-big"), ("continue", "a/partial-small"), ("get", "file-here/inside.txt"),
            ("get", "folder-here"), ("get", "link.txt"), ("get", "linkdir/same.txt"), ("get", "missing/one.txt"),
        ])
        self.assertEqual(plan.unchanged, 4)

    def test_aFolderAlone(self) -> None:
        """
        Mirroring the server's C{a}: names under it, relative to it; the
        others are left to the caller (which reports them).
        """
        self.listing = [Entry("a/" + e.name, e.size, e.mtime) for e in self.listing] + [Entry("b/elsewhere", 1, 1)]
        self.assertSamePlan("a", Filters([]), [self.listing[:5], self.listing[5:]])

    def test_noLocalFolder(self) -> None:
        plan = planAsListed(os.path.join(self.top, "nothing-here"), "", Filters([]), [self.listing])
        self.assertEqual(len(plan.transfers), len(self.listing))
        self.assertEqual({a.verb for a in plan.transfers}, {"get"})
