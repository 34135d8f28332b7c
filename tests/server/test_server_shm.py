"""Bulk reads through the shared-memory arena (p2k/sp/shm.py) against a live server: the data is
what was written, over many calls and at odd sizes and offsets, with and without the arena, from
several threads at once; a hostile client can neither shrink the arena under the server nor make
it write outside it; a connection that dies in the middle of reads costs nothing that stays."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_harness import ServerProc, start

import p2k
from p2k.client import Client, ServerGone, connect
from p2k.hyper.shmem import Arena, recv_with_fd
from p2k.sp import protocol as P
from p2k.sp.ops import OP_HANDSHAKE, OP_OF, OP_SHM, OP_SHM_PREAD, OP_SHM_READ
from p2k.sp.server import Server, ServerConfig
from p2k.sp.shm import ClientArena

MiB = 1 << 20


def _pattern(size: int) -> bytes:
    """Data in which every 8-byte word names its own offset: a piece read from the wrong place,
    or twice, or shifted, cannot pass for the right one."""
    return array("Q", range(0, size, 8)).tobytes()[:size]


@pytest.fixture
def inproc(tmp_path: Path) -> Iterator[Server]:
    """A server in this process (so its arena accounting can be looked at) with a tmpfs on /mnt
    holding /mnt/f: 20 MiB + 12,345 bytes of pattern, then a 3 MiB hole, then 100 more bytes."""
    k = p2k.Kernel(env={})
    srv = Server(k, f"unix://{tmp_path}/s.sock", ServerConfig(shm_budget=32 * MiB))
    srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    k.sys.mkdir("/mnt", 0o755)
    k.sys.mount("tmpfs", "/mnt")
    fd = k.sys.open("/mnt/f", os.O_CREAT | os.O_WRONLY, 0o644)
    k.sys.write(fd, _pattern(20 * MiB + 12345))
    k.sys.pwrite(fd, b"z" * 100, 23 * MiB + 12345)
    k.sys.close(fd)
    try:
        yield srv
    finally:
        srv.request_stop()
        t.join(5)
        srv.drop_clients()
        k.halt(sync=False)


def _expected() -> bytes:
    return _pattern(20 * MiB + 12345) + bytes(3 * MiB) + b"z" * 100


def _read_all(c: Client, n: int) -> bytes:
    fd = c.sys.open("/mnt/f", os.O_RDONLY)
    parts = []
    while data := c.sys.read(fd, n):
        parts.append(data)
    c.sys.close(fd)
    return b"".join(parts)


@pytest.mark.parametrize("shm", [True, False], ids=["arena", "socket"])
def test_big_reads_are_exact(inproc: Server, shm: bool) -> None:
    want = _expected()
    with connect(inproc.url, shm=shm) as c:
        assert (c._arena is not None) == shm
        assert inproc.shm_used == (16 * MiB if shm else 0)
        for n in (8 * MiB, MiB, 3 * MiB + 4099, 20000):
            assert _read_all(c, n) == want, n
        fd = c.sys.open("/mnt/f", os.O_RDONLY)
        for off, n in ((1, 8 * MiB), (20 * MiB + 12000, MiB), (23 * MiB + 12400, MiB), (40 * MiB, MiB), (5, 17)):
            assert c.sys.pread(fd, n, off) == want[off:off + n], (off, n)
        with pytest.raises(OSError) as ei:
            c.sys.pread(fd, MiB, -1)
        assert ei.value.errno == errno.EINVAL
        c.sys.close(fd)
        with pytest.raises(OSError) as ei:
            c.sys.read(fd, MiB)  # closed: the same EBADF as over the socket
        assert ei.value.errno == errno.EBADF
    deadline = time.monotonic() + 5
    while inproc.shm_used and time.monotonic() < deadline:
        time.sleep(0.01)
    assert inproc.shm_used == 0


def test_threads_share_one_arena(inproc: Server) -> None:
    """Eight threads reading 3 MiB pieces through one client: more than the arena holds at once,
    so some of them read over the socket; every piece is right either way."""
    want = _expected()
    errors: list[BaseException] = []
    with connect(inproc.url) as c:
        fd = c.sys.open("/mnt/f", os.O_RDONLY)

        def reader(seed: int) -> None:
            try:
                for i in range(12):
                    off = (seed * 7919 + i * 1_234_567) % len(want)
                    assert c.sys.pread(fd, 3 * MiB, off) == want[off:off + 3 * MiB]
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[0]
        assert c._arena is not None and all(c._arena._free)


def test_budget_spent_means_socket_reads(inproc: Server) -> None:
    with connect(inproc.url) as a, connect(inproc.url) as b, connect(inproc.url) as third:
        assert a._arena is not None and b._arena is not None
        assert third._arena is None  # 32 MiB of budget: two arenas
        assert hashlib.sha256(_read_all(third, 8 * MiB)).digest() == hashlib.sha256(_expected()).digest()
        assert third.stats()["shm_bytes"] == 32 * MiB


def _raw_arena(url: str) -> tuple[Client, int]:
    """A client without an arena that then asks for one by hand, keeping the descriptor."""
    c = connect(url, shm=False)
    c._sock.sendall(P.frame(999, P.REQ, OP_SHM, P.encode([[], {}])))
    head, fd = recv_with_fd(c._sock, P.HEADER_SIZE)
    head += c._rfile.read(P.HEADER_SIZE - len(head))
    length, reqno, cls, _ = P.parse_header(head, 1 << 20)
    assert (reqno, cls) == (999, P.RESP) and P.decode(c._rfile.read(length)) == {"size": 16 * MiB}
    assert fd is not None and not os.get_inheritable(fd)
    return c, fd


def test_hostile_client_cannot_hurt_the_server(inproc: Server) -> None:
    c, fd = _raw_arena(inproc.url)
    try:
        for size in (0, MiB, 32 * MiB):  # sealed: neither shrink (SIGBUS in the server) nor grow
            with pytest.raises(PermissionError):
                os.ftruncate(fd, size)
        with pytest.raises(PermissionError):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
        f = c.sys.open("/mnt/f", os.O_RDONLY)
        bad = ([f, MiB, 16 * MiB - 10], [f, MiB, -1], [f, -1, 0], [f, 9 * MiB, 0], [f, MiB, 1 << 70],
               [f, "x", 0], [f, MiB], [f, MiB, 0, 0, 0], [f, 1.5, 0])
        for args in bad:
            with pytest.raises(OSError) as ei:
                c._call(OP_SHM_READ, [args, {}])
            assert ei.value.errno == errno.EINVAL, args
        with pytest.raises(OSError) as ei:
            c._call(OP_SHM, [[], {}])
        assert ei.value.errno == errno.EBUSY
        # Within the arena, anywhere the client likes, even over what it scribbled itself.
        os.pwrite(fd, b"scribble" * 1000, 5 * MiB)
        assert c._call(OP_SHM_PREAD, [[f, MiB, 7, 5 * MiB + 3], {}]) == MiB
        assert os.pread(fd, MiB, 5 * MiB + 3) == _expected()[7:7 + MiB]
        assert c._call(OP_SHM_READ, [[f, 0, 16 * MiB], {}]) == 0
        # The server serves on, the arena's pages go back when the client goes.
        assert _read_all(c, MiB) == _expected()
    finally:
        c.close()
    with connect(inproc.url) as other:
        assert other.sys.stat("/mnt/f").st_size == len(_expected())
    deadline = time.monotonic() + 5
    while inproc.shm_used and time.monotonic() < deadline:
        time.sleep(0.01)
    assert inproc.shm_used == 0
    assert os.pread(fd, 4096, 5 * MiB) == bytes(4096)  # punched out: no memory kept for us
    os.close(fd)


def test_no_arena_without_asking_and_none_over_tcp(inproc: Server) -> None:
    with connect(inproc.url, shm=False) as c:
        with pytest.raises(OSError) as ei:
            c._call(OP_SHM_READ, [[0, MiB, 0], {}])
        assert ei.value.errno == errno.EINVAL
    k = inproc.kernel
    tcp = Server(k, "tcp://127.0.0.1:9", ServerConfig())  # never bound
    assert not tcp.address.is_unix  # open_arena refuses such a server: checked in the unit below
    from p2k.sp.shm import open_arena

    with pytest.raises(OSError) as ei2:
        open_arena(tcp, None, 1, None)
    assert ei2.value.errno == errno.EOPNOTSUPP


_READER = """
import os, sys
from p2k.client import connect
c = connect(sys.argv[1])
assert c._arena is not None
fd = c.sys.open("/mnt/big", os.O_RDONLY)
print("reading", flush=True)
while True:
    c.sys.pread(fd, 8 << 20, 0)
