"""rump_server's ``-d ...,part=NAME``: a partition of a whole disk as the server's device.

The disk is the NetBSD one (label in an MBR slice); the server is started as a script would, a
client mounts the device and reads the source files back. A container given to rump_server (which
opens read-write) is refused at start-up with one line naming the conversion.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import diskimg as d
import pytest
from server_harness import ServerProc, run, start

import p2k

pytestmark = pytest.mark.skipif(not d.HAVE_TOOLS, reason="needs makefs, sfdisk, sgdisk and mmls")


def test_part_drivespec_serves_the_partition(tmp_path: Path, servers: list[ServerProc]) -> None:
    disk = d.netbsd_mbr(tmp_path)
    s = start(tmp_path, "unix://sock", "-d", f"key=/dev/dk,hostpath={disk.path},part=s1a")
    servers.append(s)
    files = d.tree_files(disk.filesystems[0].tree)
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        for rel, data in files.items():
            fd = c.sys.open(f"/mnt/{rel}", 0)
            got = b""
            while chunk := c.sys.read(fd, 1 << 16):
                got += chunk
            c.sys.close(fd)
            assert got == data, rel
    assert s.halt().returncode == 0


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
def test_container_drivespec_is_refused(tmp_path: Path) -> None:
    disk = d.netbsd_mbr(tmp_path)
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(disk.path), str(qcow)], check=True)
    r = run("rump_server", "-d", f"key=/dev/dk,hostpath={qcow},part=s1a", "unix://sock2", cwd=tmp_path)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "qemu-img convert -O raw" in lines[0] and "Traceback" not in r.stderr
