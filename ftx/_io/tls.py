"""
TLS for ftx, built from Twisted's own pieces: C{optionsForClientTLS} and
C{wrapClientTLS} on the client, C{CertificateOptions} behind an C{ssl:}
endpoint on the server. Nothing here does cryptography itself.

The client verifies the server's certificate and host name unless told
C{insecure}; a failed handshake becomes a L{TLSError} or
L{CertificateError} whose message a user can act on.

pyOpenSSL, service_identity and idna (the C{tls} install extra) are only
imported when TLS is actually used, so plain ftx works without them.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from ftx._io.endpoints import parseAddress, parseServerAddress
from ftx.errors import CertificateError, TLSError

__all__ = ["clientEndpoint", "serverEndpoint", "errorFromFailure"]


def _ssl():
    try:
        import service_identity  # noqa: F401  (host name checks need it)
        from twisted.internet import ssl
    except ImportError as e:
        raise TLSError("TLS needs pyOpenSSL and service_identity: pip install 'ftx[tls]' ({})".format(e))
    return ssl


def _readPEM(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSError("cannot read the {} {}: {}".format(what, path, e.strerror or e))


def _certificates(path: str, what: str) -> list:
    """
    Every certificate in a PEM file, or in the C{.pem} files of a folder.
    """
    ssl = _ssl()
    if os.path.isdir(path):
        paths = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".pem"))
    else:
        paths = [path]
    certificates = []
    marker = b"-----END CERTIFICATE-----"
    for p in paths:
        data = _readPEM(p, what)
        for block in data.split(marker)[:-1]:
            try:
                certificates.append(ssl.Certificate.loadPEM(block + marker + b"\n"))
            except Exception as e:
                raise TLSError("{} {} holds a certificate that cannot be read: {}".format(what, p, e))
    if not certificates:
        raise TLSError("the {} {} holds no PEM certificate".format(what, path))
    return certificates


def _privateCertificate(certPath: str, keyPath: Optional[str] = None):
    """
    A certificate with its private key, from one PEM file holding both or
    from two files.
    """
    ssl = _ssl()
    data = _readPEM(certPath, "certificate")
    if keyPath and keyPath != certPath:
        data += b"\n" + _readPEM(keyPath, "private key")
    try:
        return ssl.PrivateCertificate.loadPEM(data)
    except Exception as e:
        raise TLSError("{} must hold a PEM certificate and its private key: {}".format(certPath, e))


def clientEndpoint(
    reactor,
    address: str,
    cafile: Optional[str] = None,
    insecure: bool = False,
    certificate: Optional[str] = None,
):
    """
    A client endpoint that speaks TLS to C{address} (C{HOST:PORT}, or a
    C{tcp:}, C{ssl:} or C{tls:} endpoint string) and checks the server's
    certificate: against the CAs in C{cafile} (a PEM file or a folder of
    them; also the C{caCertsDir} or C{trustRoots} key of the string), else
    against the system's trust store, and always for the host name (or the
    C{hostname} key). C{certificate} is a PEM file with a client
    certificate and its key. C{insecure} skips every check.

    Returns C{(endpoint, hostname)}.

    @raise ValueError: the address cannot be understood
        (L{ftx._io.endpoints.parseAddress}).
    @raise TLSError: the address cannot carry TLS, or a file is unusable.
    """
    parsed = parseAddress(address)
    if not parsed.isTCP:
        raise TLSError("TLS works over TCP only; {!r} is not a TCP address".format(address))
    if insecure and cafile:
        raise TLSError("choose either a CA file to verify the server, or insecure mode; not both")
    ssl = _ssl()
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

    params = parsed.params
    hostname = params.get("hostname") or parsed.host
    cafile = cafile or params.get("caCertsDir") or params.get("trustRoots")
    clientCert = None
    certPath = certificate or params.get("certKey") or params.get("certificate")
    if certPath:
        clientCert = _privateCertificate(certPath, None if certificate else params.get("privateKey"))
    if insecure:
        kwargs = {}
        if clientCert is not None:
            kwargs = dict(privateKey=clientCert.privateKey.original, certificate=clientCert.original)
        # Encryption without authentication: only for tests and labs.
        creator = ssl.CertificateOptions(**kwargs)
    else:
        trust = ssl.trustRootFromCertificates(_certificates(cafile, "CA file")) if cafile else ssl.platformTrust()
        creator = ssl.optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=clientCert)
    endpoint = wrapClientTLS(creator, HostnameEndpoint(reactor, parsed.host, parsed.port))
    return endpoint, hostname


def serverEndpoint(reactor, description: str, clientCA: Optional[str] = None):
    """
    The server endpoint for C{description}. Without C{clientCA} this is
    just C{serverFromString}. With it, C{description} must be an C{ssl:}
    string (C{ssl:PORT:privateKey=KEY[:certKey=CERT][:interface=ADDR]
    [:backlog=N][:extraCertChain=CHAIN][:dhParameters=FILE]}), and every
    client must present a certificate signed by a CA in C{clientCA}; the
    handshake fails for clients that do not.

    @raise TLSError: the description or a file is unusable.
    """
    from twisted.internet.endpoints import serverFromString

    if clientCA is None:
        return serverFromString(reactor, description)
    parsed = parseServerAddress(description)
    kwargs = parsed.params
    if parsed.kind != "ssl" or parsed.port is None:
        raise TLSError("--client-ca needs an ssl: port, like ssl:1234:privateKey=key.pem:certKey=cert.pem")
    known = {"privateKey", "certKey", "interface", "backlog", "extraCertChain", "dhParameters"}
    unknown = set(kwargs) - known
    if unknown:
        raise TLSError("--client-ca cannot be combined with {} in --port".format(", ".join(sorted(unknown))))
    ssl = _ssl()
    from twisted.internet.endpoints import SSL4ServerEndpoint

    keyPath = kwargs.get("privateKey", "server.pem")
    server = _privateCertificate(kwargs.get("certKey", keyPath), keyPath)
    chain = [c.original for c in _certificates(kwargs["extraCertChain"], "certificate chain")] if "extraCertChain" in kwargs else None
    dh = None
    if "dhParameters" in kwargs:
        from twisted.python.filepath import FilePath

        dh = ssl.DiffieHellmanParameters.fromFile(FilePath(kwargs["dhParameters"]))
    options = ssl.CertificateOptions(
        privateKey=server.privateKey.original,
        certificate=server.original,
        extraCertChain=chain,
        dhParameters=dh,
        verify=True,
        requireCertificate=True,
        caCerts=[c.original for c in _certificates(clientCA, "client CA file")],
    )
    backlog = kwargs.get("backlog", "50")
    return SSL4ServerEndpoint(
        reactor, parsed.port, options, backlog=int(backlog) if backlog.isdigit() else 50, interface=kwargs.get("interface", "")
    )


def _reasons(error) -> str:
    """
    The OpenSSL reason strings of an C{SSL.Error}, e.g. "certificate verify
    failed".
    """
    parts = []
    for arg in getattr(error, "args", ()):
        if isinstance(arg, list):
            parts.extend(str(item[-1]) for item in arg if isinstance(item, tuple) and item)
        else:
            parts.append(str(arg))
    return "; ".join(p for p in parts if p) or error.__class__.__name__


def errorFromFailure(failure, hostname: str = "the server") -> Optional[TLSError]:
    """
    The L{TLSError} a user should see for a connection that ended with
    C{failure}, or L{None} when the failure is not about TLS.
    """
    if sys.modules.get("OpenSSL") is None:
        # No TLS stack loaded (or left out, L{ftx._io.notls}): the failure
        # cannot be a TLS one, and a plain connection should not load it.
        return None
    value = getattr(failure, "value", failure)
    try:
        from OpenSSL import SSL
        from service_identity import VerificationError
    except ImportError:
        return None
    if isinstance(value, VerificationError):
        return CertificateError(
            "the server's certificate is not valid for the host name {}; connect with the name "
            "it was issued for".format(hostname)
        )
    if not isinstance(value, SSL.Error):
        return None
    reasons = _reasons(value)
    if "certificate verify failed" in reasons:
        return CertificateError(
            "the certificate of {} could not be verified (unknown authority, expired or not yet valid); "
            "pass the CA that signed it with --cafile, or --insecure for testing only".format(hostname)
        )
    if "wrong version number" in reasons or "packet length too long" in reasons or "record layer failure" in reasons:
        return TLSError("{} did not answer in TLS; is it a plain (non-TLS) server?".format(hostname))
    if "certificate required" in reasons or ("handshake failure" in reasons and "alert" in reasons):
        return TLSError("{} requires a client certificate it accepts (--cert FILE): {}".format(hostname, reasons))
    if "alert" in reasons and ("certificate" in reasons or "unknown ca" in reasons):
        return TLSError("{} refused the client certificate: {}".format(hostname, reasons))
    return TLSError("the TLS handshake with {} failed: {}".format(hostname, reasons))
