"""
Registers ``ftx`` with twistd. Kept tiny: twistd imports every plugin file
to build its command list, so the real work is imported only when used.
"""

from twisted.application.service import ServiceMaker

ftx = ServiceMaker(
    "ftx",
    "ftx.server.twistd",
    "A file-transfer server: list, get, resume and put files under a folder.",
    "ftx",
)
