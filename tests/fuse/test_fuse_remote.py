"""``p2k mount --server URL PATH MOUNTPOINT``: a rump_server's tree through FUSE (the bridge as a
remote client).

Every test starts a real ``rump_server`` process with a tmpfs at /mnt, mounts that directory on the
host with ``p2k mount --server`` and works through the host mount with ordinary file calls and
host tools; a second client of the server (``p2k.client``) checks that the changes are the
server's. After ``p2k umount`` the server still serves and holds nothing of the mount any more.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from fuse_harness import P2K, diff, make_tree, start_mount, stop
from server_harness import (
    ServerProc,
    ffs_rw_unavailable,
    make_ffs_image,
    run,
    start,
    wait_gone,
)

import p2k

pytestmark = pytest.mark.fuse

from paths import REPO  # noqa: E402


def _server_handles(s: ServerProc) -> int:
    """Vnode handles held on the server by every connection but the one asking."""
    with s.connect() as c:
        return int(c.stats()["handles"])


def test_remote_mount_read_write_rename_unlink(tmp_path: Path, server: ServerProc) -> None:
    with server.connect() as c:
        c.sys.mkdir("/mnt/pre", 0o755)
        fd = c.sys.open("/mnt/pre/old.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        c.sys.write(fd, b"made by another client\n")
        c.sys.close(fd)
    mnt = tmp_path / "m"
    m = start_mount(mnt, "--server", server.url, "/mnt")
    try:
        assert sorted(os.listdir(mnt)) == ["pre"]
        assert (mnt / "pre" / "old.txt").read_bytes() == b"made by another client\n"
        (mnt / "hello.txt").write_bytes(b"hello over the wire\n")
        (mnt / "d").mkdir()
        os.rename(mnt / "hello.txt", mnt / "d" / "moved.txt")
        (mnt / "pre" / "old.txt").unlink()
        big = os.urandom(3 << 20)
        (mnt / "big").write_bytes(big)
        with open(mnt / "log", "a") as f:
            f.write("one\n")
        with open(mnt / "log", "a") as f:
            f.write("two\n")
        os.truncate(mnt / "big", 1 << 20)
        os.symlink("d/moved.txt", mnt / "link")
        os.link(mnt / "log", mnt / "log2")
        os.chmod(mnt / "log", 0o600)
        assert sorted(os.listdir(mnt)) == ["big", "d", "link", "log", "log2", "pre"]
        assert os.listdir(mnt / "pre") == []
        assert (mnt / "link").read_bytes() == b"hello over the wire\n"
        assert os.stat(mnt / "log2").st_nlink == 2
        assert (mnt / "big").read_bytes() == big[:1 << 20]
        # Host tools: a tree copied in and compared, then removed.
        src = tmp_path / "src"
        shutil.copytree(REPO / "p2k" / "puffs", src, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["cp", "-a", str(src), str(mnt / "tree")], check=True)
        diff(src, mnt / "tree")
        ls = subprocess.run(["ls", "-la", str(mnt / "d")], capture_output=True, text=True, check=True)
        assert "moved.txt" in ls.stdout
        os.sync()

        # What the server has, seen by another client.
        with server.connect() as c:
            assert sorted(c.sys.listdir("/mnt")) == ["big", "d", "link", "log", "log2", "pre", "tree"]
            fd = c.sys.open("/mnt/d/moved.txt", os.O_RDONLY)
            assert c.sys.read(fd, 100) == b"hello over the wire\n"
            c.sys.close(fd)
            fd = c.sys.open("/mnt/log", os.O_RDONLY)
            assert c.sys.read(fd, 100) == b"one\ntwo\n"
            c.sys.close(fd)
            assert c.sys.stat("/mnt/big").st_size == 1 << 20
            assert c.sys.stat("/mnt/log").st_mode & 0o7777 == 0o600
            assert c.sys.readlink("/mnt/link") in ("d/moved.txt", b"d/moved.txt")
            with pytest.raises(FileNotFoundError):
                c.sys.stat("/mnt/pre/old.txt")
            # ... and a change made there is seen through the mount once the host's cache expires.
            c.sys.mkdir("/mnt/from-client", 0o755)
        shutil.rmtree(mnt / "tree")
        assert "from-client" in os.listdir(mnt)
        assert os.statvfs(mnt).f_bsize > 0
        st = m.stats()
        assert st["remote_handles"] >= 1 and st["fuse_requests"] > 0
    finally:
        try:
            m.umount()
        finally:
            stop(m)
    # The server still serves, and gave back every handle and descriptor of the mount.
    with server.connect() as c:
        assert "from-client" in c.sys.listdir("/mnt")
        state = c.stats()
        assert state["handles"] == 0
        assert state["open_files"] == 0
        assert state["connections"] == 1


def test_remote_mount_detached_big_directory_and_forget(tmp_path: Path, server: ServerProc) -> None:
    """Detached like a local mount; a directory larger than one readdir reply lists completely,
    and nodes the host forgets are given back to the server."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    r = subprocess.run([P2K, "mount", "--server", server.url, "/mnt", str(mnt)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        names = {f"file-{i:04d}-{'x' * 40}" for i in range(600)}
        (mnt / "many").mkdir()
        for n in names:
            (mnt / "many" / n).write_bytes(n.encode())
        assert set(os.listdir(mnt / "many")) == names
        assert subprocess.run(["find", str(mnt), "-type", "f"], capture_output=True, text=True,
                              check=True).stdout.count("\n") == 600
        held = _server_handles(server)
        assert held > 600  # one per node the host remembers
        try:
            Path("/proc/sys/vm/drop_caches").write_text("2")
        except OSError:
            pass  # not allowed here: the forgets are not provoked, nothing to check
        else:
            # The forgets are queued and given back before the next change.
            (mnt / "after-forget").mkdir()
            assert _server_handles(server) < 100
            (mnt / "after-forget").rmdir()
        shutil.rmtree(mnt / "many")
        assert os.listdir(mnt) == []
    finally:
        r = subprocess.run([P2K, "umount", str(mnt)], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
        assert r.returncode == 0, r.stderr
    assert not os.path.ismount(mnt)
    assert _server_handles(server) == 0


def test_remote_mount_errors(tmp_path: Path, server: ServerProc) -> None:
    mnt = tmp_path / "m"
    mnt.mkdir()
    r = subprocess.run([P2K, "mount", "--server", server.url, "/no/such/dir", str(mnt)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "/no/such/dir" in r.stderr and "No such file" in r.stderr, r.stderr
    r = subprocess.run([P2K, "mount", "--server", server.url, "-o", "nvnodes=5", "/mnt", str(mnt)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "nvnodes" in r.stderr, r.stderr
    r = subprocess.run([P2K, "mount", "--server", "unix://" + str(tmp_path / "nobody"), "/mnt", str(mnt)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert not os.path.ismount(mnt)
    assert _server_handles(server) == 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_remote_mount_other_users(tmp_path: Path, server: ServerProc) -> None:
    """The server process is root; files a user makes through the mount are still the user's, and
    the host kernel (default_permissions) keeps the user out of what is not theirs."""
    base = Path(tempfile.mkdtemp(prefix="p2k-remote-"))  # pytest's tmp_path is closed to other users
    os.chmod(base, 0o755)
    mnt = base / "m"
    m = start_mount(mnt, "-o", "allow_other", "--server", server.url, "/mnt")
    as_user = ["setpriv", "--reuid=1234", "--regid=1234", "--clear-groups"]
    try:
        os.chmod(mnt, 0o1777)
        (mnt / "private").mkdir(mode=0o700)
        subprocess.run([*as_user, "sh", "-c", f"echo mine > {mnt}/u.txt && mkdir {mnt}/udir"], check=True)
        st = os.stat(mnt / "u.txt")
        assert (st.st_uid, st.st_gid) == (1234, 1234)
        assert os.stat(mnt / "udir").st_uid == 1234
        r = subprocess.run([*as_user, "touch", f"{mnt}/private/x"], capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr
        with server.connect() as c:
            assert c.sys.stat("/mnt/u.txt").st_uid == 1234
    finally:
        try:
            m.umount()
        finally:
            stop(m)
            shutil.rmtree(base, ignore_errors=True)


def test_remote_mount_of_ffs_then_fsck(tmp_path: Path, servers: list[ServerProc]) -> None:
    """A server with an FFS image: a tree copied in through the mount, unmounted, the server
    halted; the image is clean for ``p2k fsck -n`` and holds the tree."""
    reason = ffs_rw_unavailable(tmp_path)
    if reason:
        pytest.skip(reason)
    img = tmp_path / "disk.img"
    assert make_ffs_image(img, 32) is None
    s = start(tmp_path, "unix://s.sock", "-d", f"key=/dev/dk,hostpath={img},size=host")
    servers.append(s)
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
    src = tmp_path / "src"
    make_tree(src, 30)
    mnt = tmp_path / "m"
    m = start_mount(mnt, "--server", s.url, "/mnt")
    try:
        subprocess.run(["cp", "-a", str(src), str(mnt / "copy")], check=True)
        diff(src, mnt / "copy")
        os.rename(mnt / "copy" / "d0", mnt / "d0-moved")
        shutil.rmtree(mnt / "copy" / "d1")
    finally:
        try:
            m.umount()
        finally:
            stop(m)
    r = s.halt()
    assert r.returncode == 0, r.stderr
    assert wait_gone(s.pid)
    r = run("p2k fsck", "-f", "-n", str(img))
    assert r.returncode == 0, r.stdout + r.stderr
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        assert {"copy", "d0-moved"} <= set(k.sys.listdir("/mnt"))
        assert "d1" not in k.sys.listdir("/mnt/copy")
        fd = k.sys.open("/mnt/d0-moved/e0/f0.bin", os.O_RDONLY)
        assert k.sys.read(fd, 1 << 20) == (src / "d0" / "e0" / "f0.bin").read_bytes()
        k.sys.close(fd)
    finally:
        k.halt(sync=False)


def test_remote_mount_server_killed(tmp_path: Path, server: ServerProc) -> None:
    """A server that dies under the mount: calls fail with ENOTCONN (a stale mount, as with a dead
    local daemon) and ``p2k umount`` clears it and ends the daemon."""
    mnt = tmp_path / "m"
    m = start_mount(mnt, "--server", server.url, "/mnt")
    try:
        (mnt / "a").write_bytes(b"a")
        server.kill()
        assert wait_gone(server.pid)
        with pytest.raises(OSError) as e:
            os.listdir(mnt)
        assert e.value.errno == errno.ENOTCONN
        r = subprocess.run([P2K, "umount", str(mnt)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert m.proc.wait(timeout=30) == 0
        assert not os.path.ismount(mnt)
    finally:
        stop(m)