"""


def test_interrupted_connections(tmp_path: Path, servers: list[ServerProc]) -> None:
    """A client killed in the middle of its reads leaves nothing behind; a server killed in the
    middle of a read is a ServerGone for the reader, never a hang or short data passed off as
    whole."""
    s = start(tmp_path, "unix://sock")
    servers.append(s)
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount("tmpfs", "/mnt")
        fd = c.sys.open("/mnt/big", os.O_CREAT | os.O_WRONLY, 0o644)
        c.sys.write(fd, _pattern(8 * MiB))
        c.sys.close(fd)
        for _ in range(3):
            p = subprocess.Popen([sys.executable, "-c", _READER, s.url], stdout=subprocess.PIPE, text=True)
            assert p.stdout is not None and p.stdout.readline() == "reading\n"
            time.sleep(0.2)
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            p.stdout.close()
        deadline = time.monotonic() + 5
        while (st := c.stats())["connections"] > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert st["connections"] == 1 and st["shm_bytes"] == 16 * MiB and st["open_files"] == 0, st
        fd = c.sys.open("/mnt/big", os.O_RDONLY)
        assert c.sys.pread(fd, 8 * MiB, 0) == _pattern(8 * MiB)
        got: list[object] = []

        def reader() -> None:
            try:
                while True:
                    assert c.sys.pread(fd, 8 * MiB, 0) == _pattern(8 * MiB)
            except BaseException as e:  # noqa: BLE001 - looked at below
                got.append(e)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.3)
        s.kill()
        t.join(20)
        assert not t.is_alive() and len(got) == 1 and isinstance(got[0], ServerGone), got


def test_socket_refuses_foreign_descriptors(inproc: Server) -> None:
    """Descriptors a client attaches to its requests are dropped by the host, not collected by
    the server (which reads requests with plain recv, taking no ancillary data): none leaks."""
    with connect(inproc.url, shm=False) as c:
        before = len(os.listdir("/proc/self/fd"))
        r, w = os.pipe()
        for i in range(20):
            frame = P.frame(77 + i, P.REQ, OP_SHM_READ, P.encode([[0, 1, 0], {}]))
            socket.send_fds(c._sock, [frame], [r, w])
            cls, code, _ = c._wait(77 + i)
            assert (cls, code) == (P.ERROR, errno.EINVAL)
        os.close(r)
        os.close(w)
        assert len(os.listdir("/proc/self/fd")) == before
        assert c.sys.stat("/mnt/f").st_size == len(_expected())


def test_socket_reads_share_a_small_buffer_pool(tmp_path: Path) -> None:
    """Socket reads borrow one of the server's reply buffers for the call and its send: a client
    that stops reading holds its buffer only until it is dropped, others read meanwhile without
    one, and every read is exact either way."""
    k = p2k.Kernel(env={})
    url = f"unix://{tmp_path}/pool.sock"
    srv = Server(k, url, ServerConfig(read_buffers=1, reply_timeout=2.0, reply_buffer=64 << 10))
    srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    want = _pattern(8 * MiB)
    try:
        with connect(url, shm=False) as c:
            c.sys.mkdir("/mnt", 0o755)
            c.sys.mount("tmpfs", "/mnt")
            fd = c.sys.open("/mnt/f", os.O_CREAT | os.O_RDWR, 0o644)
            c.sys.write(fd, want)
            assert c.sys.pread(fd, 8 * MiB, 0) == want  # through the pool's one buffer
            slow = socket.socket(socket.AF_UNIX)
            slow.connect(url[len("unix://"):])
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            f = slow.makefile("rb")
            f.readline(P.BANNER_MAX)
            slow.sendall(P.frame(1, P.REQ, OP_HANDSHAKE, P.encode({"version": [1, 0], "name": "slow"})))
            f.read(P.parse_header(f.read(P.HEADER_SIZE), 1 << 20)[0])
            slow.sendall(P.frame(2, P.REQ, OP_OF["open"], P.encode([["/mnt/f", os.O_RDONLY], {}])))
            sfd = P.decode(f.read(P.parse_header(f.read(P.HEADER_SIZE), 1 << 20)[0]))
            slow.sendall(P.frame(3, P.REQ, OP_OF["pread"], P.encode([[sfd, 8 * MiB, 0], {}])))
            lent_by = time.monotonic() + 5  # on a loaded machine the server may take a while
            while srv.bufpool._free and time.monotonic() < lent_by:
                time.sleep(0.005)
            assert not srv.bufpool._free  # lent to the slow reader's blocked send
            for off in (0, 1, 3 * MiB + 5):
                assert c.sys.pread(fd, 5 * MiB, off) == want[off:off + 5 * MiB]
            deadline = time.monotonic() + 10
            while c.stats()["connections"] > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert c.stats()["connections"] == 1 and len(srv.bufpool._free) == 1
            slow.close()
            with pytest.raises(OSError) as ei:
                c.sys.pread(fd, MiB, -5)
            assert ei.value.errno == errno.EINVAL and len(srv.bufpool._free) == 1
    finally:
        srv.request_stop()
        t.join(5)
        srv.drop_clients()
        k.halt(sync=False)


def _fake_server(path: str, script: list[bytes | None]) -> threading.Thread:
    """A peer that speaks the banner and the handshake, then answers each request that follows
    with the next of ``script`` (raw bytes to send, the request number patched in at bytes 4..12;
    None: close the connection) — a broken or dying server, as a client may meet one."""
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(path)
    lsock.listen(1)

    def serve() -> None:
        conn, _ = lsock.accept()
        f = conn.makefile("rb")
        conn.sendall(P.banner("fake"))
        length, reqno, _, _ = P.parse_header(f.read(P.HEADER_SIZE), 1 << 20)
        f.read(length)
        conn.sendall(P.frame(reqno, P.RESP, 0, P.encode({"version": [1, 0], "pid": 1, "max_frame": 16 * MiB,
                                                         "max_io": 8 * MiB, "uid": 0, "gid": 0})))
        for reply in script:
            head = f.read(P.HEADER_SIZE)
            if len(head) < P.HEADER_SIZE or reply is None:
                break
            length, reqno, _, _ = P.parse_header(head, 1 << 20)
            f.read(length)
            conn.sendall(reply[:4] + reqno.to_bytes(8, "big") + reply[12:])
        conn.close()
        lsock.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def _reply(body: bytes, claimed: int | None = None) -> bytes:
    """A RESP frame whose header claims ``claimed`` bytes of body (default: the truth)."""
    return P.HEADER.pack(len(body) if claimed is None else claimed, 0, P.RESP, 0) + body


def test_client_never_passes_off_short_data(tmp_path: Path) -> None:
    """A read reply cut short by a dying server, over the socket (a frame whose body never
    arrives whole) or through the arena (a count beyond what was asked), is ServerGone for the
    caller, never fewer or other bytes than the server sent as a whole reply."""
    path = str(tmp_path / "fake.sock")
    payload = os.urandom(3 * MiB)
    whole = _reply(b"b" + len(payload).to_bytes(4, "big") + payload)
    cut = _reply(b"b" + len(payload).to_bytes(4, "big") + payload[:MiB], claimed=5 + len(payload))
    t = _fake_server(path, [whole, cut])
    with connect(f"unix://{path}", shm=False) as c:
        assert c.sys.pread(3, 3 * MiB, 0) == payload  # spans many recv calls, arrives whole
        with pytest.raises(ServerGone):
            c.sys.pread(3, 3 * MiB, 0)
        with pytest.raises(ServerGone):
            c.sys.stat("/")  # and the client stays failed, not out of step with the stream
    t.join(10)
    os.unlink(path)
    t = _fake_server(path, [_reply(P.encode(2 * MiB))])
    with connect(f"unix://{path}", shm=False) as c:
        c._arena = ClientArena(Arena.create(16 * MiB))  # the fake server gives none: map one by hand
        with pytest.raises(ServerGone) as ei:
            c.sys.pread(3, MiB, 0)  # the server says 2 MiB came of a 1 MiB read
        assert ei.value.errno == errno.EPROTO
        assert all(c._arena._free)
    t.join(10)
