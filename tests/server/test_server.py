"""rump_server, rump.halt and p2k.client against real server processes."""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from server_harness import ServerProc, free_port, pid_alive, run, start, wait_gone

import p2k
from p2k.client import Handle, connect


def _workload(sys: object) -> list[object]:
    """The same calls on a local kernel and a remote one must give the same answers (times aside)."""
    s = sys
    out: list[object] = []

    def rec(fn, *args, **kw):  # type: ignore[no-untyped-def]
        try:
            r = fn(*args, **kw)
        except OSError as e:
            r = ("err", e.errno)
        if isinstance(r, os.stat_result):
            r = (r.st_mode, r.st_nlink, r.st_uid, r.st_gid, r.st_size, r.st_mtime_ns == 2 * 10**18)
        out.append(r)
        return r

    rec(s.mkdir, "/mnt/d", 0o750)  # type: ignore[attr-defined]
    rec(s.mkdir, "/mnt/d", 0o750)  # type: ignore[attr-defined]
    fd = rec(s.open, "/mnt/d/f", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)  # type: ignore[attr-defined]
    rec(s.write, fd, b"hello world" * 1000)  # type: ignore[attr-defined]
    rec(s.pwrite, fd, b"XY", 3)  # type: ignore[attr-defined]
    rec(s.lseek, fd, 0, os.SEEK_SET)  # type: ignore[attr-defined]
    rec(s.read, fd, 20)  # type: ignore[attr-defined]
    rec(s.pread, fd, 5, 10990)  # type: ignore[attr-defined]
    rec(s.ftruncate, fd, 100)  # type: ignore[attr-defined]
    rec(s.fsync, fd)  # type: ignore[attr-defined]
    rec(s.close, fd)  # type: ignore[attr-defined]
    rec(s.close, fd)  # type: ignore[attr-defined]
    rec(s.symlink, "f", "/mnt/d/l")  # type: ignore[attr-defined]
    rec(s.readlink, "/mnt/d/l")  # type: ignore[attr-defined]
    rec(s.link, "/mnt/d/f", "/mnt/d/g")  # type: ignore[attr-defined]
    rec(s.rename, "/mnt/d/g", "/mnt/d/h")  # type: ignore[attr-defined]
    rec(s.chmod, "/mnt/d/h", 0o600)  # type: ignore[attr-defined]
    rec(s.chown, "/mnt/d/h", 12, 34)  # type: ignore[attr-defined]
    rec(s.utimensat, "/mnt/d/h", 10**18, 2 * 10**18)  # type: ignore[attr-defined]
    rec(s.stat, "/mnt/d/h")  # type: ignore[attr-defined]
    rec(s.lstat, "/mnt/d/l")  # type: ignore[attr-defined]
    rec(s.truncate, "/mnt/d/h", 7)  # type: ignore[attr-defined]
    rec(sorted, s.listdir("/mnt/d"))  # type: ignore[attr-defined]
    rec(s.access, "/mnt/d/h", os.R_OK)  # type: ignore[attr-defined]
    rec(s.unlink, "/mnt/d")  # type: ignore[attr-defined]
    rec(s.rmdir, "/mnt/d")  # type: ignore[attr-defined]
    rec(s.stat, "/mnt/nope")  # type: ignore[attr-defined]
    rec(s.chdir, "/mnt/d")  # type: ignore[attr-defined]
    rec(s.getcwd)  # type: ignore[attr-defined]
    fd = rec(s.open, "/mnt/d", os.O_RDONLY)  # type: ignore[attr-defined]
    rec(lambda: sorted(d.name for d in s.getdents(fd)))  # type: ignore[attr-defined]
    rec(s.dup2, fd, 9)  # type: ignore[attr-defined]
    rec(s.fstat, 9)  # type: ignore[attr-defined]
    rec(s.umask, 0o77)  # type: ignore[attr-defined]
    rec(s.umask, 0o22)  # type: ignore[attr-defined]
    rec(lambda: s.statvfs("/mnt").f_namemax)  # type: ignore[attr-defined]
    return out


