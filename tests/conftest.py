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


def pytest_unconfigure(config):
    """
    Stop ftx's worker pools on the global reactor. trial's own runner shuts
    the reactor down at the end, which stops them; pytest never does, and
    their threads would keep the process from exiting.
    """
    import sys

    if "ftx._io.workers" in sys.modules and "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        from ftx._io import workers

        workers.stopPools(reactor)
