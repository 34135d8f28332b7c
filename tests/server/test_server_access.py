"""Who may do what on a live rump_server (docs/protocol.md, "Credentials"): lowered credentials are
refused every privileged call; ``-a`` secrets; ``--peer-creds``, socket mode and group; and
``rump.sysctl`` watching and changing the server's vnode cache."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from server_harness import ServerProc, free_port, run, start

from p2k.sp import protocol as P
from p2k.sp.ops import OP_HANDSHAKE

NOBODY = 65534


def _errno(fn, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except OSError as e:
        return e.errno or 0
    raise AssertionError(f"{fn} succeeded")


def test_lowered_credentials_refused_privileged_calls(server: ServerProc) -> None:
    with server.connect() as root:
        root.sys.mkdir("/mnt/rootdir", 0o755)
        root.sys.mkdir("/mnt2", 0o755)
        fd = root.sys.open("/mnt/rootdir/f", os.O_CREAT | os.O_WRONLY, 0o644)
        root.sys.close(fd)
        root.sys.chmod("/mnt", 0o1777)
    with server.connect(uid=1000, gid=1000) as c:
        assert _errno(c.sys.mount, "tmpfs", "/mnt2") == errno.EPERM
        assert _errno(c.sys.unmount, "/mnt") == errno.EPERM
        assert _errno(c.sysctl, "kern.maxvnodes", 64) == errno.EPERM
        assert _errno(c.sys.sysctl, "kern.maxvnodes", 64) == errno.EPERM
        assert c.sysctl("kern.maxvnodes") == 1024  # reading is for everybody
        assert _errno(c.sys.chown, "/mnt/rootdir/f", 1000, 1000) == errno.EPERM
        assert _errno(c.sys.mknod, "/mnt/dev", stat.S_IFCHR | 0o600, 0x0103) == errno.EPERM
        assert _errno(c.sys.mkdir, "/mnt/rootdir/x", 0o755) == errno.EACCES
        # Up again, per call or per connection: never.
        assert _errno(c.call_as, [0, 0, []], "mkdir", "/mnt/rootdir/x", 0o755) == errno.EPERM
        assert _errno(c.sys.reboot) == errno.EPERM
    # rump.halt's own call, refused too; the server is still there afterwards.
    with server.connect(uid=1000, gid=1000) as c:
        assert _errno(c.halt) == errno.EPERM
    with server.connect() as c:  # lowered later, for the rest of the connection
        c.sys.setcred(1000, 1000, [])
        assert _errno(c.sys.mount, "tmpfs", "/mnt2") == errno.EPERM
        assert _errno(c.sys.setcred, 0, 0, []) == errno.EPERM
        assert _errno(c.sys.setcred, 1000, 1000, [0]) == errno.EPERM
    with server.connect() as root:
        nobody = root.sys_as(NOBODY, NOBODY)
        assert _errno(nobody.reboot) == errno.EPERM
        assert _errno(nobody.mount, "tmpfs", "/mnt2") == errno.EPERM
        fd = nobody.open("/mnt/mine", os.O_CREAT | os.O_WRONLY, 0o600)  # per call: made as nobody
        root.sys.close(fd)
        assert root.sys.stat("/mnt/mine").st_uid == NOBODY
        assert root.stats()["mounts"] == 1
        # SO_PEERCRED is recorded for every unix:// client, and shown in the state dump.
        dump = json.loads(root.halt(dump=True) or "{}")
    mine = [c for c in dump["clients"] if c["peer_cred"] and c["peer_cred"][0] == os.getpid()]
    assert mine and all(c["peer_cred"][1:] == [os.geteuid(), os.getegid()] for c in mine), dump["clients"]


def _raw_hello(url: str, hello: dict) -> tuple[bytes, int, int, object]:
    path = url[len("unix://"):] if url.startswith("unix://") else None
    s = socket.socket(socket.AF_UNIX) if path else socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    with s:
        if path:
            s.connect(path)
        f = s.makefile("rb")
        banner = f.readline(P.BANNER_MAX)
        s.sendall(P.frame(1, P.REQ, OP_HANDSHAKE, P.encode(hello)))
        length, _, cls, code = P.parse_header(f.read(P.HEADER_SIZE), 1 << 20)
        body = P.decode(f.read(length))
        assert f.read(1) == b""  # and the server closed the connection
    return banner, cls, code, body


def test_shared_secret(tmp_path: Path, servers: list[ServerProc], monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("correct horse battery staple\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("incorrect horse\n")
    url = f"tcp://127.0.0.1:{free_port()}"
    r = run("rump_server", "-a", str(tmp_path / "missing"), url, cwd=tmp_path)
    assert r.returncode == 1 and "-a" in r.stderr and "Traceback" not in r.stderr
    monkeypatch.setenv("RUMP_AUTHFILE", str(secret))  # for the harness's own connection
    servers.append(start(tmp_path, url, "-a", str(secret)))
    env_ok = {"RUMP_SERVER": url, "RUMP_AUTHFILE": str(secret)}
    ls = run("rump.sysctl", "-n", "kern.maxvnodes", env=env_ok)
    assert ls.returncode == 0 and ls.stdout.strip() == "1024", ls.stderr
    for env in ({"RUMP_SERVER": url, "RUMP_AUTHFILE": str(wrong)}, {"RUMP_SERVER": url, "RUMP_AUTHFILE": ""}):
        bad = run("rump.halt", env=env)
        assert bad.returncode == 1 and "init failed" in bad.stderr, bad.stderr
        assert "horse" not in bad.stderr
    # On the wire: a challenge in the banner, a refusal that says nothing but "authentication failed".
    banner, cls, code, body = _raw_hello(url, {"version": [1, 0], "nonce": "00", "auth": "0" * 64})
    assert b" challenge=" in banner and b"horse" not in banner
    assert (cls, code) == (P.ERROR, errno.EACCES)
    assert body == ["authentication failed", None]
    # The right secret still halts it, and only it.
    assert run("rump.halt", env=env_ok).returncode == 0


def test_public_tcp_warning(tmp_path: Path, servers: list[ServerProc], monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    s = start(tmp_path, f"tcp://0.0.0.0:{port}", foreground=True)
    servers.append(s)
    assert s.log is not None
    warning = [ln for ln in s.log.read_text().splitlines() if "warning" in ln]
    assert len(warning) == 1 and "-a" in warning[0], s.log.read_text()
    s.kill()
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    monkeypatch.setenv("RUMP_AUTHFILE", str(secret))
    s2 = start(tmp_path, f"tcp://0.0.0.0:{free_port()}", "-a", str(secret), foreground=True)
    servers.append(s2)
    assert s2.log is not None and "warning" not in s2.log.read_text()


NOBODY_CLIENT = r"""
import errno, json, os, sys
from p2k.client import connect
out = {}
with connect(sys.argv[1]) as c:
    def step(name, fn):
        try:
            fn(); out[name] = "OK"
        except OSError as e:
            out[name] = errno.errorcode[e.errno]
    step("mkdir_in_root_dir", lambda: c.sys.mkdir("/mnt/rootdir/x", 0o755))
    step("halt", lambda: c.halt())
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.parametrize("peer_creds", [False, True])
def test_peer_credentials_and_socket_mode(tmp_path: Path, servers: list[ServerProc], peer_creds: bool) -> None:
    # Under /tmp itself, not pytest's private (0700) directory, so that nobody can reach the socket.
    base = Path(tempfile.mkdtemp(prefix="p2k-peer-"))
    os.chmod(base, 0o755)
    flags = ["--socket-mode", "0660", "--socket-group", str(NOBODY)] + (["--peer-creds"] if peer_creds else [])
    try:
        s = start(base, "unix://sock", *flags)
        servers.append(s)
        _peer_checks(s, base, peer_creds)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _peer_checks(s: ServerProc, base: Path, peer_creds: bool) -> None:
    st = os.stat(base / "sock")
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == NOBODY
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount("tmpfs", "/mnt")
        c.sys.mkdir("/mnt/rootdir", 0o755)
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        sys.executable, "-c", NOBODY_CLIENT, s.url], capture_output=True, text=True, timeout=60,
                       cwd="/")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    if peer_creds:  # the host's nobody is nobody in the kernel: no write in root's directory, no halt
        assert got == {"mkdir_in_root_dir": "EACCES", "halt": "EPERM"}
        with s.connect() as c:  # root on the host is still root in the kernel
            assert c.stats()["mounts"] == 1
        assert s.halt().returncode == 0
    else:  # rump_sp's model: whoever can reach the socket is root in the kernel
        assert got == {"mkdir_in_root_dir": "OK", "halt": "OK"}


