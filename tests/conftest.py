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



#: The trial reactor tests collected in this session.
_reactorCases: list = []


def _isReactorCase(item) -> bool:
    from twisted.trial.unittest import TestCase

    cls = getattr(item, "cls", None)
    return cls is not None and issubclass(cls, TestCase)


def pytest_collection_modifyitems(session, items):
    """
    Run trial's reactor C{TestCase}s before the pytest-twisted functions.
    pytest-twisted leaves the reactor running in a greenlet after its
    first test, and trial cannot start it again from outside; the other
    way round works. The order is otherwise kept. Not needed once no
    pytest-twisted test is left.
    """
    items.sort(key=lambda item: not _isReactorCase(item))
    _reactorCases[:] = [item for item in items if _isReactorCase(item)]


def pytest_sessionfinish(session):
    """
    Trial only crashes the reactor between tests, so its shutdown never
    comes and the worker threads it stops (ftx._io.workers) would keep
    the process alive. Fire it unless pytest-twisted still runs the
    reactor (and shuts it down itself).
    """
    from twisted.internet import reactor

    if _reactorCases and not reactor.running:
        reactor.fireSystemEvent("shutdown")
