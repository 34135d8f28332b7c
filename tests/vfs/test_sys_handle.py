"""The handle-based interface of p2k/vfs/sys_handle.py, which the local FUSE mount, the remote one
and remote clients all call: each rule checked here once, in a kernel in this process."""

from __future__ import annotations

import errno
import os
import stat

import p2k
from p2k.vfs.lwproc import Cred
from p2k.vfs.vattr import UTIME_OMIT


def _errno(fn, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except OSError as e:
        return e.errno or 0
    raise AssertionError(f"{fn} succeeded")


def test_vlookup_rules(tmpfs: p2k.Kernel) -> None:
    s = tmpfs.sys
    s.mkdir("/mnt/d", 0o700)
    s.close(s.open("/mnt/d/f", os.O_CREAT | os.O_WRONLY, 0o644))
    s.symlink("f", "/mnt/d/link")
    s.mkdir("/mnt/d/sub", 0o755)
    s.mount("tmpfs", "/mnt/d/sub")
    d = s.lookup("/mnt/d")
    nobody = tmpfs.newproc(cred=Cred(65534, 65534))
    try:
        vp, va = s.vlookup(d, b"link")
        assert stat.S_ISLNK(va.mode)  # a final symlink is not followed
        s.vrele(vp)
        vp, va = s.vlookup(d, "sub")
        assert va.ino == vp.mount.vfs_root_ino() and vp.mount is not d.mount  # crosses the mount
        s.vrele(vp)
        vp, va = s.vlookup(d, b"..")
        assert va.ino == s.stat("/mnt").st_ino
        s.vrele(vp)
        assert _errno(s.vlookup, d, b"x" * 300) == errno.ENAMETOOLONG
        assert _errno(s.vlookup, d, b"missing") == errno.ENOENT
        f, _ = s.vlookup(d, b"f")
        assert _errno(s.vlookup, f, b"x") == errno.ENOTDIR
        s.vrele(f)
        assert _errno(nobody.vlookup, d, b"f") == errno.EACCES  # no search permission on 0700
        inuse = tmpfs.vcache.inuse
        assert _errno(nobody.vlookup, d, b"f") == errno.EACCES
        assert tmpfs.vcache.inuse == inuse  # a refusal holds nothing
    finally:
        s.vrele(d)
        tmpfs.release_proc(nobody)


def test_vreaddirplus_holds_what_it_returns(tmpfs: p2k.Kernel) -> None:
    s = tmpfs.sys
    s.mkdir("/mnt/d", 0o751)
    for i in range(5):
        s.close(s.open(f"/mnt/d/f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    d = s.lookup("/mnt/d")
    inuse = tmpfs.vcache.inuse
    rows = s.vreaddirplus(d, 0, 100)
    names = sorted(r[0].name for r in rows)
    assert names == [b".", b"..", *(f"f{i}".encode() for i in range(5))]
    held = [vp for _, vp, _ in rows if vp is not None]
    assert len(held) == 5 and tmpfs.vcache.inuse == inuse + 5
    assert all(va is not None and va.ino == vp.ino for _, vp, va in rows if vp is not None)
    for vp in held:
        s.vrele(vp)
    first = s.vreaddirplus(d, 0, 3)
    assert len(first) == 3
    for _, vp, _ in first:
        if vp is not None:
            s.vrele(vp)
    reader = tmpfs.newproc(cred=Cred(1000, 1000))
    try:
        s.chmod("/mnt/d", 0o740)
        assert _errno(reader.vreaddirplus, d, 0, 100) == errno.EACCES  # not readable by others
        s.chmod("/mnt/d", 0o744)  # readable but not searchable: the names, without attributes
        rows = reader.vreaddirplus(d, 0, 100)
        assert len(rows) == 7 and all(vp is None and va is None for _, vp, va in rows)
    finally:
        tmpfs.release_proc(reader)
        s.vrele(d)
    assert tmpfs.vcache.inuse == inuse - 1


def test_vcreate_owner_and_vsetattr_rules(tmpfs: p2k.Kernel) -> None:
    s = tmpfs.sys
    s.mkdir("/mnt/open", 0o777)
    s.chmod("/mnt/open", 0o777)
    d = s.lookup("/mnt/open")
    user = tmpfs.newproc(cred=Cred(1000, 1000))
    try:
        fd, vp, va = user.vcreate(d, b"mine", os.O_RDWR, 0o4755)
        assert (va.uid, va.gid) == (1000, 1000) and vp.ino == va.ino  # owned from the start
        assert user.fwrite(fd, b"abc", 0) == 3
        user.close(fd)
        user.vrele(vp)
        fd = s.open("/mnt/open/shared", os.O_CREAT | os.O_RDWR | os.O_APPEND, 0o6777)
        s.chmod("/mnt/open/shared", 0o6777)
        s.write(fd, b"12345")
        assert s.fwrite(fd, b"xy", 0) == 2  # O_APPEND: at the end whatever the offset
        shared = s.lookup("/mnt/open/shared")
        assert s.vgetattr(shared).size == 7
        # The host's killpriv chmod after a non-owner's write: allowed only as that.
        va = user.vsetattr(shared, mode=0o0777)
        assert stat.S_IMODE(va.mode) == 0o0777
        assert _errno(user.vsetattr, shared, mode=0o0700) == errno.EPERM  # a real chmod is not
        # A non-owner's times from the host mean "now"; explicit ones are the owner's.
        va = user.vsetattr(shared, atime_ns=1, mtime_ns=2, host_times=True)
        assert va.mtime_ns > 2
        assert _errno(user.vsetattr, shared, atime_ns=1, mtime_ns=2) == errno.EPERM
        va = s.vsetattr(shared, atime_ns=UTIME_OMIT, mtime_ns=5)
        assert va.mtime_ns == 5
        # Truncate: through a descriptor open for writing, or with write permission.
        ro = tmpfs.newproc(cred=Cred(2000, 2000))
        s.chmod("/mnt/open/shared", 0o644)
        assert _errno(ro.vsetattr, shared, size=0) == errno.EACCES
        assert s.vsetattr(shared, size=1, fd=fd).size == 1
        assert _errno(ro.vaccess, shared, os.W_OK) == errno.EACCES
        ro.vaccess(shared, os.R_OK)
        tmpfs.release_proc(ro)
        s.close(fd)
        s.vrele(shared)
    finally:
        tmpfs.release_proc(user)
        s.vrele(d)


def test_vmake_answers_with_the_new_entry(tmpfs: p2k.Kernel) -> None:
    s = tmpfs.sys
    s.mkdir("/mnt/open", 0o777)
    s.chmod("/mnt/open", 0o777)
    d = s.lookup("/mnt/open")
    user = tmpfs.newproc(cred=Cred(1000, 1000))
    made = []
    try:
        for kind, kw in (("dir", {"mode": 0o750}), ("node", {"mode": stat.S_IFIFO | 0o640}),
                         ("symlink", {"target": b"dir"})):
            vp, va = user.vmake(d, kind.encode(), kind, **kw)
            made.append(vp)
            assert (va.uid, va.gid, va.ino) == (1000, 1000, vp.ino)
        vp, va = user.vmake(d, b"hard", "link", link=made[1])
        made.append(vp)
        assert va.ino == made[1].ino and va.nlink == 2
        assert stat.S_ISDIR(s.vgetattr(made[0]).mode) and stat.S_ISLNK(s.vgetattr(made[2]).mode)
        assert _errno(user.vmake, d, b"dev", "node", stat.S_IFCHR | 0o600, 0x0103) == errno.EPERM
        assert _errno(user.vmake, d, b"dir", "dir", 0o755) == errno.EEXIST
        assert _errno(user.vmake, d, b"x", "nonsense") == errno.EINVAL
    finally:
        for vp in made:
            s.vrele(vp)
        tmpfs.release_proc(user)
        s.vrele(d)
