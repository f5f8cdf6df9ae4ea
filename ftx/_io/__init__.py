"""
The private I/O layer both ends share: bodies sent with C{sendfile}
(L{ftx._io.filebody}, L{ftx._io.zerocopy}), bodies read with
C{recv_into} into pooled buffers (L{ftx._io.bodyreads}), writing and
hashing in worker lanes (L{ftx._io.background}), endpoints and TLS
(L{ftx._io.endpoints}, L{ftx._io.tls}). Every reach into a private
attribute of Twisted lives in L{ftx._io.internals}.

Nothing here is public API; it may change with any release.
"""
