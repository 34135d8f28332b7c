"""Bulk reads through a shared-memory arena, for clients on the same host (``unix://``).

Why: over the socket a read's data is copied by the driver into a reply, by the host kernel into
the socket and again out of it, and the server spends as long in ``sendmsg`` as in the driver.
Through an arena (``p2k.hyper.shmem``) the driver copies the data once, straight into memory the
client has mapped (``Syscalls.readinto`` → ``vop_readinto``), the client copies it once into the
``bytes`` it returns, and the socket carries a small request and a small reply.

The protocol stays request/reply. ``OP_SHM`` asks for an arena; the reply carries its size and
the memfd (SCM_RIGHTS). ``OP_SHM_READ [fd, n, at]`` and ``OP_SHM_PREAD [fd, n, offset, at]`` are
``read``/``pread`` whose data lands at ``at`` in the arena instead of in the reply, which is the
count. The client chooses ``at``: the server keeps no state about which parts are in use, checks
only that ``[at, at + n)`` lies inside this connection's own arena, and never reads the arena, so
a client that lies about ``at`` can only garble its own reads.

Bounds: one arena per connection, ``ServerConfig.shm_arena`` bytes, and ``shm_budget`` bytes of
arenas for the whole server; past that a client is told ENOMEM and reads over the socket.
"""

from __future__ import annotations

import errno
import threading
from typing import TYPE_CHECKING, Any

import p2k.sp.protocol as P
from p2k.hyper.shmem import Arena

if TYPE_CHECKING:
    from p2k.sp.server import Server
    from p2k.vfs.syscalls import Syscalls

UNIT = 1 << 20
"""The client hands out its arena in pieces of this size; a read takes as many as it needs."""
SHM_MIN = 16 << 10
"""Reads shorter than this go over the socket: the arena would save them nothing worth a piece."""


# ---- the server's side ---------------------------------------------------------------------------
def open_arena(srv: Server, sock: Any, reqno: int, have: Arena | None) -> Arena:
    """Make this connection's arena and send it with the reply to ``OP_SHM``; OSError (sent
    to the client as an error reply by the caller) when the server cannot or will not."""
    cfg = srv.config
    if have is not None:
        raise OSError(errno.EBUSY, "this connection has its shared arena already")
    if not srv.address.is_unix or cfg.shm_arena <= 0:
        raise OSError(errno.EOPNOTSUPP, "no shared memory on this server")
    if not srv.reserve_shm(cfg.shm_arena):
        raise OSError(errno.ENOMEM, "the server's shared-memory budget is in use")
    try:
        arena = Arena.create(cfg.shm_arena)
    except OSError:
        srv.release_shm(cfg.shm_arena)
        raise
    try:
        arena.send(sock, P.frame(reqno, P.RESP, 0, P.encode({"size": arena.size})))
    except BaseException:
        close_arena(srv, arena)
        raise
    arena.drop_fd()
    return arena


def close_arena(srv: Server, arena: Arena) -> None:
    arena.close()
    srv.release_shm(arena.size)


def shm_read(s: Syscalls, arena: Arena | None, args: list[Any], pread: bool) -> int:
    """``read``/``pread`` into the arena; EINVAL for arguments that are not plain in-range ints."""
    if arena is None:
        raise OSError(errno.EINVAL, "no shared arena on this connection (OP_SHM first)")
    if len(args) != (4 if pread else 3) or not all(type(a) is int for a in args):
        raise OSError(errno.EINVAL, "shared read takes [fd, n, at] or [fd, n, offset, at]")
    fd, n, at = args[0], args[1], args[-1]
    if n < 0 or at < 0 or n > P.MAX_IO_CHUNK or at + n > arena.size:
        raise OSError(errno.EINVAL, f"{n} bytes at {at} do not fit the shared arena")
    with arena.view[at:at + n] as dst:
        return s.preadinto(fd, dst, args[2]) if pread else s.readinto(fd, dst)


# ---- the client's side ---------------------------------------------------------------------------
class ClientArena:
    """The client's mapping of its arena and which pieces of it calls in flight are using.

    First fit from the start, so that a lone reader keeps reusing the same (warm, already
    faulted-in) pages; a thread that finds no room reads over the socket rather than wait.
    """

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.mm = arena.mm
        self.size = arena.size
        self._free = [True] * (arena.size // UNIT)
        self._lock = threading.Lock()

    def take(self, n: int) -> int | None:
        """Offset of room for ``n`` bytes, now reserved; None if there is none."""
        k = -(-n // UNIT)
        free = self._free
        with self._lock:
            run = 0
            for i, ok in enumerate(free):
                run = run + 1 if ok else 0
                if run == k:
                    first = i - k + 1
                    free[first:i + 1] = [False] * k
                    return first * UNIT
        return None

    def give(self, at: int, n: int) -> None:
        k = -(-n // UNIT)
        first = at // UNIT
        with self._lock:
            self._free[first:first + k] = [True] * k

    def close(self) -> None:
        self.arena.view.release()
        try:
            self.mm.close()
        except BufferError:
            pass
