"""
Modules Twisted imports on start-up that a short command never uses,
loaded on first use instead.

Importing the reactor runs the code of some modules nothing in an C{ftx}
command touches: C{twisted.python.compat} keeps a deprecated alias of
C{http.cookiejar}, which brings in C{urllib.request}, C{http.client},
the C{email} package and more; the reactor imports its process, UNIX
socket and UDP support whether or not they are used. Measured with
C{python -X importtime} and py-spy, these were about a tenth of the CPU
time of a small command, all spent before the first byte is sent.

Each module named here is put in C{sys.modules} as a lazy module
(C{importlib.util.LazyLoader}): importing it by name costs nothing, and
its code runs the first time one of its attributes is used, so a program
that does use it gets the real module, only later. That holds only for a
module imported in the form C{from twisted.internet import process}: an
C{import ssl} statement reads the module's C{__spec__}, which loads it
(measured so: asyncio's C{import ssl} keeps C{ssl} out of this list).

Only whole programs may do this (the C{ftx} command), before Twisted is
imported: a library cannot know what else in its process wants these
modules soon, and a module loaded on first use in one thread while
another thread reads it could see it half-initialised. For the ones
below, only the reactor thread ever uses them (C{spawnProcess},
C{connectUNIX}, C{listenUDP}), or nothing does.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Iterable, List

__all__ = ["UNUSED_BY_COMMANDS", "deferImports", "isDeferred"]

#: What the reactor imports and an C{ftx} command runs without, and who
#: imports it.
UNUSED_BY_COMMANDS = (
    # twisted.python.compat's deprecated "cookielib"; with it urllib.request,
    # http.client, email.*, calendar, tempfile and more.
    "http.cookiejar",
    # twisted.internet.posixbase and _signals: spawnProcess and SIGCHLD.
    "twisted.internet.process",
    # twisted.internet.posixbase: connectUNIX and listenUNIX (an unix:
    # address loads it when it connects).
    "twisted.internet.unix",
    # twisted.internet.posixbase: listenUDP (ftx df --udp loads it).
    "twisted.internet.udp",
)


def deferImports(names: Iterable[str] = UNUSED_BY_COMMANDS) -> List[str]:
    """
    Make each module of C{names} load when first used rather than when
    imported. A module already imported, or not installed, is left as it
    is. Returns the names deferred.
    """
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            continue
        if name in sys.modules:
            # Finding it imported its package, which imported it.
            continue
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        parent, _, child = name.rpartition(".")
        if parent:
            # As an import does: the package's attribute is the submodule,
            # which is what "from package import child" finds.
            setattr(sys.modules[parent], child, module)
        deferred.append(name)
    return deferred


def isDeferred(module: object) -> bool:
    """
    Whether C{module} is a lazy module whose code has not run yet (an
    attribute read would run it; this does not).
    """
    return isinstance(module, _LAZY_MODULE)


#: The class of a lazy module until its code runs (a private name of
#: importlib, the same from Python 3.5 to 3.13); nothing is lazy without it.
_LAZY_MODULE = getattr(importlib.util, "_LazyModule", ())
