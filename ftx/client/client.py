"""
L{FtxClient}: one connection to an ftx server, one method per command,
each returning a fresh Deferred. L{ftx.client.connect} makes one.

If the connection drops, every pending request fails with
L{ftx.errors.ConnectionLost}.
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool

from ftx._io.fileio import hashPrefix
from ftx.client import compresschoice, localfiles, safenames
from ftx.client.exchanges import DownloadRequest, Request, UploadRequest
from ftx.client.hashes import HashesRequest
from ftx.client.listrequest import ListRequest
from ftx.client.protocol import FtxClientProtocol
from ftx.client.results import DiskSpace, Entry, Transfer
from ftx.errors import BadRequest, UnsafeName
from ftx.protocol import checksums, wire
from ftx.protocol.wire import encodeName, nameText

__all__ = ["FtxClient", "Progress", "REPLACE", "NEW", "RENAME"]

#: What L{FtxClient.put} does when the name is taken on the server.
REPLACE = "replace"
NEW = "new"
RENAME = "rename"

#: C{progress(name, bytesDone, bytesTotal)}; bytesDone counts a resumed
#: prefix as done.
Progress = Callable[[str, int, int], None]


class FtxClient:
    """
    A connection to an ftx server. Every method returns a new Deferred
    that fires with the documented result or fails with an
    L{ftx.errors.FtxError} subclass (L{ftx.errors.NotFound},
    L{ftx.errors.PermissionDenied}, ...).
    """

    def __init__(self, protocol: FtxClientProtocol, reactor=None) -> None:
        """
        @param protocol: a connected L{FtxClientProtocol}, greeted or not.
        @param reactor: whose thread pool hashes local files; by default
            the protocol's. A protocol built without a reactor is given
            this one.
        @raise TypeError: neither has a reactor.
        """
        if reactor is None:
            reactor = protocol.reactor
        if reactor is None:
            raise TypeError("FtxClient needs a reactor: give it one, or give one to its protocol")
        if protocol.reactor is None:
            protocol.reactor = reactor
        self.protocol = protocol
        self._reactor = reactor

    def _threaded(self, f, *args) -> Deferred:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), f, *args)

    def list(
        self, mask: Optional[str] = None, arrived: Optional[Callable[[List[Entry]], None]] = None
    ) -> "Deferred[List[Entry]]":
        """
        Files on the server matching C{mask} (all files when L{None}).
        C{arrived(entries)} is called with each batch of them as they come,
        before the listing ends.
        """
        fields = [encodeName(mask)] if mask else []
        return self.protocol.request(ListRequest(wire.formatCommand("list", *fields), arrived))

    def sget(
        self, name: str, path: Optional[str] = None, progress: Optional[Progress] = None, stream=None,
        identities: Optional[list] = None,
    ) -> "Deferred[Transfer]":
        """
        Download C{name} to C{path} (default: its base name in the current
        folder). The file appears at C{path} only once complete and checked;
        if the transfer is cut off, the part received is kept for L{cget}.

        With C{stream} (a binary file object such as C{sys.stdout.buffer})
        the bytes are written to it as they arrive instead, and C{path} is
        only the name the L{Transfer} reports: the digest is checked at the
        end, and a mismatch fails with L{ftx.errors.IntegrityError} after
        the bytes went out, as C{curl} does.

        With C{identities} (C{AGE-SECRET-KEY-1...} strings, or
        L{ftx.client.e2e} identities and passphrases) C{name} is an age file
        and C{path} gets its plaintext, once every chunk authenticated
        (L{ftx.client.e2e.transfers}).
        """
        try:
            target, destination = _fixedDestination(name, path)
        except UnsafeName as e:
            return fail(e)
        if identities:
            from ftx.client.e2e.transfers import getDecrypted

            return getDecrypted(self, name, target, progress, identities)
        request = DownloadRequest(wire.formatCommand("sget", encodeName(name)), destination, progress, stream=stream)
        return self.protocol.request(request)

    def cget(self, name: str, path: Optional[str] = None, progress: Optional[Progress] = None) -> "Deferred[Transfer]":
        """
        Continue a download of C{name} into C{path}: from the partial file an
        interrupted L{sget} left, or else from a shorter file at C{path}.
        The server first checks that its prefix matches; a mismatch fails
        with L{IntegrityError} and leaves local files as they were.
        """
        try:
            target, destination = _fixedDestination(name, path)
        except UnsafeName as e:
            return fail(e)
        partial = localfiles.partialPath(target)
        if not os.path.exists(partial) and os.path.exists(target):
            os.replace(target, partial)
            restore = True
        else:
            restore = False

        def hashed(result):
            offset, prefix, whole = result
            request = DownloadRequest(
                wire.formatCommand("cget", encodeName(name), offset, prefix.hexdigest()),
                destination, progress, offset=offset, hasher=whole.copy(),
            )
            return self.protocol.request(request)

        def failed(failure):
            if restore and os.path.exists(partial) and not os.path.exists(target):
                os.replace(partial, target)
            return failure

        return self._threaded(_hashLocal, partial, self.protocol.checksum).addCallback(hashed).addErrback(failed)

    def mget(
        self,
        mask: str,
        directory: str = ".",
        progress: Optional[Progress] = None,
        accept: Optional[Callable[[str, int], "bool | str"]] = None,
        received: Optional[Callable[[Transfer], None]] = None,
        refused: Optional[Callable[[UnsafeName], None]] = None,
    ) -> "Deferred[List[Transfer]]":
        """
        Download every file matching C{mask} into C{directory}, keeping the
        server's relative names, over one request. C{accept(name, size)}
        may decline a file (L{False}: its body is read and dropped) or name
        another local path for it (a string). C{received(transfer)} is
        called as each file is in place. Fires with the transfers made; if
        a file fails its check, the rest of the batch is still received and
        the Deferred fails at the end with the first error.

        Every name the server sends is checked before anything is written
        (L{ftx.client.safenames}): it must match C{mask} and stay inside
        C{directory}; a name that does not fails with
        L{ftx.errors.UnsafeName} (passed to C{refused(error)} as it
        happens), and C{accept} never sees it.
        """

        wanted = mask.encode("utf-8", "surrogateescape")

        def destination(name: bytes, size: int):
            # Checked before C{accept} sees the name: the server chose it.
            segments = safenames.checked(name, wanted)
            verdict = True if accept is None else accept(nameText(name), size)
            if isinstance(verdict, str):
                return verdict
            return safenames.confined(directory, segments) if verdict else None

        request = DownloadRequest(
            wire.formatCommand("mget", encodeName(mask)), destination, progress, batch=True, received=received,
            refused=refused,
        )
        return self.protocol.request(request)

    def hash(self, name: str, length: Optional[int] = None) -> "Deferred[str]":
        """
        The SHA-1 hex digest of C{name}, or of its first C{length} bytes.
        """
        fields = [encodeName(name)] + ([length] if length is not None else [])
        request = Request(wire.formatCommand("hash", *fields))
        request.parse = lambda reply: reply.fields[0]
        return self.protocol.request(request)

    def sgets(
        self, files: List[Tuple[str, str]], progress: Optional[Progress] = None,
        received: Optional[Callable[[Transfer], None]] = None,
        failed: Optional[Callable[[str, BaseException], None]] = None,
    ) -> "Deferred[List[Transfer]]":
        """
        Download each C{(name, path)} of C{files} as L{sget} would, the
        commands sent ahead of their answers (the server's C{pipeline}
        feature; L{ftx.client.pipelined}). C{received(transfer)} as each
        file is in place, C{failed(name, error)} for each that is not; the
        others go on. Fires with the transfers made.
        """
        from ftx.client.pipelined import GetsRequest

        return self.protocol.request(GetsRequest(list(files), progress, received, failed))

    def hashes(self, names: List[str]) -> "Deferred[list]":
        """
        The SHA-1 hex digests of many files, asked for all at once (the
        commands are pipelined: about one round trip in all). Fires with
        one result per name, in order: the digest, or the
        L{ftx.errors.FtxError} the server gave for that name (a missing
        file is L{ftx.errors.NotFound}); fails only when the connection does.
        """
        return self.protocol.request(HashesRequest(list(names)))

    def put(
        self, path: str, name: Optional[str] = None, progress: Optional[Progress] = None, resume: bool = False,
        mode: str = REPLACE, encryptTo: Optional[list] = None, mtime: Optional[int] = None,
    ) -> "Deferred[Transfer]":
        """
        Upload the local file C{path} as C{name} (default: its base name).
        The server keeps it under C{name} only once every byte arrived and
        the digest matches. With C{resume}, first ask the server how much of
        an interrupted upload it holds and send only the rest if that part
        matches the local file.

        C{mode} says what to do when C{name} is taken: L{REPLACE} it,
        L{NEW} (fail with L{ftx.errors.AlreadyExists}, before the body when
        the file is already there) or L{RENAME} (the server stores it as
        C{name (1).ext}, ...; the L{Transfer}'s C{name} says which). The
        last two need the server's C{put-mode} feature.

        With C{encryptTo} (C{age1...} strings, or L{ftx.client.e2e}
        recipients or one passphrase) the server gets the file encrypted in
        the age format (L{ftx.client.e2e.transfers}).

        With C{mtime} (whole seconds since the epoch, usually the local
        file's) the server stores the file with that modification time, so
        that a later listing compares with the local file by size and time
        (L{ftx.cli.quickcheck}); a server without the C{mtime} feature, or
        an encrypted upload, keeps the time of upload.
        """
        name = name if name is not None else os.path.basename(path)
        if mode != REPLACE and "put-mode" not in self.protocol.features:
            return fail(BadRequest("this server always replaces an existing file (it lacks the put-mode feature)"))
        if encryptTo:
            from ftx.client.e2e.transfers import putEncrypted

            return putEncrypted(self, path, name, progress, resume, encryptTo, mode if mode != REPLACE else "")
        modeField = [mode] if mode != REPLACE else []
        try:
            f = open(path, "rb", buffering=0)
            size = os.fstat(f.fileno()).st_size
        except OSError as e:
            return fail(localfiles.localError(e, path))
        checksum = self.protocol.checksum
        if mtime is not None and (mtime < 0 or "mtime" not in self.protocol.features):
            mtime = None
        if not resume:
            request = UploadRequest(
                wire.formatCommand("put", encodeName(name), size, *modeField),
                name, f, size, 0, checksums.new(checksum), progress, mtime,
            )
            # With --compress auto, the file's first block says how it travels.
            choice = compresschoice.forUpload(self, path)
            if choice is None:
                return self.protocol.request(request)
            return choice.addCallbacks(lambda _: self.protocol.request(request), lambda failure: (f.close(), failure)[1])

        def held(reply):
            offset, digest = int(reply.fields[0]), reply.fields[1]
            fresh = (0, None, checksums.new(checksum))
            if offset == 0 or offset > size:
                return fresh
            return self._threaded(_hashPrefix, path, offset, checksum).addCallback(
                lambda hashers: (offset,) + hashers if hashers[0].hexdigest() == digest else fresh
            )

        def send(result):
            offset, prefix, whole = result
            fields = [encodeName(name), size] + ([offset, prefix.hexdigest()] if offset else []) + modeField
            request = UploadRequest(wire.formatCommand("put", *fields), name, f, size, offset, whole, progress, mtime)
            return self.protocol.request(request)

        def closeOnError(failure):
            f.close()
            return failure

        ask = Request(wire.formatCommand("partial", encodeName(name)))
        choice = compresschoice.forUpload(self, path)
        asked = self.protocol.request(ask) if choice is None else choice.addCallback(lambda _: self.protocol.request(ask))
        return asked.addCallback(held).addCallback(send).addErrback(closeOnError)

    def partial(self, name: str) -> "Deferred[tuple]":
        """
        How many bytes of an interrupted upload of C{name} the server holds,
        and their SHA-1.
        """
        request = Request(wire.formatCommand("partial", encodeName(name)))
        request.parse = lambda reply: (int(reply.fields[0]), reply.fields[1])
        return self.protocol.request(request)

    def delete(self, name: str) -> "Deferred[None]":
        """
        Remove C{name} on the server.
        """
        request = Request(wire.formatCommand("delete", encodeName(name)))
        request.parse = lambda reply: None
        return self.protocol.request(request)

    def mkdir(self, name: str) -> "Deferred[None]":
        """
        Create the folder C{name} on the server, and those above it; an
        existing folder is fine. Fails with L{ftx.errors.AlreadyExists}
        when a file is in the way.
        """
        request = Request(wire.formatCommand("mkdir", encodeName(name)))
        request.parse = lambda reply: None
        return self.protocol.request(request)

    def rmtree(self, name: str) -> "Deferred[int]":
        """
        Remove the folder C{name} and everything in it; fires with how many
        files went.
        """
        request = Request(wire.formatCommand("rmtree", encodeName(name)))
        request.parse = lambda reply: int(reply.fields[2]) if len(reply.fields) > 2 else 0
        return self.protocol.request(request)

    def df(self) -> "Deferred[DiskSpace]":
        """
        Total and free bytes of the disk that holds the server's files, and
        the bytes used as df(1) counts them when the server says.
        """
        request = Request(wire.formatCommand("df"))
        request.parse = lambda reply: DiskSpace(
            int(reply.fields[0]), int(reply.fields[1]), int(reply.fields[2]) if len(reply.fields) > 2 else None
        )
        return self.protocol.request(request)

    def login(self, user: str, password: str) -> "Deferred[str]":
        """
        Log in; fails with L{ftx.errors.LoginFailed}.
        """
        request = Request(wire.formatCommand("login", encodeName(user), encodeName(password)))
        request.parse = lambda reply: user
        return self.protocol.request(request)

    def quit(self) -> "Deferred[None]":
        """
        Say goodbye and close the connection; fires once it is closed.
        """
        request = Request(wire.formatCommand("quit"))
        request.parse = lambda reply: None
        d = self.protocol.request(request)

        def close(_):
            self.protocol.transport.loseConnection()

        return d.addCallback(close)


def _fixedDestination(name: str, path: Optional[str]):
    """
    The local path of an C{sget}/C{cget} of C{name}, and the destination
    that holds the server to sending that very name. With no C{path} the
    file is saved under the last segment of C{name}, which may itself come
    from the server (a listing), so it is checked like any server name.
    """
    asked = name.encode("utf-8", "surrogateescape")
    target = path if path is not None else safenames.confined("", [safenames.baseName(asked)])

    def destination(sent: bytes, size: int) -> str:
        if sent != asked:
            raise UnsafeName("asked for {}, the server sent {}; it was not written".format(
                ascii(name), ascii(nameText(sent))), sent)
        return target

    return target, destination


def _hashLocal(path: str, checksum: str):
    """
    Size of a local partial file, its SHA-1 hasher (for C{cget}) and a
    hasher of C{checksum} over the same bytes (to go on with); run in a
    thread.
    """
    size = localfiles.existingSize(path) or 0
    if not size:
        return (0, checksums.new(checksums.SHA1), checksums.new(checksum))
    return (size,) + _hashPrefix(path, size, checksum)


def _hashPrefix(path: str, count: int, checksum: str):
    """
    SHA-1 hasher and C{checksum} hasher over the first C{count} bytes of a
    local file, in one pass (run in a thread); the same chunked loop the
    server uses. With SHA-1 as the checksum both are the same object.
    """
    whole = checksums.new(checksum) if checksum != checksums.SHA1 else None
    with open(path, "rb", buffering=0) as f:
        prefix = hashPrefix(f, count, os.fsencode(path), whole)
    return prefix, whole or prefix
