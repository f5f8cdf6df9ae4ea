"""
A read-only web view of the server's root: the same files, listed and
downloaded over HTTP with L{twisted.web}, through the same
L{ftx.server.storage.IStorage} and the same accounts as the ftx protocol.

L{ftx.server.web.site.webSite} builds the site for an
L{ftx.server.accounts.AccessControl}; L{ftx.server.web.service.WebService}
listens on an endpoint (C{twistd ftx --http-port ENDPOINT}).
"""

__all__ = ["webSite", "WebService"]


def __getattr__(name: str):
    # Loaded on first use, so that importing ftx.server does not pull in
    # twisted.web.
    if name == "webSite":
        from ftx.server.web.site import webSite

        return webSite
    if name == "WebService":
        from ftx.server.web.service import WebService

        return WebService
    raise AttributeError(name)
