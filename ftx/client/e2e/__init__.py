"""
End-to-end encryption in the age format (age-encryption.org/v1): the
client encrypts before it uploads and decrypts after it downloads, so the
server stores ciphertext and never holds a key. Files interoperate with
the C{age} and C{rage} tools.

Use it through the client: C{client.put(path, name, encryptTo=["age1..."])}
and C{client.sget(name, path, identities=[identity])}, where a recipient
or identity may also be a L{Passphrase}.
"""

from ftx.client.e2e.errors import BadKey, NoIdentity, NotDecryptable
from ftx.client.e2e.keys import (
    Identity,
    Passphrase,
    Recipient,
    defaultIdentityPath,
    generateIdentity,
    readIdentities,
    readRecipients,
    writeIdentity,
)
from ftx.client.e2e.stream import decryptFile, encryptFile, newPlan

__all__ = [
    "BadKey",
    "Identity",
    "NoIdentity",
    "NotDecryptable",
    "Passphrase",
    "Recipient",
    "decryptFile",
    "defaultIdentityPath",
    "encryptFile",
    "generateIdentity",
    "newPlan",
    "readIdentities",
    "readRecipients",
    "writeIdentity",
]
