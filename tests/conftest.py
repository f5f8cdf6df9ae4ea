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


def pytest_sessionfinish(session):
    """
    Shut the global reactor down at the end, as trial's own runner does.
    Trial's TestCase only crashes the reactor between tests, so under
    pytest its shutdown never comes, and the threads it would stop (the
    reactor's pool, ftx's worker pools in L{ftx._io.workers}) would keep the
    process from exiting.
    """
    import sys

    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if not reactor.running:
            reactor.fireSystemEvent("shutdown")
