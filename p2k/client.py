"""Remote clients of a p2k server: ``connect(url)`` returns a ``Client`` whose ``.sys`` offers the
same calls as a local ``Kernel.sys``, run in the server as a process of the client's own.

    from p2k.client import connect
    c = connect("unix:///tmp/p2k.sock")      # or connect() to use $RUMP_SERVER
    c.sys.mkdir("/data", 0o755); print(c.sys.stat("/data").st_mode)
    c.halt()                                  # what rump.halt does
"""

from p2k.sp.client import Client, RemoteSys, ServerGone, connect
from p2k.sp.protocol import Handle

__all__ = ["Client", "Handle", "RemoteSys", "ServerGone", "connect"]
