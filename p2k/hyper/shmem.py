"""Shared memory between the server and a client on the same host: a sealed memfd, mapped by both.

A remote read over a socket copies its data three times (driver to reply, reply into the socket,
socket out to the client); through a shared arena it is copied twice (driver into the arena,
arena into the caller's ``bytes``) and the socket carries only a few dozen bytes per call.

The server makes the arena and hands the client its descriptor (SCM_RIGHTS). The server only ever
writes to it, never reads from it, so nothing a client writes there can reach the server. What a
client could still do is shrink the file under the server's mapping, which would kill the server
with SIGBUS on its next write: the arena is sealed against shrinking and growing (and against
further seal changes) before its descriptor leaves the server, and the client checks the same
seals before it maps an arena, for the same reason the other way round.
"""

from __future__ import annotations

import array
import fcntl
import mmap
import os
import socket

SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


class Arena:
    """One mapping of a sealed memfd; ``view`` is where the server writes, ``mm`` where the
    client copies from (slicing an mmap makes one ``bytes`` copy and holds no buffer export)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.mm)

    @classmethod
    def create(cls, size: int) -> Arena:
        """A new arena of ``size`` bytes (zero-filled, no memory used until written)."""
        fd = os.memfd_create("p2k-sp-arena", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
            return cls(fd, size)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def attach(cls, fd: int) -> Arena:
        """Map an arena received from a peer; OSError unless it is a memfd sealed as ``create``
        seals it (then it cannot shrink under our mapping)."""
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            if seals & SEALS != SEALS:
                raise OSError(0, "shared arena is not sealed")
            size = os.fstat(fd).st_size
            if size <= 0:
                raise OSError(0, "shared arena is empty")
            return cls(fd, size)
        except BaseException:
            os.close(fd)
            raise

    def send(self, sock: socket.socket, data: bytes) -> None:
        """Send ``data`` with the arena's descriptor attached (a blocking socket: all of it)."""
        sent = socket.send_fds(sock, [data], [self.fd])
        if sent < len(data):
            sock.sendall(data[sent:])

    def drop_fd(self) -> None:
        """Close the descriptor; the mapping stays (the server drops it once it has sent it)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        """Unmap; first give the pages back (MADV_REMOVE punches them out of the memfd), so a peer
        still holding the descriptor keeps no memory the server paid for."""
        if self.mm.closed:
            return
        try:
            self.mm.madvise(mmap.MADV_REMOVE)
        except (OSError, ValueError):
            pass
        self.view.release()
        try:
            self.mm.close()
        except BufferError:
            pass  # a slice is still alive somewhere: the mapping goes when it does
        self.drop_fd()


def recv_with_fd(sock: socket.socket, n: int) -> tuple[bytes, int | None]:
    """Up to ``n`` bytes and the one descriptor that came with them, if any (extra descriptors a
    peer attached are closed at once: they must not leak)."""
    # MSG_CMSG_CLOEXEC: a fork+exec in another thread must not inherit the descriptor
    # (socket.recv_fds would do, but before Python 3.12 it drops its flags argument).
    item = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(n, socket.CMSG_LEN(4 * item.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            item.frombytes(payload[:len(payload) - len(payload) % item.itemsize])
    fds = list(item)
    for extra in fds[1:]:
        os.close(extra)
    return data, (fds[0] if fds else None)