def test_rump_sysctl_changes_vnode_cache_and_shows_reclaims(server: ServerProc) -> None:
    env = {"RUMP_SERVER": server.url}
    with server.connect() as c:
        c.sys.mkdir("/mnt/walk", 0o755)
        for i in range(200):
            c.sys.close(c.sys.open(f"/mnt/walk/f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    w = run("rump.sysctl", "-w", "kern.maxvnodes=64", env=env)
    assert w.returncode == 0 and w.stdout.strip() == "kern.maxvnodes: 1024 -> 64", w.stderr

    def vfs() -> dict[str, int]:
        r = run("rump.sysctl", "vfs", env=env)
        assert r.returncode == 0, r.stderr
        return {k: int(v) for k, v in (ln.split(" = ") for ln in r.stdout.splitlines())}

    before = vfs()
    assert before["vfs.vnode.total"] <= 64
    with server.connect() as c:
        for i in range(200):  # an open loads the vnode (a stat of an uncached file would not)
            c.sys.close(c.sys.open(f"/mnt/walk/f{i}", os.O_RDONLY))
        assert c.sysctl("kern.maxvnodes") == 64
    after = vfs()
    assert after["vfs.vnode.reclaims"] >= before["vfs.vnode.reclaims"] + 100
    assert after["vfs.vnode.total"] <= 64
    for bad, why in (("kern.maxvnodes=0", "invalid value"), ("kern.maxvnodes=" + "9" * 30, "invalid value"),
                     ("kern.nosuch=1", "no such sysctl node"), ("vfs.mounts=3", "read-only")):
        r = run("rump.sysctl", "-w", bad, env=env)
        assert r.returncode == 1 and why in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert run("rump.sysctl", "-n", "kern.maxvnodes", env=env).stdout.strip() == "64"
    every = run("rump.sysctl", "-a", env=env).stdout
    assert "vfs.bufcache.hits = " in every and "kern.mem.used = " in every


def test_access_option_errors(tmp_path: Path) -> None:
    for args, why in ((["--socket-mode", "9x"], "--socket-mode 9x: not an octal mode"),
                      (["--socket-mode", "01777"], "--socket-mode 01777: not a permission mode"),
                      (["--socket-group", "no-such-group-p2k"], "--socket-group no-such-group-p2k: no such group"),
                      (["-a", str(tmp_path / "none")], f"-a {tmp_path / 'none'}: No such file or directory")):
        r = run("rump_server", *args, "unix://sock", cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.splitlines()[0] == f"rump_server: {why}", r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "sock").exists()
    (tmp_path / "empty").write_text("\n")
    r = run("rump_server", "-a", str(tmp_path / "empty"), "unix://sock", cwd=tmp_path)
    assert r.returncode == 1 and "empty" in r.stderr.splitlines()[0], r.stderr
