"""p2k/sp: a kernel served to other processes (rump_sp(7)): wire protocol, server and client.

The public client API is ``p2k.client``; the server is started by ``rump_server``
(``p2k.cli.server``) or from Python with ``Server(kernel, url).bind()`` then ``serve_forever()``.
"""

from p2k.sp.protocol import Handle, ProtocolError
from p2k.sp.server import Server, ServerConfig

__all__ = ["Handle", "ProtocolError", "Server", "ServerConfig"]
