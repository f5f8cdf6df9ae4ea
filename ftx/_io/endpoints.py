"""
Addresses and endpoint strings taken apart, once, for every part of ftx
that needs a host, a port, an interface or the endpoint type out of one:
the client's endpoint, TLS, the UDP side channel on both ends, and the
server's listening options.

A client address is C{HOST:PORT}, a bare port (on C{localhost}),
C{[IPV6]:PORT}, or a Twisted client endpoint string (C{tcp:HOST:PORT},
C{ssl:host=HOST:port=PORT:caCertsDir=...}, C{tls:...}, C{unix:path=...},
or any type a Twisted plugin provides). A server description is a Twisted
server endpoint string (C{tcp:1234:interface=127.0.0.1}, C{ssl:...},
C{unix:...}) or a bare port. Both are split the way Twisted splits them
(C{:} between fields, C{=} between key and value, C{\\} escaping either),
so C{tcp6:host=\\:\\:1:port=7} names the host C{::1}.

Nothing here imports Twisted: the command line asks L{isTLS} before it
decides whether the TLS stack may be left out (L{ftx._io.notls}).
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

__all__ = ["Address", "isTLS", "parseAddress", "parseServerAddress", "splitDescription"]

#: Endpoint types that mean TLS.
TLS_KINDS = ("ssl", "tls")
#: Endpoint types that connect to a host and port in the clear.
TCP_KINDS = ("tcp", "tcp4", "tcp6")
#: Endpoint types always read as endpoint strings, even when what follows
#: the first colon is a number (C{unix:1234} is a socket named C{1234}).
_KNOWN_KINDS = TCP_KINDS + TLS_KINDS + ("unix", "tor")
#: Server endpoint types that take a C{backlog} and listen on a port.
_PORT_SERVER_KINDS = ("tcp", "tcp6", "ssl")


class Address(NamedTuple):
    """
    An address taken apart.

    @ivar kind: the endpoint type in lower case (C{"tcp"}, C{"tcp6"},
        C{"ssl"}, C{"tls"}, C{"unix"}, ...), or L{None} for a client's
        C{HOST:PORT} or bare port, where no type is written.
    @ivar host: the host to connect to; C{""} for a server description and
        for endpoints without one (C{unix:}).
    @ivar port: the port number; L{None} for endpoints without one.
    @ivar params: the other keyword fields (C{caCertsDir}, C{interface},
        C{backlog}, ...), escapes resolved.
    """

    kind: Optional[str]
    host: str
    port: Optional[int]
    params: Dict[str, str]

    @property
    def isTLS(self) -> bool:
        """
        Whether the address itself asks for TLS (C{ssl:} or C{tls:}).
        """
        return self.kind in TLS_KINDS

    @property
    def isTCP(self) -> bool:
        """
        Whether the address names a host and port (C{HOST:PORT}, a bare
        port, C{tcp:}, C{tcp4:}, C{tcp6:}, C{ssl:} or C{tls:}).
        """
        return self.kind is None or self.kind in TCP_KINDS + TLS_KINDS


def splitDescription(description: str) -> Tuple[List[str], Dict[str, str]]:
    """
    Split an endpoint string into its positional fields (the type first)
    and its keyword fields, as Twisted's C{clientFromString} and
    C{serverFromString} do: fields are separated by C{:}, a field's first
    C{=} separates key from value, and C{\\} makes the next character
    plain (C{interface=\\:\\:1} is C{::1}; a trailing C{\\} is dropped).
    """
    fields: List[Tuple[Optional[str], str]] = []
    key: Optional[str] = None
    current: List[str] = []
    chars = iter(description)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append((key, "".join(current)))
            key, current = None, []
        elif char == "=" and key is None:
            key, current = "".join(current), []
        else:
            current.append(char)
    fields.append((key, "".join(current)))
    positional = [value for key, value in fields if key is None]
    keywords = {key: value for key, value in fields if key is not None}
    return positional, keywords


def _kindOf(address: str) -> str:
    return address.split(":", 1)[0].lower()


def _isPort(text: str) -> bool:
    return text.isascii() and text.isdigit()


def isTLS(address: str) -> bool:
    """
    Whether a client address or server description asks for TLS by its
    type (C{ssl:} or C{tls:}, in any case). Never raises: it is asked
    before an address is checked.
    """
    return _kindOf(address) in TLS_KINDS


def parseAddress(address: str) -> Address:
    """
    Take apart a client address: C{HOST:PORT}, a bare port (on
    C{localhost}), C{[IPV6]:PORT}, a C{tcp:}, C{tcp4:}, C{tcp6:}, C{ssl:}
    or C{tls:} string (host and port as positional fields or as C{host=}
    and C{port=}), or another endpoint string, which comes back with its
    type and keyword fields for Twisted to build.

    @raise ValueError: the address cannot be understood; the message says
        what was expected.
    """
    if _isPort(address):
        return Address(None, "localhost", int(address), {})
    kind = _kindOf(address)
    if kind in TCP_KINDS + TLS_KINDS:
        positional, keywords = splitDescription(address)
        host = keywords.pop("host", positional[1] if len(positional) > 1 else "")
        port = keywords.pop("port", positional[2] if len(positional) > 2 else "")
        if not host or not _isPort(port):
            raise ValueError("not an address: {!r} (expected {}:host=HOST:port=PORT)".format(address, kind))
        return Address(kind, host, int(port), keywords)
    host, _, port = address.rpartition(":")
    if kind in _KNOWN_KINDS or (kind.isalpha() and host and not _isPort(port)):
        return Address(kind, "", None, splitDescription(address)[1])
    host = host.strip("[]")
    if not host or not _isPort(port):
        raise ValueError("not an address: {!r} (expected HOST:PORT or an endpoint string)".format(address))
    return Address(None, host, int(port), {})


def parseServerAddress(description: str) -> Address:
    """
    Take apart a server endpoint string (or a bare port, which means
    C{tcp:PORT}). C{port} is set for C{tcp:}, C{tcp6:} and C{ssl:}
    descriptions whose one positional field is the port
    (C{ssl:0:privateKey=key.pem}); the interface, backlog and the rest
    are in C{params}. Never raises: what Twisted cannot use, it rejects
    when the server listens.
    """
    if _isPort(description):
        return Address("tcp", "", int(description), {})
    positional, keywords = splitDescription(description)
    kind = positional[0].lower()
    port = None
    if kind in _PORT_SERVER_KINDS and len(positional) == 2 and _isPort(positional[1]):
        port = int(positional[1])
    return Address(kind, "", port, keywords)
