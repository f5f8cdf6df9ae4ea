"""
What an encrypted upload keeps so that it can resume: the L{Plan} (file
key, header, payload nonce) of the attempt that was cut off, in the
user's state folder, readable only by the user. Encrypting the same file
with the same plan gives the same ciphertext, so the server's partial
upload is a prefix of it and only the rest is sent; without the plan
every attempt would make a new file key and start over from byte 0.

The plan is used again only for the same local file (path, size and
modification time) to the same server name and the same recipients, and
removed once the upload is stored.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from typing import List

from ftx.client import localfiles
from ftx.client.e2e.header import Header
from ftx.client.e2e.keys import AnyRecipient, Passphrase
from ftx.client.e2e.stream import Plan, newPlan

__all__ = ["UploadState", "stateFolder"]


def stateFolder() -> str:
    """
    C{$XDG_STATE_HOME/ftx/uploads}, by default C{~/.local/state/ftx/uploads}.
    """
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "ftx", "uploads")


def _describe(recipients: List[AnyRecipient]) -> List[str]:
    return sorted("scrypt" if isinstance(r, Passphrase) else str(r) for r in recipients)


class UploadState:
    """
    The saved plan for one local file going to one server name, and the
    private temporary file its ciphertext is written to.
    """

    def __init__(self, path: str, name: str, recipients: List[AnyRecipient]) -> None:
        self.path = os.path.abspath(path)
        self.name = name
        self.recipients = recipients
        key = hashlib.sha256("{}\0{}".format(self.path, name).encode("utf-8", "surrogateescape")).hexdigest()[:32]
        folder = stateFolder()
        self.saved = os.path.join(folder, key + ".json")
        self.ciphertext = os.path.join(folder, key + ".age")

    def _identity(self) -> dict:
        info = os.stat(self.path)
        return {"path": self.path, "name": self.name, "size": info.st_size, "mtime": info.st_mtime_ns,
                "recipients": _describe(self.recipients)}

    def plan(self, resume: bool) -> Plan:
        """
        The plan to encrypt with: the saved one when C{resume} and it fits
        this upload, else a new one (saved when C{resume}, for the next
        attempt). Blocks (file I/O, and scrypt for a passphrase): run it in
        a thread.
        """
        os.makedirs(os.path.dirname(self.saved), mode=0o700, exist_ok=True)
        identity = self._identity()
        if resume:
            plan = self._load(identity)
            if plan is not None:
                return plan
        plan = newPlan(self.recipients)
        if resume:
            self._save(identity, plan)
        return plan

    def _load(self, identity: dict):
        try:
            with open(self.saved, encoding="utf-8") as f:
                saved = json.load(f)
            if saved.get("for") != identity:
                return None
            plan = Plan(bytes.fromhex(saved["fileKey"]), base64.b64decode(saved["header"]),
                        bytes.fromhex(saved["nonce"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        passphrases = [r for r in self.recipients if isinstance(r, Passphrase)]
        if passphrases:
            # The same passphrase? Only unwrapping the saved header can tell.
            header = Header.read(io.BytesIO(plan.header))
            if passphrases[0].unwrap(header.stanzas) != plan.fileKey:
                return None
        return plan

    def _save(self, identity: dict, plan: Plan) -> None:
        record = {"for": identity, "fileKey": plan.fileKey.hex(), "nonce": plan.nonce.hex(),
                  "header": base64.b64encode(plan.header).decode("ascii")}
        temporary = self.saved + ".new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(temporary, self.saved)

    def finished(self) -> None:
        """
        The upload is stored: its plan is no longer needed.
        """
        localfiles.discard(self.saved)
