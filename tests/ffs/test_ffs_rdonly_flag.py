"""Read-only is a flag of the one FFS mount class: every vnode operation that would change the file
system refuses with EROFS on its own, called straight on the mount (below the syscall layer,
which checks MNT_RDONLY as well), and a read-only mount leaves the image byte for byte as it was —
no access time, no clean-flag write. The same calls on a read-write mount do change the image,
so the test can tell the two apart.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ffs_work import mount_rw, newfs

from p2k.vfs.extattr import EXTATTR_NAMESPACE_USER
from p2k.vfs.vattr import SetAttr


def _digest(img: Path) -> str:
    return hashlib.sha256(img.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = newfs(tmp_path_factory.mktemp("rdonly") / "ro.img", "8m", "-O", "2")  # UFS2: it has xattrs
    k = mount_rw(img)
    try:
        s = k.sys
        s.mkdir("/mnt/d", 0o755)
        fd = s.open("/mnt/d/f", os.O_CREAT | os.O_WRONLY, 0o644)
        s.write(fd, b"hello" * 1000)
        s.close(fd)
        s.mkdir("/mnt/d/empty", 0o755)
        s.extattr_set_file("/mnt/d/f", EXTATTR_NAMESPACE_USER, b"k", b"v")
    finally:
        k.halt()
    return img


def _write_ops(mp: Any, root: Any, d: Any, f: Any, e: Any) -> dict[str, Callable[[], object]]:
    """Every VOP that changes the file system, with arguments that would succeed read-write."""
    return {
        "create": lambda: mp.vop_create(d, b"new", 0o100644, 0, 0),
        "mkdir": lambda: mp.vop_mkdir(d, b"newdir", 0o755, 0, 0),
        "symlink": lambda: mp.vop_symlink(d, b"sl", b"f", 0o777, 0, 0),
        "link": lambda: mp.vop_link(root, b"f2", f),
        "remove": lambda: mp.vop_remove(d, b"f", f),
        "rmdir": lambda: mp.vop_rmdir(d, b"empty", e),
        "rename": lambda: mp.vop_rename(d, b"f", f, root, b"moved", None),
        "setattr": lambda: mp.vop_setattr(f, SetAttr(mode=0o600)),
        "truncate": lambda: mp.vop_setattr(f, SetAttr(size=1)),
        "write": lambda: mp.vop_write(f, 0, b"x"),
        "setextattr": lambda: mp.vop_setextattr(f, EXTATTR_NAMESPACE_USER, b"k2", b"v"),
        "deleteextattr": lambda: mp.vop_deleteextattr(f, EXTATTR_NAMESPACE_USER, b"k"),
    }


def _vnodes(k: Any) -> tuple[Any, Any, Any, Any, Any]:
    mp = k.mounts[0]
    root = k.vcache.vget(mp, mp.vfs_root_ino())
    d = k.vcache.vget(mp, mp.vop_lookup(root, b"d"))
    f = k.vcache.vget(mp, mp.vop_lookup(d, b"f"))
    e = k.vcache.vget(mp, mp.vop_lookup(d, b"empty"))
    return mp, root, d, f, e


def test_every_write_vop_refuses_a_read_only_mount(image: Path) -> None:
    before = _digest(image)
    k = mount_rw(image, ro=True)
    try:
        mp, root, d, f, e = _vnodes(k)
        assert mp.readonly
        refused = {}
        for name, op in _write_ops(mp, root, d, f, e).items():
            with pytest.raises(OSError) as ei:
                op()
            refused[name] = ei.value.errno
        assert refused == dict.fromkeys(refused, errno.EROFS)
        # reading works (without touching the access time), and the operations that only write
        # back are no-ops
        atime = mp.vop_getattr(f).atime_ns
        assert mp.vop_read(f, 0, 5) == b"hello"
        assert mp.vop_getattr(f).atime_ns == atime
        assert mp.vop_getextattr(f, EXTATTR_NAMESPACE_USER, b"k") == b"v"
        assert {x.name for x in mp.readdir_entries(d, 0)} == {b".", b"..", b"f", b"empty"}
        mp.vop_fsync(f)
        mp.vfs_sync()
        for vp in (e, f, d, root):
            k.vcache.vrele(vp)
    finally:
        k.halt()
    assert _digest(image) == before


def test_the_same_calls_change_a_read_write_mount(image: Path, tmp_path: Path) -> None:
    img = tmp_path / "rw.img"
    img.write_bytes(image.read_bytes())
    before = _digest(img)
    k = mount_rw(img)
    try:
        mp, root, d, f, e = _vnodes(k)
        assert not mp.readonly
        atime = mp.vop_getattr(f).atime_ns
        assert mp.vop_read(f, 0, 5) == b"hello"
        assert mp.vop_getattr(f).atime_ns > atime  # ufs_read's IN_ACCESS
        mp.vop_write(f, 0, b"j")
        mp.vop_setextattr(f, EXTATTR_NAMESPACE_USER, b"k2", b"v")
        for vp in (e, f, d, root):
            k.vcache.vrele(vp)
        assert k.sys.stat("/mnt/d/f").st_size == 5000
    finally:
        k.halt()
    assert _digest(img) != before
    k = mount_rw(img, ro=True)
    try:
        fd = k.sys.open("/mnt/d/f", os.O_RDONLY)
        assert k.sys.pread(fd, 5, 0) == b"jello"
        k.sys.close(fd)
    finally:
        k.halt()
