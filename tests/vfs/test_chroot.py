"""chroot(2): after it, absolute paths, absolute symlinks and ``..`` stop at the new root — what
``open_image`` relies on to resolve an image's own absolute symlinks inside the image."""

from __future__ import annotations

import errno

from kernel_io import errno_of, write_file

import p2k
from p2k.vfs.lwproc import Cred


def test_chroot_confines_paths_links_and_dotdot(tmpfs: p2k.Kernel) -> None:
    k = tmpfs
    k.sys.mkdir("/mnt/jail", 0o755)
    k.sys.mkdir("/mnt/jail/etc", 0o755)
    write_file(k, "/mnt/jail/etc/motd", b"inside\n")
    k.sys.symlink("/etc/motd", "/mnt/jail/abs")       # absolute: the jail's /etc/motd once chrooted
    k.sys.symlink("../../../etc/motd", "/mnt/jail/etc/rel")  # climbs past the jail's root
    p = k.newproc()
    p.chdir("/mnt/jail")
    p.chroot("/mnt/jail")
    fd = p.open("/abs", 0)
    assert p.read(fd, 100) == b"inside\n"
    p.close(fd)
    fd = p.open("/etc/rel", 0)
    assert p.read(fd, 100) == b"inside\n"
    p.close(fd)
    assert sorted(p.listdir("/../..")) == ["abs", "etc"]
    assert errno_of(p.stat, "/mnt") == errno.ENOENT
    assert errno_of(k.sys.stat, "/mnt/jail/abs") == errno.ENOENT  # unjailed, it means the kernel's /etc
    k.release_proc(p)


def test_chroot_errors(tmpfs: p2k.Kernel) -> None:
    k = tmpfs
    write_file(k, "/mnt/file", b"")
    assert errno_of(k.sys.chroot, "/mnt/file") == errno.ENOTDIR
    assert errno_of(k.sys.chroot, "/mnt/none") == errno.ENOENT
    user = k.newproc(cred=Cred(1000, 1000, ()))
    assert errno_of(user.chroot, "/mnt") == errno.EPERM
    k.release_proc(user)


def test_chroot_to_a_mount_point(tmpfs: p2k.Kernel) -> None:
    write_file(tmpfs, "/mnt/f", b"x")
    p = tmpfs.newproc()
    p.chroot("/mnt")
    assert p.listdir("/") == tmpfs.sys.listdir("/mnt") == ["f"]
    assert p.listdir("/..") == ["f"]  # '..' of a chrooted mount's root is itself, not the covered dir
    tmpfs.release_proc(p)
