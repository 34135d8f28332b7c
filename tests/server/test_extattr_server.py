"""Extended attributes and ACLs over the server protocol: the client's ``extattr_*``/``acl_*``
calls, then a remote FUSE mount (``p2k mount --server``) reading and writing them with the host's
getfattr/setfattr/getfacl/setfacl."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fuse_harness import start_mount, stop
from server_harness import ServerProc, run

from p2k.vfs.acl import ACL_TYPE_ACCESS, ACL_UNDEFINED_ID
from p2k.vfs.extattr import EXTATTR_NAMESPACE_SYSTEM, EXTATTR_NAMESPACE_USER

U, S = EXTATTR_NAMESPACE_USER, EXTATTR_NAMESPACE_SYSTEM
X = ACL_UNDEFINED_ID


def test_client_calls(server: ServerProc) -> None:
    with server.connect() as c:
        s = c.sys
        fd = s.open("/mnt/f", os.O_CREAT | os.O_RDWR, 0o644)
        assert s.extattr_set_fd(fd, U, b"a", b"1") == 1
        s.extattr_set_file("/mnt/f", S, b"s", bytes(300))
        assert s.extattr_get_file("/mnt/f", U, b"a") == b"1"
        assert s.extattr_list_fd(fd, S) == [b"s"]
        s.extattr_delete_link("/mnt/f", U, b"a")
        with pytest.raises(OSError) as ei:
            s.extattr_get_fd(fd, U, b"a")
        assert ei.value.errno == errno.ENODATA
        acl = [(1, X, 6), (2, 1234, 4), (4, X, 4), (0x10, X, 4), (0x20, X, 0)]
        s.acl_set_file("/mnt/f", ACL_TYPE_ACCESS, acl)
        assert s.acl_get_file("/mnt/f", ACL_TYPE_ACCESS) == [tuple(e) for e in acl]
        assert s.fstat(fd).st_mode & 0o777 == 0o640
        with pytest.raises(OSError) as ei:
            s.acl_set_file("/mnt/f", ACL_TYPE_ACCESS, [(1, X, 6)])
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(OSError) as ei:
            s.extattr_get_file("/mnt/f", U, [b"bad"])  # type: ignore[arg-type]
        assert ei.value.errno == errno.EINVAL
        s.close(fd)


@pytest.mark.fuse
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("getfattr") is None or shutil.which("getfacl") is None,
                    reason="needs root, attr and acl")
def test_remote_mount_xattrs(tmp_path: Path, server: ServerProc) -> None:
    m = start_mount(tmp_path / "m", "--server", server.url, "/mnt")
    try:
        f = m.path / "f"
        f.write_text("remote")
        subprocess.run(["setfattr", "-n", "user.k", "-v", "v", str(f)], check=True)
        out = subprocess.run(["getfattr", "-d", str(f)], capture_output=True, text=True, check=True).stdout
        assert 'user.k="v"' in out
        subprocess.run(["setfacl", "-m", "u:4321:r", str(f)], check=True)
        out = subprocess.run(["getfacl", "-n", "-p", str(f)], capture_output=True, text=True, check=True).stdout
        assert "user:4321:r--" in out
    finally:
        stop(m)
    with server.connect() as c:
        assert c.sys.extattr_get_file("/mnt/f", U, b"k") == b"v"
        assert (2, 4321, 4) in [tuple(e) for e in c.sys.acl_get_file("/mnt/f", ACL_TYPE_ACCESS)]


def test_getfattr_setfattr_with_RUMP_SERVER(server: ServerProc) -> None:
    env = {"RUMP_SERVER": server.url}
    with server.connect() as c:
        c.sys.close(c.sys.open("/mnt/g", os.O_CREAT | os.O_RDWR, 0o644))
    assert run("p2k", "setfattr", "-n", "user.via", "-v", "server", "/mnt/g", env=env).returncode == 0
    r = run("p2k", "getfattr", "/mnt/g", env=env)
    assert r.returncode == 0 and 'user.via="server"' in r.stdout, r.stderr
    with server.connect() as c:
        assert c.sys.extattr_get_file("/mnt/g", U, b"via") == b"server"


def test_attributes_of_a_file_with_an_enforced_acl_travel(tmp_path: Path) -> None:
    """On a mount that enforces ACLs the driver's attributes carry the ACL (AclVattr); what a
    server sends for them is the plain attributes."""
    from p2k.sp.protocol import decode, encode
    from p2k.vfs.acl import AclVattr
    from p2k.vfs.vattr import Vattr

    va = AclVattr(0o100640, 1, 0, 0, 5, 12, acl=[(1, X, 6), (4, X, 4), (0x20, X, 0)])
    back = decode(encode(va))
    assert type(back) is Vattr and back.mode == 0o100640 and back.ino == 12
