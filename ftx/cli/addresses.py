"""
What C{--server} and C{-p/--port} mean: the address forms people bring
from other tools, turned into the one form L{ftx.client.connect} takes.

Accepted:
  - C{[ftx://|ftxs://][USER@]HOST[:PORT][/FOLDER]}: C{ftxs://} asks for
    TLS, C{USER} means C{--user}, C{FOLDER} is the remote folder to start
    in; the port defaults to L{DEFAULT_PORT};
  - C{HOST:PORT}, C{[IPV6]:PORT}, a bare C{HOST} or a bare port;
  - a Twisted client endpoint string (C{tcp:...}, C{ssl:...}, C{tls:...},
    C{unix:path=...}), passed on as it is.
Leading and trailing blanks are ignored. Anything else is a
L{UsageError} with one line saying what was expected.

URLs are taken apart by C{urllib.parse} and hosts checked by
C{ipaddress} and the DNS name rules, so nothing here imports Twisted.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import NamedTuple, Optional

from ftx._io.endpoints import TCP_KINDS, TLS_KINDS, parseAddress
from ftx.cli.status import UsageError

__all__ = ["DEFAULT_PORT", "ServerAddress", "parseServerOption"]

DEFAULT_PORT = 1234
_SCHEMES = {"ftx": False, "ftxs": True}
#: Endpoint types passed to Twisted as they are.
_ENDPOINT_KINDS = TCP_KINDS + TLS_KINDS + ("unix",)
#: One label of a DNS name (letters, digits, hyphens; not at either end).
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_EXPECTED = "expected HOST[:PORT], [USER@]HOST[:PORT], ftx://[USER@]HOST[:PORT][/FOLDER] or an endpoint string"


class ServerAddress(NamedTuple):
    """
    A C{--server} value understood.

    @ivar address: what L{ftx.client.connect} takes (C{HOST:PORT},
        C{[IPV6]:PORT} or an endpoint string).
    @ivar user: the user named in the address, or L{None}.
    @ivar tls: whether the address asks for TLS (C{ftxs://}, C{ssl:}, C{tls:}).
    @ivar folder: the remote folder named after the host (C{""} for none).
    @ivar host: the host name, for C{~/.netrc}; C{""} for a Unix socket.
    """

    address: str
    user: Optional[str]
    tls: bool
    folder: str
    host: str


def _checkHost(host: str, original: str) -> str:
    if not host:
        raise UsageError("bad --server address {!r}: no host ({})".format(original, _EXPECTED))
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UsageError("bad --server address {!r}: {!r} is not a host name ({})".format(original, host, _EXPECTED))
    return host


def _hostPort(host: str, port: int) -> str:
    return "[{}]:{}".format(host, port) if ":" in host else "{}:{}".format(host, port)


def _isEndpointString(text: str) -> bool:
    kind, colon, rest = text.partition(":")
    if not colon:
        return False
    return kind.lower() in _ENDPOINT_KINDS or ("=" in rest and kind.isalpha() and "@" not in text)


def parseServerOption(text: str, port: Optional[int] = None) -> ServerAddress:
    """
    Understand a C{--server} value (and C{-p/--port}, which replaces the
    address's port, or gives one to a bare host).

    @raise UsageError: the address is not one of the accepted forms.
    """
    original = text
    text = text.strip()
    if not text:
        raise UsageError("empty --server address ({})".format(_EXPECTED))
    if any(c.isspace() for c in text) or not text.isprintable():
        raise UsageError("bad --server address {!r}: blanks or control characters inside ({})".format(original, _EXPECTED))
    if "://" not in text and _isEndpointString(text):
        return _endpointString(text, original, port)
    if text.isascii() and text.isdigit():
        text = "localhost:" + text
    if "://" not in text and "[" not in text and text.count(":") > 1:
        raise UsageError("bad --server address {!r}: write an IPv6 address in brackets, [ADDRESS]:PORT".format(original))
    url = text if "://" in text else "ftx://" + text
    try:
        parts = urllib.parse.urlsplit(url)
        urlPort = parts.port
    except ValueError as e:
        raise UsageError("bad --server address {!r}: {} ({})".format(original, e, _EXPECTED))
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise UsageError("bad --server address {!r}: unknown scheme {}:// (use ftx:// or ftxs://)".format(original, scheme))
    if parts.query or parts.fragment or parts.password is not None:
        raise UsageError(
            "bad --server address {!r}: no '?', '#' or password in it (use --password-file or ~/.netrc)".format(original)
        )
    host = _checkHost(parts.hostname or "", original)
    chosen = port if port is not None else urlPort if urlPort is not None else DEFAULT_PORT
    if not 0 < chosen < 65536:
        raise UsageError("bad --server address {!r}: port {} is out of range".format(original, chosen))
    user = urllib.parse.unquote(parts.username) if parts.username else None
    folder = urllib.parse.unquote(parts.path).strip("/")
    return ServerAddress(_hostPort(host, chosen), user, _SCHEMES[scheme], folder, host)


def _endpointString(text: str, original: str, port: Optional[int]) -> ServerAddress:
    try:
        parsed = parseAddress(text)
    except ValueError as e:
        raise UsageError("bad --server address: {}".format(e))
    if port is not None:
        if parsed.kind not in TCP_KINDS or parsed.params:
            raise UsageError("-p/--port cannot change the port of {!r}: write it in the address".format(original))
        text = _hostPort(parsed.host, port)
    return ServerAddress(text, None, parsed.isTLS, "", parsed.host)
