"""One client of the server: its socket, its process in the kernel and the vnode handles it holds.

Who may do what (docs/protocol.md, "Credentials"): a connection starts as root in the kernel, as
NetBSD's rump_sp clients do — whoever can reach the socket is trusted, so the socket's permissions
(and ``-a``'s secret on tcp://) are the access control. With ``--peer-creds`` a non-root host peer
on unix:// starts as its own host uid/gid instead. From there a connection may only lower its
credentials: in its handshake (``uid``/``gid``/``groups``) and per call (a third element of the
request body), each checked with ``Cred.may_become``. Every call runs as a process of the kernel
with those credentials, so privileged calls are refused by the kernel's own checks, exactly as
they are for a local caller.

The handshake has a deadline of its own, counted over the whole exchange (not per read), so a
peer that trickles bytes cannot hold its slot longer than one that sends nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import p2k.sp.auth as auth
import p2k.sp.protocol as P
from p2k.sp.argcheck import check_args
from p2k.sp.handles import HandleTable
from p2k.sp.ops import (
    NAME_OF,
    OP_HALT,
    OP_HANDSHAKE,
    OP_PING,
    OP_SHM,
    OP_SHM_PREAD,
    OP_SHM_READ,
    OP_STATS,
    OP_SYSCTL,
    RB_DUMP,
    RB_HALT,
    RB_NOSYNC,
    RETURNS_VNODE,
)
from p2k.sp.shm import close_arena, open_arena, shm_read
from p2k.vfs.credprocs import CredProcs
from p2k.vfs.lwproc import RFCFDG, Cred

if TYPE_CHECKING:
    from p2k.hyper.shmem import Arena
    from p2k.sp.server import Server
    from p2k.vfs.syscalls import Syscalls

log = logging.getLogger("p2k.sp")

BIG_READ = 64 << 10
"""Socket reads from this size on go through a reply buffer of the server's pool (bufpool.py)."""


def parse_cred(value: Any) -> Cred:
    """``[uid, gid, groups]`` (or a dict with those keys) from the wire; ProtocolError if malformed."""
    if type(value) is dict:
        value = [value.get("uid") or 0, value.get("gid") or 0, value.get("groups", [])]
    if type(value) not in (list, tuple) or len(value) != 3 or type(value[2]) not in (list, tuple) \
            or len(value[2]) > 64:
        raise P.ProtocolError("malformed credentials")
    ids = (value[0], value[1], *value[2])
    if not all(type(x) is int and 0 <= x < 1 << 32 for x in ids):
        raise P.ProtocolError("malformed credentials")
    return Cred(value[0], value[1], tuple(sorted(set(value[2]))))


