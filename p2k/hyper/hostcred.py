"""Credentials of host processes: what the host says about a peer, for the bridge and the server."""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    import socket

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def proc_groups(pid: int) -> tuple[int, ...]:
    """Supplementary groups of host process ``pid`` (what libfuse's ``fuse_req_getgroups`` reads);
    none if it is gone (a request then carries only uid and gid, like one the host kernel makes on
    its own behalf)."""
    if pid <= 0:
        return ()
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    return tuple(sorted({int(x) for x in line.split()[1:]}))
    except (OSError, ValueError):
        pass
    return ()


def peer_cred(sock: socket.socket) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process at the other end of a unix socket, as the host kernel
    recorded it at connect time (SO_PEERCRED); None where the host cannot say."""
    import socket  # here: the FUSE daemon needs proc_groups alone, and socket imports enum (1.4 ms)

    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None or sock.family != socket.AF_UNIX:
        return None
    try:
        pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, opt, _UCRED.size))
    except OSError:
        return None
    return pid, uid, gid