def test_remote_calls_match_local(server: ServerProc) -> None:
    k = p2k.Kernel(env={})
    try:
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("tmpfs", "/mnt")
        local = _workload(k.sys)
    finally:
        k.halt(sync=False)
    with server.connect() as c:
        remote = _workload(c.sys)
    assert remote == local


def test_detached_server_socket_is_private_and_removed(tmp_path: Path, servers: list[ServerProc]) -> None:
    url = f"unix://{tmp_path}/abs.sock"
    s = start(tmp_path, url)
    servers.append(s)
    assert stat.S_IMODE(os.stat(tmp_path / "abs.sock").st_mode) == 0o600
    r = s.halt()
    assert r.returncode == 0, r.stderr
    assert wait_gone(s.pid)
    assert not (tmp_path / "abs.sock").exists()


def test_tcp_localhost_and_errors_are_errno(tmp_path: Path, servers: list[ServerProc]) -> None:
    s = start(tmp_path, f"tcp://127.0.0.1:{free_port()}/")
    servers.append(s)
    with s.connect() as c:
        with pytest.raises(FileNotFoundError):
            c.sys.stat("/nothing")
        with pytest.raises(OSError) as ei:
            c.sys.close(1234)
        assert ei.value.errno == errno.EBADF
        c.sys.mkdir("/x", 0o700)
        with pytest.raises(FileExistsError):
            c.sys.mkdir("/x", 0o700)
    assert s.halt().returncode == 0
    assert wait_gone(s.pid)


def test_tcp_every_address_and_ipv6(tmp_path: Path, servers: list[ServerProc]) -> None:
    port = free_port()
    s = start(tmp_path, f"tcp://0:{port}/")
    servers.append(s)
    with connect(f"tcp://127.0.0.1:{port}/") as c:
        assert stat.S_ISDIR(c.sys.stat("/").st_mode)
    if socket.has_ipv6:
        try:
            with connect(f"tcp://[::1]:{port}/") as c:
                assert stat.S_ISDIR(c.sys.stat("/").st_mode)
        except OSError as e:
            if e.errno not in (errno.EADDRNOTAVAIL, errno.ECONNREFUSED, errno.ENETUNREACH):
                raise
    s.halt()


def test_processes_are_separate(server: ServerProc) -> None:
    with server.connect() as a, server.connect() as b:
        fd = a.sys.open("/mnt/own", os.O_WRONLY | os.O_CREAT, 0o644)
        with pytest.raises(OSError) as ei:
            b.sys.write(fd, b"x")
        assert ei.value.errno == errno.EBADF
        a.sys.chdir("/mnt")
        assert b.sys.getcwd() == "/"
        h = a.sys.lookup("/mnt")
        assert isinstance(h, Handle)
        with pytest.raises(OSError) as ei:
            b.sys.vstat(h)
        assert ei.value.errno == errno.EBADF
        assert a.sys.vstat(h).st_ino == a.sys.stat("/mnt").st_ino
        assert a.sys.stat("own", dir_fd=h).st_size == 0
        a.sys.vrele(h)
        with pytest.raises(OSError):
            a.sys.vrele(h)


def test_vnode_handle_calls(server: ServerProc) -> None:
    """The FUSE bridge's calls, by opaque handle."""
    with server.connect() as c:
        root = c.sys.root_vnode()
        d = c.sys.lookup("mnt", root)
        c.sys.mkdir("sub", 0o755, dir_fd=d)
        sub = c.sys.lookup("sub", d)
        fd = c.sys.open("file", os.O_RDWR | os.O_CREAT, 0o644, dir_fd=sub)
        c.sys.write(fd, b"abc")
        c.sys.close(fd)
        f = c.sys.lookup("file", sub)
        assert c.sys.vgetattr(f).size == 3
        fd = c.sys.vopen(f, os.O_RDONLY)
        assert c.sys.read(fd, 10) == b"abc"
        c.sys.close(fd)
        c.sys.vchmod(f, 0o600)
        c.sys.vtruncate(f, 1)
        c.sys.vutimens(f, 10**9, 2 * 10**9)
        st = c.sys.vstat(f)
        assert (stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns) == (0o600, 1, 2 * 10**9)
        c.sys.vlink(f, "hard", dir_fd=sub)
        assert c.sys.stat("hard", dir_fd=sub).st_nlink == 2
        names = [e.name for e in c.sys.vreaddir(sub, 0)]
        assert b"file" in names and b"hard" in names
        assert c.sys.vstatvfs(sub).f_namemax > 0
        for h in (f, sub, d, root):
            c.sys.vrele(h)
        assert c.stats()["handles"] == 0


