"""Hostile clients cannot starve the others: a live rump_server with 1,000 idle or slow-reading
sockets open keeps answering an established client within 100 ms a call; a server that cannot take
another client says "server busy" in an error frame, which the client reports as such."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from server_harness import ServerProc, run, start

import p2k
from p2k.client import connect
from p2k.sp import protocol as P
from p2k.sp.ops import OP_HANDSHAKE, OP_OF
from p2k.sp.server import Server, ServerConfig


def _sock_path(url: str) -> str:
    return url[len("unix://"):]


def _established_slow_reader(path: str, fd_path: str) -> socket.socket:
    """A client that says hello, asks for 8 MiB reads and never reads a byte of the answers."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    f = s.makefile("rb")
    f.readline(P.BANNER_MAX)
    s.sendall(P.frame(1, P.REQ, OP_HANDSHAKE, P.encode({"version": [1, 0], "name": "slow"})))
    length = P.parse_header(f.read(P.HEADER_SIZE), 1 << 20)[0]
    f.read(length)
    s.sendall(P.frame(2, P.REQ, OP_OF["open"], P.encode([[fd_path, os.O_RDONLY], {}])))
    length = P.parse_header(f.read(P.HEADER_SIZE), 1 << 20)[0]
    fd = P.decode(f.read(length))
    for i in range(8):
        s.sendall(P.frame(3 + i, P.REQ, OP_OF["pread"], P.encode([[fd, 8 << 20, 0], {}])))
    return s


def test_thousand_idle_and_slow_sockets_do_not_starve_a_client(tmp_path: Path, servers: list[ServerProc]) -> None:
    s = start(tmp_path, "unix://sock")
    servers.append(s)
    path = _sock_path(s.url)
    worst: list[float] = []
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount("tmpfs", "/mnt")
        fd = c.sys.open("/mnt/big", os.O_CREAT | os.O_WRONLY, 0o644)
        c.sys.write(fd, os.urandom(8 << 20))
        c.sys.close(fd)

        def timed_calls(n: int) -> None:
            for _ in range(n):
                t = time.perf_counter()
                assert c.sys.stat("/mnt/big").st_size == 8 << 20
                worst.append(time.perf_counter() - t)

        slow = [_established_slow_reader(path, "/mnt/big") for _ in range(20)]
        idle: list[socket.socket] = []
        for _ in range(49):  # 980 sockets that connect and then say nothing at all
            for _ in range(20):
                sk = socket.socket(socket.AF_UNIX)
                sk.connect(path)
                idle.append(sk)
            timed_calls(3)
        timed_calls(100)
        # A newcomer while the handshake slots are taken: told so, not left to guess.
        try:
            connect(s.url, timeout=10).close()
            newcomer = "admitted"
        except OSError as e:
            newcomer = f"{errno.errorcode.get(e.errno or 0)}: {e.strerror}"
        st = c.stats()
        for sk in idle + slow:
            sk.close()
        timed_calls(20)
    # 100 ms a call; on a shared 2-core runner a scheduler stall can hit any one call, so one in a
    # hundred may be late, but never by more than half a second.
    late = sorted(w for w in worst if w >= 0.1)
    assert len(late) <= len(worst) // 100 and max(worst) < 0.5, \
        f"{len(late)} of {len(worst)} calls over 100 ms; slowest {max(worst) * 1000:.1f} ms"
    assert newcomer in ("admitted", "EBUSY: server busy")
    assert st["refused"] > 0 and st["handshaking"] <= 32
    # Once the idle sockets are gone the server takes clients again, and halts cleanly.
    deadline = time.monotonic() + 10
    while True:
        try:
            with s.connect() as c:
                break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert s.halt().returncode == 0


@pytest.fixture
def busy_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server in this process whose two handshake slots are held by peers that never speak."""
    k = p2k.Kernel(env={})
    srv = Server(k, f"unix://{tmp_path}/busy.sock", ServerConfig(max_handshakes=2, handshake_timeout=60))
    srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    holders = []
    for _ in range(2):
        h = socket.socket(socket.AF_UNIX)
        h.connect(f"{tmp_path}/busy.sock")
        holders.append(h)
    deadline = time.monotonic() + 5
    while srv.handshaking < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield srv
    finally:
        for h in holders:
            h.close()
        srv.request_stop()
        t.join(5)
        srv.drop_clients()
        k.halt(sync=False)


def test_server_busy_is_reported(busy_server: Server) -> None:
    with pytest.raises(OSError) as ei:
        connect(busy_server.url, timeout=10)
    assert ei.value.errno == errno.EBUSY and "server busy" in str(ei.value)
    r = run("rump.halt", env={"RUMP_SERVER": busy_server.url})
    assert r.returncode == 1 and r.stderr.strip() == "rump.halt: init failed: server busy", r.stderr
    assert not busy_server.kernel.halted


def test_client_that_reads_no_replies_is_dropped(tmp_path: Path) -> None:
    """Queued reply bytes are bounded by the send buffer; a client that reads none of them for the
    reply timeout is dropped and everything it held released, while another client is served."""
    k = p2k.Kernel(env={})
    url = f"unix://{tmp_path}/slow.sock"
    srv = Server(k, url, ServerConfig(reply_timeout=0.5, reply_buffer=64 << 10))
    srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        with connect(url) as c:
            c.sys.mkdir("/mnt", 0o755)
            c.sys.mount("tmpfs", "/mnt")
            fd = c.sys.open("/mnt/big", os.O_CREAT | os.O_WRONLY, 0o644)
            c.sys.write(fd, os.urandom(4 << 20))
            c.sys.close(fd)
            slow = _established_slow_reader(_sock_path(url), "/mnt/big")
            deadline = time.monotonic() + 10
            while c.stats()["connections"] > 1 and time.monotonic() < deadline:
                t0 = time.perf_counter()
                c.sys.stat("/mnt/big")
                assert time.perf_counter() - t0 < 0.1
                time.sleep(0.05)
            st = c.stats()
            assert st["connections"] == 1 and st["open_files"] == 0, st
            slow.close()
    finally:
        srv.request_stop()
        t.join(5)
        srv.drop_clients()
        k.halt(sync=False)
