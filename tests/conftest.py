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