def test_lost_client_leaves_nothing_behind(server: ServerProc) -> None:
    with server.connect() as c:
        base = c.stats()
    victim = server.connect()
    for i in range(50):
        victim.sys.open(f"/mnt/f{i}", os.O_RDWR | os.O_CREAT, 0o644)
        victim.sys.lookup(f"/mnt/f{i}")
    victim._rfile.close()
    victim._sock.close()  # gone without a word, as a killed process goes
    with server.connect() as c:
        end = time.monotonic() + 10
        while True:
            st = c.stats()
            if st["connections"] == 1 or time.monotonic() > end:
                break
            time.sleep(0.02)
        assert (st["open_files"], st["handles"], st["connections"]) == (0, 0, 1)
        assert st["vnodes_inuse"] == base["vnodes_inuse"]
        c.sys.unmount("/mnt")  # nothing keeps the file system busy


def test_fd_limit_and_credentials(server: ServerProc) -> None:
    with server.connect() as c:
        fds = []
        with pytest.raises(OSError) as ei:
            for _ in range(2000):
                fds.append(c.sys.open("/mnt", os.O_RDONLY))
        assert ei.value.errno == errno.EMFILE
        assert len(fds) == 1024
    with server.connect(uid=1000, gid=1000) as u:
        with pytest.raises(PermissionError):
            u.sys.mkdir("/mnt/nope", 0o755)
        with pytest.raises(PermissionError):
            u.sys.mount("tmpfs", "/mnt")


def test_concurrent_calls_share_one_connection(server: ServerProc) -> None:
    errors: list[BaseException] = []
    with server.connect() as c:
        def worker(i: int) -> None:
            try:
                fd = c.sys.open(f"/mnt/t{i}", os.O_RDWR | os.O_CREAT, 0o644)
                for j in range(100):
                    c.sys.pwrite(fd, bytes([i]) * 1000, j * 1000)
                    assert c.sys.stat(f"/mnt/t{i}").st_size >= (j + 1) * 1000
                assert c.sys.pread(fd, 100000, 0) == bytes([i]) * 100000
                c.sys.close(fd)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors


def test_big_transfers_are_split(server: ServerProc) -> None:
    data = os.urandom(1 << 20) * 20
    with server.connect() as c:
        fd = c.sys.open("/mnt/big", os.O_RDWR | os.O_CREAT, 0o644)
        assert c.sys.write(fd, data) == len(data)
        out = bytearray()
        while len(out) < len(data):
            chunk = c.sys.pread(fd, len(data), len(out))
            assert chunk
            out += chunk
        assert bytes(out) == data
        c.sys.close(fd)


def test_halt_without_sync_and_keep_process(tmp_path: Path, servers: list[ServerProc]) -> None:
    s = start(tmp_path, "unix://h.sock")
    servers.append(s)
    r = s.halt("-h")
    assert r.returncode == 0, r.stderr
    time.sleep(0.3)
    assert pid_alive(s.pid)  # halted, but the process stays
    with pytest.raises(OSError):
        s.connect()
    os.kill(s.pid, signal.SIGTERM)
    assert wait_gone(s.pid)
    s2 = start(tmp_path, "unix://n.sock")
    servers.append(s2)
    assert s2.halt("-n").returncode == 0
    assert wait_gone(s2.pid)


def test_halt_dump_writes_state(tmp_path: Path, servers: list[ServerProc]) -> None:
    s = start(tmp_path, "unix://d.sock")
    servers.append(s)
    r = s.halt("-d")
    assert r.returncode == 0, r.stderr
    assert '"mem_used"' in r.stdout
    assert '"connections"' in r.stdout
    assert wait_gone(s.pid)
    assert not list(tmp_path.glob("rumpdump*")) and not list(Path.cwd().glob(f"rumpdump.{s.pid}*"))


