"""
ftx: a file-transfer server and client built on Twisted.

Embedding code wants L{ftx.client.api.connect}; the server is run with
``twistd ftx`` (see L{ftx.server.tap}).
"""

__version__ = "0.1.0"
