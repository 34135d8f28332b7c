"""``p2k umount`` recognises a p2k mount from the host's mount table, not only by stat'ing the
mount point: a mount whose daemon is gone or whose root has become unreadable cannot be stat'ed,
and used to get ENOENT ("only fusermount3 -u clears it")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fuse_harness import P2K, start_mount, stop

from p2k.cli.mount import in_mount_table

pytestmark = pytest.mark.fuse


def test_mount_table_lookup(tmp_path: Path) -> None:
    mnt = tmp_path / "dir with space"
    m = start_mount(mnt, "-t", "tmpfs", "none")
    try:
        assert in_mount_table(str(mnt))  # the table escapes the space as \040
        assert in_mount_table(os.path.relpath(mnt))
        assert not in_mount_table(str(tmp_path))
        r = subprocess.run([P2K, "umount", str(mnt)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert not in_mount_table(str(mnt))
    finally:
        stop(m)
