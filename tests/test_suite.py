"""
pytest and trial run the same tests: README.rst's test command runs the
suite once, under pytest, and ``python -m twisted.trial tests`` must not
run a smaller suite (a pytest-style function test is invisible to trial).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

WORKTREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TRIAL_LINE = re.compile(r"^(\S+) \.\.\. \[")


def pytestIds(output: str) -> set:
    """
    The tests in the output of C{pytest --collect-only -q}, as
    C{module.Class.method} ids (C{module.function[case]} for pytest-style
    tests, which trial cannot see).
    """
    ids = set()
    for line in output.splitlines():
        if "::" in line:
            path, *names = line.strip().split("::")
            ids.add(".".join([path[: -len(".py")].replace("/", ".")] + names))
    return ids


def trialIds(output: str) -> set:
    """
    The tests in the output of C{trial --dry-run --reporter=bwverbose}.
    """
    return {match.group(1) for match in map(_TRIAL_LINE.match, output.splitlines()) if match}


class SameSuiteTests(SynchronousTestCase):
    def test_pytestAndTrialRunTheSameTests(self) -> None:
        temporary = tempfile.mkdtemp(prefix="ftx-suite-")
        self.addCleanup(shutil.rmtree, temporary, True)
        commands = {
            "pytest": [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
            "trial": [sys.executable, "-m", "twisted.trial", "--dry-run", "--reporter=bwverbose",
                      "--temp-directory", os.path.join(temporary, "trial"), "tests"],
        }
        # Both at once: each mostly imports the whole suite.
        running = {
            name: subprocess.Popen(command, cwd=WORKTREE, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for name, command in commands.items()
        }
        outputs = {}
        for name, process in running.items():
            try:
                output, _ = process.communicate(timeout=120)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
            outputs[name] = output.decode("utf-8", "replace")
            self.assertEqual(process.returncode, 0, "{} failed to list the tests:\n{}".format(name, outputs[name]))
        underPytest, underTrial = pytestIds(outputs["pytest"]), trialIds(outputs["trial"])
        self.assertIn("tests.test_suite.SameSuiteTests.test_pytestAndTrialRunTheSameTests", underPytest)
        self.assertIn("tests.test_suite.SameSuiteTests.test_pytestAndTrialRunTheSameTests", underTrial)
        onlyPytest, onlyTrial = sorted(underPytest - underTrial), sorted(underTrial - underPytest)
        if onlyPytest or onlyTrial:
            self.fail("pytest sees {} tests, trial {}.\nOnly under pytest:{}\nOnly under trial:{}".format(
                len(underPytest), len(underTrial),
                "".join("\n  " + name for name in onlyPytest) or " none",
                "".join("\n  " + name for name in onlyTrial) or " none"))
