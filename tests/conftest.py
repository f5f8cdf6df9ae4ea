import pytest

from tests.support import ServerProcess


@pytest.fixture
def served(tmp_path):
    """
    A ``twistd ftx`` subprocess serving C{tmp_path / "root"}, and an empty
    local folder C{tmp_path / "local"} for the client side.
    """
    root = tmp_path / "root"
    local = tmp_path / "local"
    root.mkdir()
    local.mkdir()
    server = ServerProcess(str(root))
    try:
        yield server, root, local
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter):
    """
    Print what the reliability suites tried and what went wrong (escape
    attempts, malformed inputs, faults, clients, memory), whether or not
    output capture is on.
    """
    from tests.reliability import figureLines

    lines = figureLines()
    if lines:
        terminalreporter.section("ftx reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items):
    """
    Run trial TestCases that spin the reactor before pytest-twisted tests:
    once pytest-twisted has started the reactor in its greenlet, trial's
    TestCase can no longer run it (ReactorAlreadyRunning). Needed only
    while both kinds remain in the suite.
    """
    from twisted.trial.unittest import TestCase

    def spinsReactor(item) -> bool:
        cls = getattr(item, "cls", None)
        return cls is not None and issubclass(cls, TestCase)

    items.sort(key=lambda item: not spinsReactor(item))