class Connection:
    def __init__(self, server: Server, sock: socket.socket, peer: str, cid: int,
                 peer_cred: tuple[int, int, int] | None = None) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.cid = cid
        self.peer_cred = peer_cred  # (pid, uid, gid) of a unix:// peer, from SO_PEERCRED
        self.sys: Syscalls | None = None
        self.procs: CredProcs | None = None  # per-call credentials: processes sharing our fd table
        self.handles = HandleTable(server.kernel.vcache, server.config.max_handles)
        self.established = False
        self.arena: Arena | None = None  # shared memory for bulk reads (p2k/sp/shm.py)
        self.lent: bytearray | None = None  # a reply buffer of the server's pool, for one call
        self.calls = 0

    # ---- the connection's life -------------------------------------------------------------------
    def run(self) -> None:
        srv = self.server
        try:
            challenge = auth.new_nonce() if srv.secret is not None else None
            self.sock.sendall(P.banner(server_version(), challenge))
            self._handshake(challenge, time.monotonic() + srv.config.handshake_timeout)
            self.sock.settimeout(None)
            rfile = self.sock.makefile("rb", buffering=1 << 16)
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
        except BlockingIOError:
            log.warning("connection %d (%s): does not read its replies; closing it", self.cid, self.peer)
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
            if not k.halted:
                self.handles.release_all()
                if self.procs is not None:
                    self.procs.close()
                if self.sys is not None:
                    self.sys.proc.exit()
            self.procs = None
            self.sys = None
        if self.arena is not None:
            close_arena(self.server, self.arena)
            self.arena = None
        try:
            self.sock.close()
        except OSError:
            pass
        self.server.forget(self)

    # ---- the handshake ---------------------------------------------------------------------------
    def _read_exact(self, n: int, deadline: float) -> bytes:
        """Exactly ``n`` bytes, never more (what follows belongs to the buffered reader), by the
        deadline; TimeoutError after it."""
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise P.ProtocolError("connection closed in the handshake")
            buf += chunk
        return bytes(buf)

    def _handshake(self, challenge: bytes | None, deadline: float) -> None:
        srv = self.server
        length, reqno, cls, code = P.parse_header(self._read_exact(P.HEADER_SIZE, deadline),
                                                  min(srv.config.max_frame, 1 << 16))
        body = self._read_exact(length, deadline)
        if cls != P.REQ or code != OP_HANDSHAKE:
            raise P.ProtocolError("the first frame must be a handshake")
        hello = P.decode(body)
        if not isinstance(hello, dict) or not isinstance(hello.get("version"), list | tuple):
            raise P.ProtocolError("malformed handshake")
        if not hello["version"] or hello["version"][0] != P.PROTOCOL_MAJOR:
            self._send_error(reqno, errno.EPROTONOSUPPORT, f"protocol {P.PROTOCOL_MAJOR}.x only")
            raise P.ProtocolError(f"client speaks protocol {hello['version']}")
        reply: dict[str, Any] = {}
        if challenge is not None:
            nonce = hello.get("nonce")
            if type(nonce) is not str or not 0 < len(nonce) <= 64 or \
                    not auth.check(srv.secret, b"client", challenge, nonce.encode(), hello.get("auth")):  # type: ignore[arg-type]
                self._send_error(reqno, errno.EACCES, "authentication failed")
                raise P.ProtocolError("authentication failed")
            reply["auth"] = auth.proof(srv.secret, b"server", challenge, nonce.encode())  # type: ignore[arg-type]
        base = srv.starting_cred(self.peer_cred)
        cred = base
        if hello.get("uid") is not None or hello.get("gid") is not None:
            cred = parse_cred(hello)
            if not base.may_become(cred):
                self._send_error(reqno, errno.EPERM, "credentials may only be lowered")
                raise P.ProtocolError(f"asked for uid {cred.uid} as uid {base.uid}")
        k = srv.kernel
        with k.lock:
            if k.halted:
                self._send_error(reqno, errno.ESHUTDOWN, "the kernel has halted")
                raise P.ProtocolError("handshake after halt")
            self.sys = k.newproc(RFCFDG, cred)
            self.sys.proc.fdt.limit = srv.config.max_fds
        reply.update(version=[P.PROTOCOL_MAJOR, P.PROTOCOL_MINOR], pid=self.sys.proc.pid,
                     max_frame=srv.config.max_frame, max_io=min(P.MAX_IO_CHUNK, srv.config.max_frame - 64),
                     uid=cred.uid, gid=cred.gid)
        # Counted as established before the client can know it is: otherwise a client that
        # connects again at once is admitted against a count that still calls us handshaking.
        srv.established(self)
        self._send(P.frame(reqno, P.RESP, 0, P.encode(reply)))
        log.info("connection %d (%s%s): process %d as uid %d, %s", self.cid, self.peer, self._peer_text(),
                 self.sys.proc.pid, cred.uid, hello.get("name"))

    def _peer_text(self) -> str:
        if self.peer_cred is None:
            return ""
        pid, uid, gid = self.peer_cred
        return f" pid {pid} uid {uid} gid {gid}"

    # ---- requests --------------------------------------------------------------------------------
    def _proc(self, cred: Any) -> Syscalls:
        """The process a call runs as: the connection's, or one with the call's credentials."""
        s = self.sys
        assert s is not None
        if cred is None:
            return s
        want = parse_cred(cred)
        if want == s.proc.cred:
            return s
        if not s.proc.cred.may_become(want):
            raise OSError(errno.EPERM, "credentials may only be lowered")
        if self.procs is None:
            self.procs = CredProcs(self.server.kernel, s.proc, umask=None)
        return self.procs.get(want)

    def _request(self, reqno: int, op: int, body: bytes) -> None:
        try:
            self._serve(reqno, op, body)
        finally:
            self._give_back()

    def _serve(self, reqno: int, op: int, body: bytes) -> None:
        call = P.decode(body)
        if type(call) not in (list, tuple) or len(call) not in (2, 3) or type(call[0]) not in (list, tuple) \
                or type(call[1]) is not dict:
            raise P.ProtocolError("a request body is [args, kwargs] or [args, kwargs, credentials]")
        args, kwargs = list(call[0]), call[1]
        self.calls += 1
        try:
            s = self._proc(call[2] if len(call) == 3 else None)
            name = NAME_OF.get(op)
            if name is not None:
                result = self._syscall(s, name, args, kwargs)
            elif op == OP_SHM_READ or op == OP_SHM_PREAD:
                with self.server.kernel.cpus:
                    result = shm_read(s, self.arena, args, op == OP_SHM_PREAD)
            elif op == OP_SHM:
                self.arena = open_arena(self.server, self.sock, reqno, self.arena)
                return
            elif op == OP_PING:
                result = args
            elif op == OP_STATS:
                result = self.server.state()
            elif op == OP_SYSCTL:
                result = s.sysctl(*args)
            elif op == OP_HALT:
                self._halt(s, reqno, *args)
                return
            else:
                raise OSError(errno.ENOSYS, f"no such call ({op})")
            # Encoded here, so that a result the codec cannot carry is an error reply, not a crash.
            reply = None if type(result) is bytes or self.lent is not None \
                else P.frame(reqno, P.RESP, 0, P.encode(result))
        except OSError as e:
            self._send_error(reqno, e.errno or errno.EIO, e.strerror or str(e), e.filename)
            return
        except (TypeError, ValueError, P.ProtocolError) as e:
            self._send_error(reqno, errno.EINVAL, f"bad arguments: {e}")
            return
        except Exception as e:  # a kernel bug must not take the server down with it
            log.exception("connection %d: %s failed", self.cid, NAME_OF.get(op, op))
            self._send_error(reqno, errno.EIO, f"internal error: {type(e).__name__}")
            return
        if reply is None:
            # The bulk of read traffic: header and payload go out without being copied together.
            prefix = P.HEADER.pack(5 + len(result), reqno, P.RESP, 0) + b"b" + len(result).to_bytes(4, "big")
            self._send(prefix, result)
        else:
            self._send(reply)

    def _syscall(self, s: Syscalls, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        handles = self.handles
        if name == "vrele":
            vp = handles.drop(args[0] if args else kwargs.get("vp"))
            return s.vrele(vp)
        if name == "vrelev":
            return handles.drop_many(args[0] if args else kwargs.get("handles"))
        handles.unwrap(args, kwargs)
        if name == "mount" and len(args) > 3 and isinstance(args[3], dict):
            args[3].pop("device", None)  # the kernel's own slot, filled from the fspec key
        if isinstance(kwargs.get("data"), dict):
            kwargs["data"].pop("device", None)
        check_args(name, args, kwargs)
        if name in RETURNS_VNODE:
            handles.room()
        if name in ("read", "pread") and len(args) > 1 and type(args[1]) is int:
            args[1] = min(args[1], P.MAX_IO_CHUNK)  # a short read, as a pipe would give
            if args[1] >= BIG_READ and not kwargs:
                buf = self.server.bufpool.take()
                if buf is not None:
                    self.lent = buf
                    dst = memoryview(buf)[:args[1]]
                    with self.server.kernel.cpus:
                        n = s.readinto(args[0], dst) if name == "read" else s.preadinto(args[0], dst, args[2])
                    return memoryview(buf)[:n]
        with self.server.kernel.cpus:
            result = getattr(s, name)(*args, **kwargs)
        return handles.wrap(result) if name in RETURNS_VNODE else result

    def _give_back(self) -> None:
        if self.lent is not None:
            self.server.bufpool.give(self.lent)
            self.lent = None

    def _halt(self, s: Syscalls, reqno: int, howto: int = 0) -> None:
        """reboot(2) from rump.halt: root only; dump, sync (unless RB_NOSYNC), halt; the reply goes
        out before the server stops, so the client learns the halt happened."""
        srv = self.server
        if type(howto) is not int:
            raise TypeError("howto must be an int")
        s.check_privilege("reboot")
        dump = None
        if howto & RB_DUMP:
            # NetBSD takes the dive here: a core, no sync. We write the state instead of a core.
            dump = srv.dump_state()
        srv.halt_kernel(sync=not howto & (RB_NOSYNC | RB_DUMP))
        self._send(P.frame(reqno, P.RESP, 0, P.encode(dump)))
        srv.request_stop(keep_process=bool(howto & RB_HALT) and not howto & RB_DUMP)

    # ---- sending ---------------------------------------------------------------------------------
    def _send_error(self, reqno: int, err: int, message: str, filename: Any = None) -> None:
        self._give_back()  # an error reply carries no data: the buffer is free before it goes
        self._send(error_frame(reqno, err, message, filename))

    def _send(self, *parts: bytes) -> None:
        """Blocking, but never forever: the socket's send timeout (SO_SNDTIMEO) ends a client
        that stops reading its replies (BlockingIOError), so its queued bytes stay bounded by the
        send buffer and its thread does not wait on it for ever."""
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


def error_frame(reqno: int, err: int, message: str, filename: Any = None) -> bytes:
    if not 0 < err < 65536:
        err = errno.EIO
    if not isinstance(filename, str | bytes):
        filename = None
    return P.frame(reqno, P.ERROR, err, P.encode([message, filename]))


def server_version() -> str:
    """p2k's version, for the banner."""
    import p2k

    return str(getattr(p2k, "__version__", "0"))


__all__ = ["Connection", "error_frame", "parse_cred", "server_version"]
