"""The remote client: ``connect(url)`` gives a ``Client`` whose ``.sys`` behaves like ``Kernel.sys``.

Same method names, same arguments, same results (``os.stat_result`` rebuilt here from the wire
fields), same ``OSError(errno, message)`` on failure, so code written against a local kernel — the
fs-utils commands, the FUSE bridge — runs unchanged against a server.

Several threads may share one client: each sends its request under a send lock, and whichever
waiting thread gets to the socket first reads replies for everybody, handing each to its owner by
request number (leader/follower). A lone caller thus pays for no thread switch at all, which is
most of a round trip's cost in Python.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import p2k.sp.auth as auth
import p2k.sp.protocol as P
from p2k.hyper.shmem import Arena, recv_with_fd
from p2k.sp.ops import (
    CONNECTION,
    OP_HALT,
    OP_HANDSHAKE,
    OP_OF,
    OP_PING,
    OP_SHM,
    OP_SHM_PREAD,
    OP_SHM_READ,
    OP_STATS,
    OP_SYSCTL,
    RB_DUMP,
    RB_HALT,
    RB_NOSYNC,
)
from p2k.sp.shm import SHM_MIN, ClientArena
from p2k.sp.url import parse_url

_RAW = 0  # not a wire class: marks a reply already reduced to its bytes payload
_RAW_MIN = 4096
SOCKET_BUFFER = 4 << 20
"""Socket buffers big enough for a whole read reply to be in flight at once, so that server and
client copy in parallel instead of taking turns on a small buffer."""


class ServerGone(ConnectionError):
    """The server closed the connection or broke the protocol; the client cannot be used again."""


class ServerRefused(ServerGone):
    """The server turned the connection away before the handshake (errno EBUSY: server busy)."""


class Client:
    def __init__(self, sock: socket.socket, *, name: str = "p2k", uid: int | None = None,
                 gid: int | None = None, groups: tuple[int, ...] = (), secret: bytes | None = None,
                 shm: bool = False) -> None:
        self._sock = sock
        self._rfile = sock.makefile("rb", buffering=1 << 16)
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._replies: dict[int, tuple[int, int, bytes]] = {}
        self._reqnos = itertools.count(1)
        self._dead: BaseException | None = None
        self._arena: ClientArena | None = None
        self.max_frame = P.DEFAULT_MAX_FRAME
        line = self._rfile.readline(P.BANNER_MAX)
        self.server_version = P.check_banner(line)
        hello: dict[str, Any] = {"version": [P.PROTOCOL_MAJOR, P.PROTOCOL_MINOR], "name": name}
        if uid is not None or gid is not None:
            hello.update(uid=uid or 0, gid=gid or 0, groups=list(groups))
        challenge = auth.banner_challenge(line)
        nonce = auth.new_nonce()
        if challenge is not None:
            if secret is None:
                raise OSError(errno.EACCES, "the server wants a secret (-a): set RUMP_AUTHFILE")
            hello.update(nonce=nonce.decode(), auth=auth.proof(secret, b"client", challenge, nonce))
        info = self._call(OP_HANDSHAKE, hello)
        if secret is not None and (challenge is None
                                   or not auth.check(secret, b"server", challenge, nonce, info.get("auth"))):
            raise OSError(errno.EACCES, "the server did not prove it holds the secret")
        self.pid: int = info["pid"]
        self.max_frame = info["max_frame"]
        self.max_io: int = info["max_io"]
        if shm:
            self._arena = self._open_arena()
        self.sys = RemoteSys(self)

    # ---- the shared arena (p2k/sp/shm.py) --------------------------------------------------------
    def _open_arena(self) -> ClientArena | None:
        """Ask for a shared arena; None (reads go over the socket) if the server has none to give.
        Called before any other call, so the reply is the next thing on the socket and nothing
        sits in the buffered reader: its first bytes are read here, with the descriptor."""
        self._sock.sendall(P.frame(next(self._reqnos), P.REQ, OP_SHM, P.encode([[], {}])))
        head, fd = recv_with_fd(self._sock, P.HEADER_SIZE)
        try:
            if not head:
                raise ServerGone(errno.EPIPE, "server closed the connection")
            head += self._rfile.read(P.HEADER_SIZE - len(head))
            if len(head) < P.HEADER_SIZE:
                raise ServerGone(errno.EPIPE, "server closed the connection")
            length, _, cls, _ = P.parse_header(head, self.max_frame + 64)
            body = self._rfile.read(length)
            if len(body) < length:
                raise ServerGone(errno.EPIPE, "server closed the connection")
            if cls != P.RESP or fd is None:
                return None  # EOPNOTSUPP, ENOMEM (budget), ENOSYS (an older server)
            arena = Arena.attach(fd)
            fd = None
        finally:
            if fd is not None:
                os.close(fd)
        arena.drop_fd()
        return ClientArena(arena)

    def read_shared(self, cred: list[Any] | None, fd: int, n: int, offset: int | None) -> bytes | None:
        """``read``/``pread`` through the arena; None when no room is free (read over the socket)."""
        arena = self._arena
        at = arena.take(n) if arena is not None else None
        if at is None:
            return None
        try:
            if offset is None:
                op, args = OP_SHM_READ, [fd, n, at]
            else:
                op, args = OP_SHM_PREAD, [fd, n, offset, at]
            got = self._call(op, [args, {}] if cred is None else [args, {}, cred])
            if type(got) is not int or not 0 <= got <= n:
                self._fail(ServerGone(errno.EPROTO, f"bad shared read count from server: {got!r}"))
            return arena.mm[at:at + got]  # type: ignore[union-attr]
        finally:
            arena.give(at, n)  # type: ignore[union-attr]

    # ---- calls -----------------------------------------------------------------------------------
    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run syscall ``name`` in the server as this client's process."""
        op = OP_OF.get(name)
        if op is None:
            raise OSError(errno.ENOSYS, f"{name}: not a remote call")
        return self._call(op, [args, kwargs])

    def call_as(self, cred: list[Any], name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``name`` with credentials ``[uid, gid, groups]`` (lower than or equal to the
        connection's, or EPERM): puffs's per-request credentials, over the wire."""
        op = OP_OF.get(name)
        if op is None:
            raise OSError(errno.ENOSYS, f"{name}: not a remote call")
        return self._call(op, [args, kwargs, cred])

    def sys_as(self, uid: int, gid: int, groups: tuple[int, ...] = ()) -> RemoteSys:
        """A ``sys`` whose every call runs as ``uid``/``gid``/``groups`` in the server."""
        return RemoteSys(self, [uid, gid, list(groups)])

    def _call(self, op: int, payload: Any) -> Any:
        reqno = next(self._reqnos)
        body = P.encode(payload)
        if len(body) > self.max_frame:
            raise OSError(errno.E2BIG, f"request of {len(body)} bytes exceeds the frame limit")
        data = P.frame(reqno, P.REQ, op, body)
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as e:
            if op == OP_HANDSHAKE:
                self._read_frame()  # a server that refused us said why before it closed: ServerRefused
            self._fail(ServerGone(errno.EPIPE, f"server connection lost: {os.strerror(e.errno or errno.EPIPE)}"))
        cls, code, reply = self._wait(reqno)
        if cls == P.ERROR:
            msg, filename = _error_parts(reply)
            raise OSError(code, msg, filename) if filename is not None else OSError(code, msg)
        if cls == _RAW:
            return reply
        try:
            return P.decode(reply)
        except P.ProtocolError as e:
            self._fail(ServerGone(errno.EPROTO, f"bad reply from server: {e}"))

    def _wait(self, reqno: int) -> tuple[int, int, bytes]:
        cond = self._cond
        while True:
            with cond:
                while True:
                    got = self._replies.pop(reqno, None)
                    if got is not None:
                        return got
                    if self._dead is not None:
                        raise self._dead
                    if not self._reading:
                        self._reading = True
                        break
                    cond.wait()
            try:
                rno, cls, code, body = self._read_frame()
            except BaseException as e:
                with cond:
                    self._reading = False
                    lost = ServerGone(errno.EPIPE, f"server connection lost: {e}")
                    self._dead = e if isinstance(e, ServerGone) else lost
                    cond.notify_all()
                raise self._dead from None
            with cond:
                self._reading = False
                if rno == reqno:
                    cond.notify_all()  # let another waiter take over the socket
                    return cls, code, body
                self._replies[rno] = (cls, code, body)
                cond.notify_all()

    def _read_frame(self) -> tuple[int, int, int, bytes]:
        hdr = self._rfile.read(P.HEADER_SIZE)
        if len(hdr) < P.HEADER_SIZE:
            raise ServerGone(errno.EPIPE, "server closed the connection")
        length, reqno, cls, code = P.parse_header(hdr, self.max_frame + 64)
        if reqno == CONNECTION and cls == P.ERROR:
            msg, _ = _error_parts(self._rfile.read(length))
            raise ServerRefused(code, msg)
        if cls == P.RESP and length > _RAW_MIN:
            # A read's payload (a lone bytes value) is read straight into the bytes object handed
            # to the caller: no second copy of what may be megabytes.
            head = self._rfile.read(5)
            if len(head) == 5 and head[:1] == b"b" and int.from_bytes(head[1:], "big") == length - 5:
                body = self._rfile.read(length - 5)
                if len(body) < length - 5:
                    raise ServerGone(errno.EPIPE, "server closed the connection inside a reply")
                return reqno, _RAW, code, body
            body = head + self._rfile.read(length - len(head))
        else:
            body = self._rfile.read(length) if length else b""
        if len(body) < length:
            raise ServerGone(errno.EPIPE, "server closed the connection inside a reply")
        return reqno, cls, code, body

    def _fail(self, e: ServerGone) -> Any:
        with self._cond:
            self._dead = self._dead or e
            self._cond.notify_all()
        raise e

    # ---- control ---------------------------------------------------------------------------------
    def ping(self, *args: Any) -> Any:
        return self._call(OP_PING, [list(args), {}])

    def stats(self) -> dict[str, int]:
        """The server kernel's counters (``Kernel.stats()``) plus connection figures."""
        return self._call(OP_STATS, [[], {}])  # type: ignore[no-any-return]

    def sysctl(self, name: str, value: int | None = None) -> int:
        """Read a node of the server's sysctl tree, or set it (root in the kernel only)."""
        return self._call(OP_SYSCTL, [[name] if value is None else [name, value], {}])  # type: ignore[no-any-return]

    def halt(self, sync: bool = True, keep_process: bool = False, dump: bool = False) -> str | None:
        """reboot(2) as rump.halt sends it: sync unless told not to, halt the kernel, and make the
        server exit unless ``keep_process``. With ``dump`` the server writes its state (returned
        here too) and, like NetBSD's RB_DUMP, skips the sync."""
        howto = (0 if sync else RB_NOSYNC) | (RB_HALT if keep_process else 0) | (RB_DUMP if dump else 0)
        try:
            return self._call(OP_HALT, [[howto], {}])  # type: ignore[no-any-return]
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._rfile.close()
        self._sock.close()
        if self._arena is not None:
            self._arena.close()
            self._arena = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_parts(body: bytes) -> tuple[str, Any]:
    try:
        msg, filename = P.decode(body)
        return str(msg), filename
    except (P.ProtocolError, ValueError, TypeError):
        return "remote error", None


def _method(name: str) -> Callable[..., Any]:
    op = OP_OF[name]

    def call(self: RemoteSys, *args: Any, **kwargs: Any) -> Any:
        return self._client._call(op, [args, kwargs] if self._cred is None else [args, kwargs, self._cred])

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``{name}`` run in the server, with the local ``Syscalls.{name}``'s arguments and result."
    return call


class RemoteSys:
    """The ``k.sys`` of a remote process. Vnode results are opaque ``Handle`` objects, usable
    wherever the local call takes a vnode (``dir_fd=``, ``vstat``, ``vopen``, ``vrele``)."""

    def __init__(self, client: Client, cred: list[Any] | None = None) -> None:
        self._client = client
        self._cred = cred

    def _do(self, name: str, *args: Any) -> Any:
        if self._cred is None:
            return self._client.call(name, *args)
        return self._client.call_as(self._cred, name, *args)

    def read(self, fd: int, n: int) -> bytes:
        """At most ``max_io`` bytes per call: a short read, which callers of read(2) expect.
        Through the shared arena when there is one (p2k/sp/shm.py)."""
        n = min(n, self._client.max_io)
        if n >= SHM_MIN and self._client._arena is not None:
            data = self._client.read_shared(self._cred, fd, n, None)
            if data is not None:
                return data
        return self._do("read", fd, n)  # type: ignore[no-any-return]

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        n = min(n, self._client.max_io)
        if n >= SHM_MIN and self._client._arena is not None and type(offset) is int:
            data = self._client.read_shared(self._cred, fd, n, offset)
            if data is not None:
                return data
        return self._do("pread", fd, n, offset)  # type: ignore[no-any-return]

    def reboot(self, howto: int = 0) -> None:
        """reboot(2) from a remote process halts the server's kernel, as rump_sys_reboot from a
        rump_sp client does (this is what rump.halt sends); the connection ends with it."""
        self._client._call(OP_HALT, [[howto], {}] if self._cred is None else [[howto], {}, self._cred])

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> int:
        mv = memoryview(data).cast("B")
        step = self._client.max_io
        if len(mv) <= step:
            return self._do("write", fd, mv)  # type: ignore[no-any-return]
        done = 0
        while done < len(mv):
            n = self._do("write", fd, mv[done:done + step])
            done += n
            if n == 0:
                break
        return done

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        mv = memoryview(data).cast("B")
        step = self._client.max_io
        done = 0
        while True:
            n = self._do("pwrite", fd, mv[done:done + step], offset + done)
            done += n
            if n == 0 or done >= len(mv):
                return done


for _name in OP_OF:
    if not hasattr(RemoteSys, _name):
        setattr(RemoteSys, _name, _method(_name))


def connect(url: str | None = None, *, name: str = "p2k", uid: int | None = None, gid: int | None = None,
            groups: tuple[int, ...] = (), timeout: float | None = 30.0, secret: bytes | None = None,
            shm: bool | None = None) -> Client:
    """Connect to the server at ``url`` (default: ``$RUMP_SERVER``) and say hello.

    ``uid``/``gid`` ask for a process with those credentials instead of the connection's starting
    ones (a server only ever lowers privileges). ``secret`` (default: the contents of the file
    ``$RUMP_AUTHFILE``, if set) answers a server started with ``-a``. ``timeout`` bounds the
    connect and the handshake only. A server that cannot take another client says so:
    OSError(EBUSY, "server busy").

    ``shm`` (default: on for ``unix://`` unless ``$P2K_SHM`` is ``0``) asks the server for a
    shared-memory arena that bulk reads then travel through (p2k/sp/shm.py).
    """
    if url is None:
        url = os.environ.get("RUMP_SERVER")
        if not url:
            raise OSError(errno.ENOENT, "RUMP_SERVER not set")
    if secret is None and os.environ.get("RUMP_AUTHFILE"):
        secret = auth.read_secret(os.environ["RUMP_AUTHFILE"])
    a = parse_url(url)
    sock = socket.socket(a.family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if a.any_address:
            sock.close()
            sock = socket.create_connection(("localhost", a.address[1]), timeout=timeout)  # type: ignore[index]
        else:
            sock.connect(a.address)
        if a.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        if shm is None:
            shm = a.family == socket.AF_UNIX and os.environ.get("P2K_SHM", "1") != "0"
        client = Client(sock, name=name, uid=uid, gid=gid, groups=groups, secret=secret, shm=shm)
    except P.ProtocolError as e:
        sock.close()
        raise OSError(errno.EPROTO, str(e)) from None
    except ServerRefused as e:
        sock.close()
        raise OSError(e.errno, e.strerror) from None
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return client
