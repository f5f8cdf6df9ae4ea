"""
Helpers for the web view's tests (no tests here): the web site served
in-process on a real loopback port, and an HTTP client on the same reactor.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from ftx.server.accounts import AccessControl
from ftx.server.digests import SETTLED_NS
from ftx.server.filesystem import FilesystemStorage
from ftx.server.web import webSite
from tests.support import closeSocketsAfter, temporaryFolder


def makeTree(case, files: Dict[str, bytes]) -> str:
    """
    A fresh root folder holding C{files} (name -> bytes); names may hold
    folders.
    """
    root = os.path.join(temporaryFolder(case, "ftx-web-"), "root")
    os.mkdir(root)
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return root


async def serveWeb(case, reactor, storage, access: Optional[AccessControl] = None, rates=None) -> str:
    """
    The web view of C{storage} listening on 127.0.0.1, port 0, until the
    end of C{case}; returns its base URL (C{http://127.0.0.1:PORT}).
    C{rates}: the server's L{ftx.server.ratelimit.ServerRates}, if limited.
    """
    if isinstance(storage, str):
        storage = FilesystemStorage(storage)
    closeSocketsAfter(case, reactor)
    site = webSite(access or AccessControl(storage, reactor=reactor), storage, reactor, rates)
    # Files written just now are too fresh for the digest cache (so they
    # would get no ETag): wait out its margin once.
    await deferLater(reactor, SETTLED_NS / 1e9 + 0.01, lambda: None)
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
    case.addCleanup(port.stopListening)
    return "http://127.0.0.1:{}".format(port.getHost().port)


async def fetch(reactor, url: str, method: bytes = b"GET", headers: Optional[Dict[str, str]] = None) -> Tuple[object, bytes]:
    """
    One request on a fresh connection (closed after it): the response and
    its whole body.
    """
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    sent = Headers({k.encode("latin-1"): [v.encode("latin-1")] for k, v in (headers or {}).items()})
    response = await agent.request(method, url.encode("latin-1"), sent)
    body: Deferred = Deferred()
    response.deliverBody(_Collect(body))
    return response, await body


class _Collect(Protocol):
    """
    A whole response body. (L{twisted.web.client.readBody} warns about
    the HTTP/1.1 client's own transport, which cannot abort.)
    """

    def __init__(self, done: Deferred) -> None:
        self.done = done
        self.parts = []

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def header(response, name: str) -> Optional[str]:
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None
