"""The syscall server: a kernel served to other processes over ``unix://`` or ``tcp://`` (rump_sp(7)).

One thread per connection reads frames and runs the calls they carry; a call runs holding one of
the kernel's ``ncpu`` CPU tokens, so at most ``ncpu`` calls execute at once however many clients
there are. (Threads rather than an event loop: every call ends up under the kernel's big lock
anyway, and a blocking read per connection costs far less per round trip than a hand-off between
an event loop and a worker pool — which is what makes 10,000 remote stats a second reachable.)

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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from p2k.sp import protocol as P
from p2k.sp.argcheck import check_args
from p2k.sp.bridgeops import BRIDGE_OPS
from p2k.sp.ops import (
    NAME_OF,
    OP_HALT,
    OP_HANDSHAKE,
    OP_PING,
    OP_STATS,
    OP_SYSCTL,
    RB_DUMP,
    RB_HALT,
    RB_NOSYNC,
    RETURNS_VNODE,
)
from p2k.sp.url import ServerAddress, parse_url
from p2k.vfs.lwproc import RFCFDG, Cred
from p2k.vfs.vnode import Vnode

if TYPE_CHECKING:
    from p2k.kernel import Kernel
    from p2k.vfs.syscalls import Syscalls

log = logging.getLogger("p2k.sp")


@dataclass
class ServerConfig:
    """Limits that keep one client from starving the others or the host."""

    max_conns: int = 256  # rump_sp's own limit on clients
    max_fds: int = 1024  # open files per connection
    max_handles: int = 65536  # vnode handles per connection
    max_frame: int = P.DEFAULT_MAX_FRAME
    handshake_timeout: float = 10.0  # a peer that never says hello does not hold a slot forever
    socket_mode: int = 0o600


class Connection:
    """One client: its socket, its process in the kernel and the vnode handles it holds."""

    def __init__(self, server: Server, sock: socket.socket, peer: str, cid: int) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.cid = cid
        self.sys: Syscalls | None = None
        self.handles: dict[int, Vnode] = {}
        self.next_handle = itertools.count(1)
        self.calls = 0

    # ---- the connection's life -------------------------------------------------------------------
    def run(self) -> None:
        srv = self.server
        try:
            self.sock.sendall(P.banner(_version()))
            self.sock.settimeout(srv.config.handshake_timeout)
            rfile = self.sock.makefile("rb", buffering=1 << 16)
            self._handshake(rfile)
            self.sock.settimeout(None)
            while not srv.stopping:
                hdr = rfile.read(P.HEADER_SIZE)
                if not hdr:
                    return  # clean close between frames
                if len(hdr) < P.HEADER_SIZE:
                    raise P.ProtocolError("connection closed inside a frame header")
                length, reqno, cls, code = P.parse_header(hdr, srv.config.max_frame)
                body = rfile.read(length) if length else b""
                if len(body) < length:
                    raise P.ProtocolError(f"connection closed inside a frame ({len(body)} of {length} bytes)")
                if cls != P.REQ:
                    raise P.ProtocolError(f"client sent a frame of class {cls}")
                self._request(reqno, code, body)
        except P.ProtocolError as e:
            log.warning("connection %d (%s): protocol error: %s; closing it", self.cid, self.peer, e)
        except TimeoutError:
            log.warning("connection %d (%s): no handshake in time; closing it", self.cid, self.peer)
        except OSError as e:
            if not srv.stopping:
                log.info("connection %d (%s): %s", self.cid, self.peer, os.strerror(e.errno or errno.EIO))
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("connection %d (%s): internal error; closing it", self.cid, self.peer)
        finally:
            self.release()

    def release(self) -> None:
        """Give back what the client held; safe to call twice, and after the kernel halted."""
        k = self.server.kernel
        with k.lock:
            handles, self.handles = self.handles, {}
            if not k.halted:
                for vp in handles.values():
                    k.vcache.vrele(vp)
                if self.sys is not None:
                    self.sys.proc.exit()
        try:
            self.sock.close()
        except OSError:
            pass
        self.server.forget(self)

    def _handshake(self, rfile: Any) -> None:
        srv = self.server
        hdr = rfile.read(P.HEADER_SIZE)
        if len(hdr) < P.HEADER_SIZE:
            raise P.ProtocolError("connection closed before the handshake")
        length, reqno, cls, code = P.parse_header(hdr, min(srv.config.max_frame, 1 << 16))
        body = rfile.read(length)
        if cls != P.REQ or code != OP_HANDSHAKE or len(body) < length:
            raise P.ProtocolError("the first frame must be a handshake")
        hello = P.decode(body)
        if not isinstance(hello, dict) or not isinstance(hello.get("version"), list | tuple):
            raise P.ProtocolError("malformed handshake")
        if not hello["version"] or hello["version"][0] != P.PROTOCOL_MAJOR:
            self._send_error(reqno, errno.EPROTONOSUPPORT, f"protocol {P.PROTOCOL_MAJOR}.x only")
            raise P.ProtocolError(f"client speaks protocol {hello['version']}")
        cred = None
        uid, gid, groups = hello.get("uid"), hello.get("gid"), hello.get("groups", ())
        if uid is not None or gid is not None:
            ids = (uid or 0, gid or 0, *groups) if type(groups) in (list, tuple) and len(groups) <= 64 else (-1,)
            if not all(type(x) is int and 0 <= x < 1 << 32 for x in ids):
                raise P.ProtocolError("malformed credentials")
            cred = Cred(uid or 0, gid or 0, tuple(groups))
        k = srv.kernel
        with k.lock:
            if k.halted:
                self._send_error(reqno, errno.ESHUTDOWN, "the kernel has halted")
                raise P.ProtocolError("handshake after halt")
            self.sys = k.newproc(RFCFDG, cred)
            self.sys.proc.fdt.limit = srv.config.max_fds
        reply = {"version": [P.PROTOCOL_MAJOR, P.PROTOCOL_MINOR], "pid": self.sys.proc.pid,
                 "max_frame": srv.config.max_frame, "max_io": min(P.MAX_IO_CHUNK, srv.config.max_frame - 64)}
        self._send(P.frame(reqno, P.RESP, 0, P.encode(reply)))
        log.debug("connection %d (%s): process %d, %s", self.cid, self.peer, self.sys.proc.pid, hello.get("name"))

    # ---- requests --------------------------------------------------------------------------------
    def _request(self, reqno: int, op: int, body: bytes) -> None:
        call = P.decode(body)
        if type(call) not in (list, tuple) or len(call) != 2 or type(call[0]) not in (list, tuple) \
                or type(call[1]) is not dict:
            raise P.ProtocolError("a request body is [args, kwargs]")
        args, kwargs = list(call[0]), call[1]
        self.calls += 1
        try:
            name = NAME_OF.get(op)
            if name is not None:
                result = self._syscall(name, args, kwargs)
            elif op == OP_PING:
                result = args
            elif op == OP_STATS:
                result = self.server.state()
            elif op == OP_SYSCTL:
                if len(args) > 1 and not self.sys.proc.cred.is_root:  # type: ignore[union-attr]
                    raise OSError(errno.EPERM, "only root may change kernel parameters")
                result = self.server.kernel.sysctl(*args)
            elif op == OP_HALT:
                self._halt(reqno, *args)
                return
            else:
                raise OSError(errno.ENOSYS, f"no such call ({op})")
            # Encoded here, so that a result the codec cannot carry is an error reply, not a crash.
            body = None if type(result) is bytes else P.frame(reqno, P.RESP, 0, P.encode(result))
        except OSError as e:
            self._send_error(reqno, e.errno or errno.EIO, e.strerror or str(e), e.filename)
            return
        except (TypeError, ValueError) as e:
            self._send_error(reqno, errno.EINVAL, f"bad arguments: {e}")
            return
        except Exception as e:  # a kernel bug must not take the server down with it
            log.exception("connection %d: %s failed", self.cid, NAME_OF.get(op, op))
            self._send_error(reqno, errno.EIO, f"internal error: {type(e).__name__}")
            return
        if body is None:
            # The bulk of read traffic: header and payload go out without being copied together.
            prefix = P.HEADER.pack(5 + len(result), reqno, P.RESP, 0) + b"b" + len(result).to_bytes(4, "big")
            self._send(prefix, result)
        else:
            self._send(body)

    def _syscall(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        sys = self.sys
        assert sys is not None
        if name == "vrele":
            return self._drop_handle(args[0] if args else kwargs.get("vp"))
        if name == "vrelev":
            return BRIDGE_OPS[name](self, args, kwargs)
        args = [self._vnode(a) if type(a) is P.Handle else a for a in args]
        for key, value in kwargs.items():
            if type(value) is P.Handle:
                kwargs[key] = self._vnode(value)
        bridge_op = BRIDGE_OPS.get(name)
        if bridge_op is not None:
            with self.server.kernel.cpus:
                return bridge_op(self, args, kwargs)
        if name == "mount" and len(args) > 3 and isinstance(args[3], dict):
            args[3].pop("device", None)  # the kernel's own slot, filled from the fspec key
        if isinstance(kwargs.get("data"), dict):
            kwargs["data"].pop("device", None)
        check_args(name, args, kwargs)
        if name in RETURNS_VNODE and len(self.handles) >= self.server.config.max_handles:
            raise OSError(errno.EMFILE, "too many vnode handles on this connection")
        if name in ("read", "pread") and len(args) > 1 and type(args[1]) is int:
            args[1] = min(args[1], P.MAX_IO_CHUNK)  # a short read, as a pipe would give
        with self.server.kernel.cpus:
            result = getattr(sys, name)(*args, **kwargs)
        if name in RETURNS_VNODE:
            hid = next(self.next_handle)
            self.handles[hid] = result
            return P.Handle(hid)
        return result

    def _vnode(self, h: P.Handle) -> Vnode:
        vp = self.handles.get(h.id)
        if vp is None:
            raise OSError(errno.EBADF, f"no vnode handle {h.id} on this connection")
        return vp

    def _drop_handle(self, h: Any) -> None:
        vp = self.handles.pop(h.id, None) if type(h) is P.Handle else None
        if vp is None:
            raise OSError(errno.EBADF, "not a vnode handle of this connection")
        assert self.sys is not None
        self.sys.vrele(vp)

    def _halt(self, reqno: int, howto: int = 0) -> None:
        """reboot(2) from rump.halt: dump, sync (unless RB_NOSYNC), halt; the reply goes out before
        the server stops, so the client learns the halt happened."""
        srv = self.server
        if type(howto) is not int:
            raise TypeError("howto must be an int")
        dump = None
        if howto & RB_DUMP:
            # NetBSD takes the dive here: a core, no sync. We write the state instead of a core.
            dump = srv.dump_state()
        srv.halt_kernel(sync=not howto & (RB_NOSYNC | RB_DUMP))
        self._send(P.frame(reqno, P.RESP, 0, P.encode(dump)))
        srv.request_stop(keep_process=bool(howto & RB_HALT) and not howto & RB_DUMP)

    # ---- sending ---------------------------------------------------------------------------------
    def _send_error(self, reqno: int, err: int, message: str, filename: Any = None) -> None:
        if not 0 < err < 65536:
            err = errno.EIO
        if not isinstance(filename, str | bytes):
            filename = None
        self._send(P.frame(reqno, P.ERROR, err, P.encode([message, filename])))

    def _send(self, *parts: bytes) -> None:
        if len(parts) == 1:
            self.sock.sendall(parts[0])
            return
        views = [memoryview(p) for p in parts]
        while views:
            sent = self.sock.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if views and sent:
                views[0] = views[0][sent:]


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
        self.conns_lock = threading.Lock()
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
            ready, _, _ = select.select([lsock, self._wake_r], [], [])
            if self._wake_r in ready or self.stopping:
                break
            try:
                csock, addr = lsock.accept()
            except OSError:
                continue
            self._admit(csock, addr)
        self.close_listener()

    def _admit(self, csock: socket.socket, addr: Any) -> None:
        if self.address.family != socket.AF_UNIX:
            csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            csock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)  # see p2k.sp.client.SOCKET_BUFFER
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else "unix"
        with self.conns_lock:
            if len(self.conns) >= self.config.max_conns:
                log.warning("refusing a connection from %s: %d clients already", peer, len(self.conns))
                csock.close()
                return
            conn = Connection(self, csock, peer, next(self._cids))
            self.conns.add(conn)
        threading.Thread(target=conn.run, name=f"sp-conn-{conn.cid}", daemon=True).start()

    def forget(self, conn: Connection) -> None:
        with self.conns_lock:
            self.conns.discard(conn)

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
            st["handles"] = sum(len(c.handles) for c in self.conns)
            st["open_files"] = sum(len(c.sys.proc.fdt.files)
                                   for c in self.conns if c.sys is not None)
        st["pid"] = os.getpid()
        return st

    def dump_state(self) -> str:
        k = self.kernel
        with k.lock:
            state: dict[str, Any] = {"state": self.state(), "url": self.url,
                                     "mounts": [(type(m).__name__, m.mountpoint_path, m.flags) for m in k.mounts],
                                     "etfs": sorted(k.etfs.keys())}
        # Returned to the client (rump.halt -d prints it) and logged; never written into the
        # working directory, which may be anybody's and is not the server's to litter.
        text = json.dumps(state, indent=1, default=str)
        log.warning("state dump:\n%s", text)
        return text


def _version() -> str:
    import p2k

    return str(getattr(p2k, "__version__", "0"))
