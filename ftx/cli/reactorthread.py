"""
The reactor in a background thread, and a connection the command line
drives from its main thread with blocking calls.

The command line runs the reactor in a thread of its own and waits for
each request with C{blockingCallFromThread}. That keeps the main thread
free for what is naturally blocking and belongs to the user: terminal
questions, the interactive shell's line editor, hashing a local file.
It also makes Ctrl-C a plain C{KeyboardInterrupt} in the main thread,
whatever the reactor is doing, so the command stops at once; bytes
already received are on disk (the partial file is written unbuffered).
"""

from __future__ import annotations

import threading
from typing import Optional

from twisted.internet.threads import blockingCallFromThread

from ftx.client.api import connect
from ftx.client.client import FtxClient
from ftx.errors import ConnectionLost

__all__ = ["ReactorThread", "Connection"]

_QUIT_TIMEOUT = 5.0


class ReactorThread:
    """
    Runs C{reactor} (the command line's global reactor) in a daemon thread
    until L{stop}.
    """

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.thread = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, name="ftx-reactor", daemon=True
        )
        self.thread.start()

    def call(self, f, *args, **kwargs):
        """
        Run C{f} in the reactor thread and wait for its result (waiting
        for it too if it is a Deferred). Raises what it raises.
        """
        return blockingCallFromThread(self.reactor, f, *args, **kwargs)

    def stop(self, timeout: float = 5.0) -> None:
        if self.thread.is_alive():
            self.reactor.callFromThread(self.reactor.stop)
            self.thread.join(timeout)


class Connection:
    """
    One session with the server, opened through L{ftx.client.connect} on
    first use and reopened on the next use after it was lost or aborted;
    C{options} are C{connect}'s keywords.
    """

    def __init__(self, runner: ReactorThread, address: str, **options) -> None:
        self.runner = runner
        self.address = address
        self.options = options
        self._client: Optional[FtxClient] = None

    @property
    def client(self) -> FtxClient:
        if self._client is not None and not getattr(self._client.protocol.transport, "connected", True):
            # The server closed it meanwhile (idle timeout, restart).
            self._client = None
        if self._client is None:
            self._client = self.runner.call(lambda: connect(self.runner.reactor, self.address, **self.options))
            # One connection in a process that waits for it: a thread of
            # its own reads each large body, as fast as a plain C program.
            self._client.protocol.bodyThreads = True
        return self._client

    @property
    def features(self):
        return self.client.protocol.features

    def call(self, method: str, *args, **kwargs):
        """
        C{client.method(*args, **kwargs)}, waited for.
        """
        client = self.client
        try:
            return self.runner.call(lambda: getattr(client, method)(*args, **kwargs))
        except ConnectionLost:
            self._client = None
            raise

    def abort(self) -> None:
        """
        Drop the connection now, in the middle of a transfer if need be;
        the partial file of a download in progress is kept.
        """
        client, self._client = self._client, None
        if client is not None:
            self.runner.reactor.callFromThread(client.protocol.transport.abortConnection)

    def close(self) -> None:
        """
        Say goodbye politely if connected; give up after a few seconds.
        """
        client, self._client = self._client, None
        if client is None:
            return

        def bye():
            d = client.quit()
            d.addErrback(lambda _: None)
            call = self.runner.reactor.callLater(_QUIT_TIMEOUT, client.protocol.transport.abortConnection)

            def done(result):
                if call.active():
                    call.cancel()
                return result

            return d.addBoth(done)

        try:
            self.runner.call(bye)
        except Exception:
            pass
