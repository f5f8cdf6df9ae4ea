"""
The ftx wire format, shared by both ends and doing no I/O: command and
reply lines (L{ftx.protocol.wire}), names and the rules they obey
(L{ftx.protocol.names}), transfer checksums (L{ftx.protocol.checksums}),
and the disk-space datagram (L{ftx.protocol.diskspace}).
"""
