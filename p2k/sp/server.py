"""The syscall server: a kernel served to other processes over ``unix://`` or ``tcp://`` (rump_sp(7)).

One thread per connection (``connection.py``) reads frames and runs the calls they carry; a call
runs holding one of the kernel's ``ncpu`` CPU tokens, so at most ``ncpu`` calls execute at once
however many clients there are. (Threads rather than an event loop: every call ends up under the
kernel's big lock anyway, and a blocking read per connection costs far less per round trip than a
hand-off between an event loop and a worker pool — which is what makes 10,000 remote stats a second
reachable.)

Each connection is a process of its own in the kernel (``newproc(RFCFDG)``: own fd table, cwd,
credentials) plus a table of vnode handles it was given. When the connection ends, however it
ends — clean close, ``kill -9`` of the client in the middle of a write, a malformed frame — the
call in progress finishes, then the handles are released and the process exits, which closes its
files; nothing it held stays behind.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import p2k.sp.protocol as P
from p2k.hyper.hostcred import peer_cred, proc_groups
from p2k.sp.bufpool import BufferPool
from p2k.sp.connection import Connection, error_frame, server_version
from p2k.sp.ops import CONNECTION
from p2k.sp.url import ServerAddress, parse_url
from p2k.vfs.lwproc import ROOT_CRED, Cred

if TYPE_CHECKING:
    from p2k.kernel import Kernel

log = logging.getLogger("p2k.sp")


@dataclass
class ServerConfig:
    """Limits that keep one client from starving the others or the host (docs/protocol.md)."""

    max_conns: int = 256  # established clients (rump_sp's own limit)
    max_handshakes: int = 32  # connections still in their handshake, counted apart
    handshake_timeout: float = 3.0  # for the whole handshake, not per read
    max_fds: int = 1024  # open files per connection
    max_handles: int = 65536  # vnode handles per connection
    max_frame: int = P.DEFAULT_MAX_FRAME
    reply_buffer: int = 4 << 20  # queued reply bytes per connection (SO_SNDBUF)
    request_buffer: int = 4 << 20  # unread request bytes per connection (SO_RCVBUF)
    reply_timeout: float = 30.0  # a client that reads none of a reply for this long is dropped
    socket_mode: int = 0o600
    socket_group: int | None = None  # a host gid the unix socket is given to (with mode 0660)
    peer_creds: bool = False  # a non-root unix:// peer starts as its own host uid/gid
    secret: bytes | None = None  # -a FILE: the shared secret clients must prove they hold
    shm_arena: int = 16 << 20  # a unix:// client's shared-memory arena for bulk reads (0: none)
    shm_budget: int = 256 << 20  # all arenas together; past it clients read over the socket
    read_buffers: int = 4  # reply buffers of MAX_IO_CHUNK for socket reads (p2k/sp/bufpool.py)


class Server:
    """Listens on a URL and serves ``kernel`` to whoever connects (subject to the socket's mode)."""

    def __init__(self, kernel: Kernel, url: str, config: ServerConfig | None = None) -> None:
        self.kernel = kernel
        self.url = url
        self.config = config or ServerConfig()
        self.address: ServerAddress = parse_url(url)
        self.listener: socket.socket | None = None
        self.socket_path: str | None = None
        self.conns: set[Connection] = set()
        self.handshaking = 0  # of self.conns, those not yet established
        self.refused = 0
        self.shm_used = 0  # bytes of shared arenas handed out (p2k/sp/shm.py)
        self.bufpool = BufferPool(self.config.read_buffers, P.MAX_IO_CHUNK)
        self.conns_lock = threading.Lock()
        self.secret = self.config.secret
        self.stopping = False
        self.keep_process = False
        self._cids = itertools.count(1)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.on_stop: Callable[[], None] | None = None

    # ---- listening -------------------------------------------------------------------------------
    def bind(self) -> None:
        """Create the listening socket; after this returns, clients can connect."""
        a = self.address
        sock = socket.socket(a.family, socket.SOCK_STREAM)
        try:
            if a.is_unix:
                assert isinstance(a.address, str)
                path = os.path.abspath(a.address)
                # Bound with a tight umask and chmod-ed before listen(): nobody can connect in
                # between, since a socket accepts connections only once it listens.
                old = os.umask(0o177)
                try:
                    sock.bind(path)
                finally:
                    os.umask(old)
                self.socket_path = path
                if self.config.socket_group is not None:
                    os.chown(path, -1, self.config.socket_group)
                os.chmod(path, self.config.socket_mode)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if a.any_address:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(a.address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.listen(128)
        except OSError as e:
            sock.close()
            if a.any_address and e.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                self.address = ServerAddress(socket.AF_INET, ("0.0.0.0", a.address[1]), a.url)  # type: ignore[index]
                return self.bind()
            raise
        self.listener = sock

    def serve_forever(self) -> None:
        """Accept until ``request_stop``; each client gets a thread of its own."""
        assert self.listener is not None
        lsock = self.listener
        while not self.stopping:
            ready, _, _ = select.select([lsock.fileno(), self._wake_r], [], [])
            if self._wake_r in ready or self.stopping:
                break
            try:
                csock, addr = lsock.accept()
            except OSError:
                continue
            self._admit(csock, addr)
        self.close_listener()

    def _admit(self, csock: socket.socket, addr: Any) -> None:
        """Take a new connection or refuse it at once, from the accept loop: handshakes have a
        quota of their own, so idle or trickling peers cannot lock out the clients that are
        established (or that would be, once through their handshake)."""
        c = self.config
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and addr else "unix"
        with self.conns_lock:
            established = len(self.conns) - self.handshaking
            busy = self.handshaking >= c.max_handshakes or established >= c.max_conns
            if not busy:
                self.handshaking += 1
        if busy:
            self._refuse(csock, peer, established)
            return
        try:
            if self.address.family != socket.AF_UNIX:
                csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            csock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, c.request_buffer)
            csock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, c.reply_buffer)
            secs = int(c.reply_timeout)
            csock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                             struct.pack("ll", secs, int((c.reply_timeout - secs) * 1e6)))
        except OSError:
            pass
        conn = Connection(self, csock, peer, next(self._cids), peer_cred(csock))
        with self.conns_lock:
            self.conns.add(conn)
        threading.Thread(target=conn.run, name=f"sp-conn-{conn.cid}", daemon=True).start()

    def _refuse(self, csock: socket.socket, peer: str, established: int) -> None:
        """The banner and an EBUSY error frame, so the client can say "server busy" instead of
        guessing; sent without blocking (both fit in any socket buffer), then closed."""
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("refusing a connection from %s: server busy (%d clients, %d in handshake; %d refused)",
                        peer, established, self.handshaking, self.refused)
        try:
            csock.send(P.banner(server_version()) + error_frame(CONNECTION, errno.EBUSY, "server busy"),
                       socket.MSG_DONTWAIT)
        except OSError:
            pass
        csock.close()

    def established(self, conn: Connection) -> None:
        with self.conns_lock:
            if not conn.established:
                conn.established = True
                self.handshaking -= 1

    def forget(self, conn: Connection) -> None:
        with self.conns_lock:
            if conn in self.conns:
                self.conns.discard(conn)
                if not conn.established:
                    self.handshaking -= 1
                    conn.established = True

    def reserve_shm(self, size: int) -> bool:
        with self.conns_lock:
            if self.shm_used + size > self.config.shm_budget:
                return False
            self.shm_used += size
            return True

    def release_shm(self, size: int) -> None:
        with self.conns_lock:
            self.shm_used -= size

    def starting_cred(self, peer: tuple[int, int, int] | None) -> Cred:
        """Root, as rump_sp gives every client; with ``peer_creds`` a non-root unix:// peer is
        its own host uid, gid and groups inside the kernel too."""
        if not self.config.peer_creds or peer is None or peer[1] == 0:
            return ROOT_CRED
        pid, uid, gid = peer
        return Cred(uid, gid, proc_groups(pid))

    # ---- stopping --------------------------------------------------------------------------------
    def request_stop(self, keep_process: bool = False) -> None:
        """Stop accepting and drop every client; safe from a signal handler or any thread."""
        self.keep_process = self.keep_process or keep_process
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def halt_kernel(self, sync: bool = True) -> None:
        """Sync (unless told not to), unmount everything and release the devices; once."""
        try:
            self.kernel.halt(sync=sync)
        except Exception as e:  # a driver failing to unmount must not keep the process from exiting
            log.error("halt: %s; halting without sync", e)
            try:
                self.kernel.halt(sync=False)
            except Exception:
                log.exception("halt without sync failed too")

    def close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.socket_path is not None:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
            self.socket_path = None

    def drop_clients(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- state -----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Kernel statistics plus the server's own figures (what ``rump.halt -d`` writes out)."""
        k = self.kernel
        st: dict[str, Any] = dict(k.stats()) if not k.halted else {"halted": 1}
        with self.conns_lock:
            st["connections"] = len(self.conns)
            st["handshaking"] = self.handshaking
            st["refused"] = self.refused
            st["shm_bytes"] = self.shm_used
            st["handles"] = sum(len(c.handles) for c in self.conns)
            st["open_files"] = sum(len(c.sys.proc.fdt.files)
                                   for c in self.conns if c.sys is not None)
        st["pid"] = os.getpid()
        return st

    def dump_state(self) -> str:
        k = self.kernel
        with k.lock:
            with self.conns_lock:
                peers = [{"connection": c.cid, "peer": c.peer, "peer_cred": c.peer_cred,
                          "uid": c.sys.proc.cred.uid if c.sys is not None else None} for c in self.conns]
            state: dict[str, Any] = {"state": self.state(), "url": self.url, "clients": peers,
                                     "mounts": [(type(m).__name__, m.mountpoint_path, m.flags) for m in k.mounts],
                                     "etfs": sorted(k.etfs.keys())}
        # Returned to the client (rump.halt -d prints it) and logged; never written into the
        # working directory, which may be anybody's and is not the server's to litter.
        text = json.dumps(state, indent=1, default=str)
        log.warning("state dump:\n%s", text)
        return text


def is_loopback(address: ServerAddress) -> bool:
    """Whether a tcp:// address is reachable from this host only."""
    if address.is_unix:
        return True
    if address.any_address:
        return False
    import ipaddress

    host = address.address[0]  # type: ignore[index]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
