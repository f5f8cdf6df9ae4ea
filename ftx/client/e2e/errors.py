"""
What can go wrong with end-to-end encryption, as L{ftx.errors} classes, so
that the command line gives each its exit status: a key that is not one is
a usage error, no identity that opens a file is a refusal (5), and a file
that does not authenticate is an integrity error (6).
"""

from __future__ import annotations

from ftx.errors import BadRequest, IntegrityError, PermissionDenied

__all__ = ["BadKey", "NoIdentity", "NotDecryptable"]


class BadKey(BadRequest):
    """
    A recipient, identity or passphrase is not usable.
    """


class NoIdentity(PermissionDenied):
    """
    None of the identities given can open the file: it was encrypted to
    someone else. Nothing was written.
    """


class NotDecryptable(IntegrityError):
    """
    The encrypted file is damaged, truncated or tampered with, or not an
    age file: it does not authenticate. No plaintext of it was kept.
    """
