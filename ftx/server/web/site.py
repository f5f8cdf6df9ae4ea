"""
L{webSite}: the whole web view for an L{ftx.server.accounts.AccessControl}.
"""

from __future__ import annotations

from twisted.web.server import Site

from ftx.server.web.auth import guarded
from ftx.server.web.rates import WebRates
from ftx.server.web.resource import Forbidden, StorageView

__all__ = ["webSite"]


def _readable(account) -> bool:
    return account is not None and account.permissions.allows("read")


def webSite(access, root, reactor, rates=None) -> Site:
    """
    The read-only site of C{root} (an L{ftx.server.storage.IStorage}): each
    account sees its own storage (its home folder, or the root) if it has
    the read right, and gets 403 if not. With accounts (C{access.portal}),
    browsers log in with HTTP Basic; without, everyone is the anonymous
    account.

    @param rates: the server's L{ftx.server.ratelimit.ServerRates}
        (C{FtxServerFactory.rates}): downloads obey its per-connection limit
        per HTTP connection, share its total with the protocol's
        connections, and each account's C{rate=}. L{None}: no limits.
    """
    webRates = WebRates(rates)

    def makeView(account):
        if not _readable(account):
            return Forbidden("anonymous clients" if account is None else "the account {}".format(account.name))
        return StorageView(
            account.storage or root, reactor, account.name, lambda request: webRates.throttleFor(request, account)
        )

    if access.portal is None:
        resource = makeView(access.anonymous)
    else:
        resource = guarded(access, makeView, reactor, _readable)
    site = Site(resource)
    site.displayTracebacks = False
    return site
