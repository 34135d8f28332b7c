"""Non-root access through the mount: the kernel's permission rules, now reached from the host.

The suite runs against the local mounts (tmpfs, FFS) and the remote one (``p2k mount --server``),
which sends each request's caller credentials to the server: both must give the same answers.

The tree is prepared as root; each check runs as nobody (uid/gid 65534, no groups) through
``setpriv`` in a small Python program that prints the errno of each step, so one process covers
many rules. The mount uses ``allow_other`` so that another user may enter it at all.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuse_harness import FS_KINDS, Mount, mounted

pytestmark = [pytest.mark.fuse, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")]



@pytest.fixture(scope="module", params=[*FS_KINDS, "remote"])
def fsmount(request: pytest.FixtureRequest) -> Iterator[Mount]:
    with mounted(request.param) as m:
        yield m


NOBODY = 65534
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

# Runs as nobody: every step prints "name: OK" or "name: ERRNAME".
PROBE = r"""
import errno, json, os, stat, sys
base = sys.argv[1]
out = {}
def step(name, fn):
    try:
        r = fn()
        out[name] = "OK" if r is None else r
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
def j(*p): return os.path.join(base, *p)
step("list_private", lambda: os.listdir(j("private")))
step("stat_under_private", lambda: os.stat(j("private", "inner")) and None)
step("read_0600", lambda: open(j("secret")).read() and None)
step("write_0644", lambda: open(j("readonly"), "a").close())
step("create_in_0755", lambda: open(j("rootdir", "mine"), "w").close())
step("unlink_sticky_other", lambda: os.unlink(j("sticky", "rootfile")))
step("rename_sticky_other", lambda: os.rename(j("sticky", "rootfile"), j("sticky", "moved")))
def own_in_sticky():
    open(j("sticky", "nobodyfile"), "w").close()
    os.rename(j("sticky", "nobodyfile"), j("sticky", "nobodyfile2"))
    os.unlink(j("sticky", "nobodyfile2"))
step("own_file_in_sticky", own_in_sticky)
def suid_write():
    with open(j("suid"), "r+b") as f:
        f.write(b"changed")
    return oct(os.stat(j("suid")).st_mode & 0o7777)
step("suid_after_write", suid_write)
def ftrunc():
    fd = os.open(j("open", "zero"), os.O_CREAT | os.O_RDWR, 0)
    os.ftruncate(fd, 100)
    os.write(fd, b"abc")
    os.close(fd)
    return oct(os.stat(j("open", "zero")).st_mode & 0o777) + "/" + str(os.stat(j("open", "zero")).st_size)
step("ftruncate_mode0", ftrunc)
step("utime_now_writable", lambda: os.utime(j("shared")))
step("utime_explicit_writable", lambda: os.utime(j("shared"), ns=(1, 1)))
step("utime_now_readonly", lambda: os.utime(j("readonly")))
step("chmod_other", lambda: os.chmod(j("shared"), 0o777))
step("chown_own", lambda: os.chown(j("open"), 0, -1))
step("move_dir_no_write", lambda: os.rename(j("open", "rootsub"), j("open", "elsewhere", "rootsub")))
step("rename_dir_same_parent", lambda: os.rename(j("open", "rootsub"), j("open", "rootsub2")))
step("access_w_readonly", lambda: os.access(j("readonly"), os.W_OK))
step("mknod_dev", lambda: os.mknod(j("open", "dev"), stat.S_IFCHR | 0o600, os.makedev(1, 3)))
step("mkfifo", lambda: os.mkfifo(j("open", "fifo")))
step("exec_noexec", lambda: os.execv(j("noexec.sh"), ["x"]))
print(json.dumps(out))
"""


def prepare(d: Path) -> None:
    (d / "private").mkdir(mode=0o700)
    (d / "private/inner").write_text("x")
    (d / "secret").write_text("s")
    os.chmod(d / "secret", 0o600)
    (d / "readonly").write_text("r")
    os.chmod(d / "readonly", 0o644)
    (d / "rootdir").mkdir(mode=0o755)
    (d / "sticky").mkdir()
    os.chmod(d / "sticky", 0o1777)
    (d / "sticky/rootfile").write_text("r")
    os.chmod(d / "sticky/rootfile", 0o666)
    (d / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(d / "suid", 0o4777)
    (d / "open").mkdir()
    os.chmod(d / "open", 0o777)
    os.chown(d / "open", NOBODY, NOBODY)
    (d / "open/rootsub").mkdir(mode=0o755)
    (d / "open/elsewhere").mkdir(mode=0o777)
    (d / "shared").write_text("w")
    os.chmod(d / "shared", 0o666)
    (d / "noexec.sh").write_text("#!/bin/sh\n")
    os.chmod(d / "noexec.sh", 0o644)


def test_permission_rules_as_nobody(work: Path) -> None:
    os.chmod(work, 0o755)
    prepare(work)
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        PYTHON, "-c", PROBE, str(work)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = {
        "list_private": "EACCES",
        "stat_under_private": "EACCES",
        "read_0600": "EACCES",
        "write_0644": "EACCES",
        "create_in_0755": "EACCES",
        "unlink_sticky_other": "EPERM",
        "rename_sticky_other": "EPERM",
        "own_file_in_sticky": "OK",
        "suid_after_write": "0o777",
        "ftruncate_mode0": "0o0/100",
        "utime_now_writable": "OK",
        "utime_explicit_writable": "EPERM",
        "utime_now_readonly": "EACCES",
        "chmod_other": "EPERM",
        "chown_own": "EPERM",
        "move_dir_no_write": "EACCES",
        "rename_dir_same_parent": "OK",
        "access_w_readonly": False,
        "mknod_dev": "EPERM",
        "mkfifo": "OK",
        "exec_noexec": "EACCES",
    }
    assert got == want
    assert stat.S_ISFIFO(os.stat(work / "open/fifo").st_mode)
    assert os.stat(work / "open/zero").st_uid == NOBODY
    assert (work / "sticky/rootfile").exists()


def test_setgid_directory_and_groups(work: Path) -> None:
    """A new file takes the group of a set-gid directory; supplementary groups grant access."""
    d = work / "sgid"
    d.mkdir()
    os.chown(d, 0, 4242)
    os.chmod(d, 0o2775)
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--groups=4242",
                        PYTHON, "-c", f"import os; os.mkdir({str(d / 'sub')!r}); open({str(d / 'f')!r}, 'w').close()"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert os.stat(d / "f").st_gid == 4242
    assert os.stat(d / "sub").st_gid == 4242 and os.stat(d / "sub").st_mode & stat.S_ISGID


