"""
ftx: a file-transfer server and client built on Twisted.

Embedding code wants L{ftx.client.connect}; the server is run with
``twistd ftx`` (see L{ftx.tap}).
"""

__version__ = "0.1.0"
