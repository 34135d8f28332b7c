"""Times outside UFS1's 32-bit signed seconds are clamped (as Linux clamps for file systems with
narrower times), in both byte orders, so the next inode write cannot fail and ``stat`` reports
what is stored; UFS2's 64-bit seconds keep the full range. Before the clamp, the next write of
such an inode raised ``struct.error`` and left an orphan behind."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from ffs_work import mount_rw, newfs

from p2k.cli.main import main

LIMIT = 1 << 31
NS = 1_000_000_000


@pytest.mark.parametrize("extra,wide", [
    (("-O", "1", "-B", "le"), False),
    (("-O", "1", "-B", "be"), False),
    (("-O", "2", "-B", "le"), True),
    (("-O", "2", "-B", "be"), True),
])
def test_times_beyond_32_bits(tmp_path: Path, extra: tuple[str, ...], wide: bool) -> None:
    img = newfs(tmp_path / "t.img", "8m", *extra)
    k = mount_rw(img)
    try:
        for name in ("late", "early", "gone"):
            fd = k.sys.open(f"/mnt/{name}", os.O_CREAT | os.O_WRONLY, 0o644)
            k.sys.write(fd, b"data" * 500)
            k.sys.close(fd)
        k.sys.utime("/mnt/late", ns=(LIMIT * NS + 5, (LIMIT + 100) * NS))
        k.sys.utime("/mnt/early", ns=(-(LIMIT + 1) * NS + 7, -LIMIT * NS))
        k.sys.utime("/mnt/gone", ns=(LIMIT * NS, LIMIT * NS))
        k.sys.unlink("/mnt/gone")  # used to fail with EIO, leaving an orphan
        late, early = k.sys.stat("/mnt/late"), k.sys.stat("/mnt/early")
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    if wide:
        assert (late.st_atime_ns, late.st_mtime_ns) == (LIMIT * NS + 5, (LIMIT + 100) * NS)
        assert (early.st_atime_ns, early.st_mtime_ns) == (-(LIMIT + 1) * NS + 7, -LIMIT * NS)
    else:
        assert (late.st_atime_ns, late.st_mtime_ns) == ((LIMIT - 1) * NS, (LIMIT - 1) * NS)
        assert (early.st_atime_ns, early.st_mtime_ns) == (-LIMIT * NS, -LIMIT * NS)
    k = mount_rw(img, ro=True)
    try:
        again = k.sys.stat("/mnt/late")
        assert (again.st_atime_ns, again.st_mtime_ns) == (late.st_atime_ns, late.st_mtime_ns)
        assert "gone" not in k.sys.listdir("/mnt")
    finally:
        k.halt()
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["fsck", "-fn", str(img)]) == 0, out.getvalue()
