"""A failed operation leaves no trace: every error path of mount and unmount through a live server,
then a clean halt and an image that fsck finds clean; etfs errors in a kernel in this process
(registration is not a remote call: a client never names a host file)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from server_harness import ServerProc, make_ffs_image, run, start, wait_gone

import p2k


def _errno(fn, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except OSError as e:
        return e.errno or 0
    raise AssertionError(f"{fn} succeeded")


@pytest.fixture
def ffs_server(tmp_path: Path, servers: list[ServerProc]) -> tuple[ServerProc, Path]:
    img = tmp_path / "disk.img"
    why = make_ffs_image(img, 16)
    if why:
        pytest.skip(why)
    (tmp_path / "zeros.img").write_bytes(bytes(4 << 20))
    s = start(tmp_path, "unix://sock", "-d", f"key=/dev/dk,hostpath={img},size=host",
              "-d", f"key=/dev/zero0,hostpath={tmp_path / 'zeros.img'},size=host", foreground=True)
    servers.append(s)
    return s, img


def test_mount_and_unmount_errors_leave_no_trace(ffs_server: tuple[ServerProc, Path]) -> None:
    s, img = ffs_server
    with s.connect() as c:
        for d in ("/mnt", "/mnt2", "/mnt3"):
            c.sys.mkdir(d, 0o755)
        c.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        fd = c.sys.open("/mnt/file", os.O_CREAT | os.O_WRONLY, 0o644)
        c.sys.write(fd, b"kept\n")
        c.sys.close(fd)
        base = c.stats()
        # Every way a mount can fail, the double mount first.
        assert _errno(c.sys.mount, "ffs", "/mnt2", 0, {"fspec": "/dev/dk"}) == errno.EBUSY
        assert _errno(c.sys.mount, "ffs", "/mnt", 0, {"fspec": "/dev/zero0"}) == errno.EBUSY  # covered
        assert _errno(c.sys.mount, "ffs", "/mnt/file", 0, {"fspec": "/dev/zero0"}) == errno.ENOTDIR
        assert _errno(c.sys.mount, "ffs", "/mnt2", 0, {"fspec": "/dev/nosuch"}) == errno.ENOENT
        assert _errno(c.sys.mount, "nosuchfs", "/mnt2") != 0
        assert _errno(c.sys.mount, "ffs", "/nowhere", 0, {"fspec": "/dev/zero0"}) == errno.ENOENT
        assert _errno(c.sys.mount, "ffs", "/mnt2", 0, {"fspec": "/dev/zero0"}) != 0  # no superblock
        with s.connect(uid=1000, gid=1000) as low:
            assert _errno(low.sys.mount, "ffs", "/mnt2", 0, {"fspec": "/dev/zero0"}) == errno.EPERM
            assert _errno(low.sys.unmount, "/mnt") == errno.EPERM
        # Every way an unmount can fail.
        assert _errno(c.sys.unmount, "/mnt2") == errno.EINVAL  # not a mount point
        assert _errno(c.sys.unmount, "/") == errno.EINVAL
        assert _errno(c.sys.unmount, "/nowhere") == errno.ENOENT
        fd = c.sys.open("/mnt/file", os.O_RDONLY)
        assert _errno(c.sys.unmount, "/mnt") == errno.EBUSY  # a file open on it
        after = c.stats()
        for key in ("mounts", "vnodes_inuse", "buf_dirty_bytes"):
            assert after[key] == base[key] + (1 if key == "vnodes_inuse" else 0), (key, base, after)
        assert c.sys.read(fd, 100) == b"kept\n"
        c.sys.close(fd)
        # The zero device was left free by its failed mount: another tmpfs-less probe mounts nothing
        # on it, but the real device remounts after a clean unmount.
        c.sys.unmount("/mnt")
        c.sys.mount("ffs", "/mnt3", 0, {"fspec": "/dev/dk"})
        assert c.sys.stat("/mnt3/file").st_size == 5
        assert c.stats()["mounts"] == 1
    h = s.halt()
    assert h.returncode == 0, h.stderr
    assert wait_gone(s.pid)
    assert s.log is not None
    log = s.log.read_text()
    assert "release without acquire" not in log and "without sync" not in log and "Traceback" not in log, log
    fsck = run("p2k fsck", "-n", str(img))
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_double_mount_then_local_halt(tmp_path: Path) -> None:
    img = tmp_path / "disk.img"
    why = make_ffs_image(img, 8)
    if why:
        pytest.skip(why)
    k = p2k.Kernel(env={})
    k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
    k.sys.mkdir("/a", 0o755)
    k.sys.mkdir("/b", 0o755)
    k.sys.mount("ffs", "/a", 0, {"fspec": "/dev/dk"})
    assert _errno(k.sys.mount, "ffs", "/b", 0, {"fspec": "/dev/dk"}) == errno.EBUSY
    # etfs: a key in use cannot go, a key cannot be registered twice; neither changes anything.
    assert _errno(k.etfs_remove, "/dev/dk") == errno.EBUSY
    assert _errno(k.etfs_register, "/dev/dk", str(img), p2k.ETFS_BLK) == errno.EEXIST
    assert _errno(k.etfs_register, "/dev/other", str(tmp_path / "missing.img"), p2k.ETFS_BLK) == errno.ENOENT
    assert _errno(k.etfs_remove, "/dev/nosuch") == errno.ENOENT
    fd = k.sys.open("/a/f", os.O_CREAT | os.O_WRONLY, 0o644)
    k.sys.write(fd, b"x")
    k.sys.close(fd)
    k.halt()
    fsck = run("p2k fsck", "-n", str(img))
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