def test_sigterm_syncs_unmounts_and_exits(tmp_path: Path, servers: list[ServerProc]) -> None:
    s = start(tmp_path, "unix://fg.sock", "-v", foreground=True)
    servers.append(s)
    with s.connect() as c:
        c.sys.mkdir("/m", 0o755)
        c.sys.mount("tmpfs", "/m")
    os.kill(s.pid, signal.SIGTERM)
    assert s.popen is not None
    assert s.popen.wait(20) == 0
    assert not (tmp_path / "fg.sock").exists()
    assert s.log is not None and "serving unix://fg.sock" in s.log.read_text()


def test_usage_and_drivespec_errors(tmp_path: Path) -> None:
    r = run("rump_server", "-d", "key=/dev/x,hostpath=img", "unix://s", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == "rump_server: incomplete drivespec"
    assert "usage: rump_server [-sv]" in r.stderr
    r = run("rump_allserver", "-d", "key=/dev/x,hostpath=img,size=1m,size=2m", "unix://s", cwd=tmp_path)
    assert (r.returncode, r.stderr.splitlines()[0]) == (1, "rump_allserver: size already given")
    r = run("rump_server", "-d", "key=/dev/x,hostpath=/nonexistent/dir/img,size=1m", "unix://s", cwd=tmp_path)
    assert (r.returncode, r.stderr.strip()) == (1, "rump_server: etfs hostpath open: No such file or directory")
    r = run("rump_server", "-x", "unix://s", cwd=tmp_path)
    assert r.returncode == 1 and "usage:" in r.stderr
    r = run("rump_server", cwd=tmp_path)
    assert r.returncode == 1 and "usage:" in r.stderr
    r = run("rump_server", "-r", "lots", "unix://s", cwd=tmp_path)
    assert r.returncode == 1 and "-r" in r.stderr
    r = run("rump_server", "-m", "no.such.module", "unix://s", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("rump_server: module load failed")
    r = run("rump_server", "-l", "no.such.lib", "unix://s", cwd=tmp_path)
    assert r.returncode == 1 and 'failed to load -libraries, last error from "no.such.lib"' in r.stderr
    r = run("rump_server", "ftp://x", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("rump_server: rump server init failed: ")
    assert not list(tmp_path.iterdir())  # no socket, no image left behind


def test_bind_failure_and_halt_without_server(tmp_path: Path, servers: list[ServerProc]) -> None:
    s = start(tmp_path, "unix://busy.sock", "-l", "p2k.fs.tmpfs", "-m", "tmpfs")
    servers.append(s)
    r = run("rump_server", "unix://busy.sock", cwd=tmp_path)
    assert (r.returncode, r.stderr.strip()) == (1, "rump_server: rump server init failed: Address already in use")
    r = run("rump.halt", env={"RUMP_SERVER": f"unix://{tmp_path}/none.sock"})
    assert (r.returncode, r.stderr.strip()) == (1, "rump.halt: init failed: No such file or directory")
    r = run("rump.halt", "-x")
    assert r.returncode == 1 and "usage: rump.halt [-dhn]" in r.stderr
    assert s.halt().returncode == 0


def test_fsview_over_server(server: ServerProc) -> None:
    """What the fs-utils commands do with RUMP_SERVER set: an FsView on the client's sys."""
    from p2k.fsview import FsView

    c = connect(server.url)
    with FsView(c.sys, "", c.close) as v:
        v.sys.mkdir(v.path("/mnt/a"), 0o755)
        fd = v.sys.open(v.path("/mnt/a/f"), os.O_WRONLY | os.O_CREAT, 0o644)
        v.sys.write(fd, b"payload" * 300000)
        v.sys.close(fd)
        assert b"".join(v.read_file("/mnt/a/f")) == b"payload" * 300000
        assert [p for p, _ in v.walk("/mnt")] == ["/mnt", "/mnt/a", "/mnt/a/f"]


def test_bad_arguments_are_einval_and_unknown_calls_enosys(server: ServerProc) -> None:
    with server.connect() as c:
        for name, args, kwargs in (("stat", ([1, 2],), {}), ("open", ("/mnt/x", "rw"), {}), ("close", (), {}),
                                   ("stat", ("/",), {"bogus": 1}), ("vstat", (3,), {}),
                                   ("mount", ("tmpfs", "/mnt", 0, [1]), {})):
            with pytest.raises(OSError) as ei:
                c.call(name, *args, **kwargs)
            assert ei.value.errno == errno.EINVAL, name
        with pytest.raises(OSError) as ei:
            c._call(999, [[], {}])
        assert ei.value.errno == errno.ENOSYS
        assert c.sys.stat("/mnt").st_nlink >= 2
        assert c.stats()["handles"] == 0


def test_oversized_frame_closes_only_that_connection(server: ServerProc) -> None:
    from p2k.sp import protocol as P

    with server.connect() as good:
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(server.url[len("unix://"):])
            raw.recv(P.BANNER_MAX)
            raw.sendall(P.HEADER.pack(1 << 30, 1, P.REQ, 1))
            raw.settimeout(5)
            assert raw.recv(100) == b""  # closed on us, without reading a gigabyte first
        assert good.ping("still here") == ["still here"]


def test_connection_limit(tmp_path: Path) -> None:
    from p2k.sp import Server, ServerConfig

    k = p2k.Kernel(env={})
    srv = Server(k, f"unix://{tmp_path}/lim.sock", ServerConfig(max_conns=2))
    srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        a, b = connect(srv.url), connect(srv.url)
        with pytest.raises(OSError):
            connect(srv.url, timeout=5)
        a.close()
        end = time.monotonic() + 5
        while srv.state()["connections"] > 1 and time.monotonic() < end:
            time.sleep(0.02)
        with connect(srv.url) as c:
            assert c.ping(1) == [1]
        b.close()
    finally:
        srv.request_stop()
        t.join(5)
        k.halt(sync=False)
    assert not (tmp_path / "lim.sock").exists()


def test_reboot_from_a_client_halts_the_server(tmp_path: Path, servers: list[ServerProc]) -> None:
    s = start(tmp_path, "unix://r.sock")
    servers.append(s)
    c = s.connect()
    c.sys.reboot()
    assert wait_gone(s.pid)
    with pytest.raises(OSError):
        c.sys.stat("/")
    c.close()


def test_fsutils_commands_with_RUMP_SERVER(server: ServerProc) -> None:
    """``p2k ls|cat|stat|find|du|df`` with RUMP_SERVER set and no image: paths in the server."""
    with server.connect() as c:
        c.sys.mkdir("/mnt/dir", 0o755)
        fd = c.sys.open("/mnt/dir/hello.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        c.sys.write(fd, b"hello from the server\n")
        c.sys.close(fd)
    env = {"RUMP_SERVER": server.url}
    r = run("p2k", "cat", "/mnt/dir/hello.txt", env=env)
    not_yet = ("are required: ", "Is a directory", "invalid choice", "No such file or directory (ENOENT)")
    if r.returncode != 0 and any(m in r.stderr for m in not_yet):
        pytest.skip(f"the fs-utils commands do not take RUMP_SERVER without an image yet: {r.stderr.strip()}")
    assert (r.returncode, r.stdout) == (0, "hello from the server\n"), r.stderr
    r = run("p2k", "ls", "-l", "/mnt/dir", env=env)
    assert r.returncode == 0 and "hello.txt" in r.stdout, r.stderr
    for args in (["stat", "/mnt/dir/hello.txt"], ["find", "/mnt"], ["du", "/mnt"], ["df", "/mnt"]):
        r = run("p2k", *args, env=env)
        assert r.returncode == 0 and r.stdout, (args, r.stderr)
        if args[0] == "find":  # a name-only find lists through the server's getdents
            assert r.stdout.splitlines() == ["/mnt", "/mnt/dir", "/mnt/dir/hello.txt"], r.stdout
