"""
Listening at startup so that a supervisor can tell: a port the server
cannot have (taken, not allowed) ends its start with exit status 1 and one
line saying why, instead of a traceback in the log and a process that
looks, from outside, as if it served.
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

__all__ = ["listenOrExit", "cannotListen"]

_log = Logger()


def cannotListen(what: str, description: str, failure) -> str:
    """
    The one line that says C{what} (C{"ftx"}, C{"ftx web view"}) cannot
    listen on C{description}, and why.
    """
    error = failure.value
    reason = getattr(getattr(error, "socketError", None), "strerror", None) or str(error)
    return "{} cannot listen on {}: {}".format(what, description, reason)


def listenOrExit(endpoint, factory, what: str, description: str, listened: Callable, reactor) -> Deferred:
    """
    Listen on C{endpoint} with C{factory}; C{listened(port)} once it does.

    @raise SystemExit: with the line of L{cannotListen}, when the endpoint
        fails at once (TCP, TLS and Unix endpoints do): twistd then exits
        with status 1 and Python prints the line. An endpoint that fails
        later logs the line, stops the reactor and exits with status 1.
    """
    failures = []
    starting = True

    def failed(failure):
        if starting:
            failures.append(failure)
            return
        _log.critical("{line}", line=cannotListen(what, description, failure))
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        reactor.stop()

    d = endpoint.listen(factory)
    d.addCallbacks(listened, failed)
    starting = False
    if failures:
        raise SystemExit(cannotListen(what, description, failures[0]))
    return d
