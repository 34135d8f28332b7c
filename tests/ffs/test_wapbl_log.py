"""``-o log`` mounts: where the journal goes, what the log looks like while mounted and after,
and refusals in one line."""

from __future__ import annotations

import errno
import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from ffs_work import newfs
from wapbl_build import open_log_of, superblock
from wapbl_fixtures import manifest, p2k_manifest, unpack

import p2k
from p2k.cli.main import main
from p2k.fs.ffs import fs as ffs_fs
from p2k.fs.ffs.wapbl import JOURNALLOC_END_PARTITION, Replay


def _mount(img: Path, log: bool = True) -> p2k.Kernel:
    k = p2k.Kernel()
    k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
    k.sys.mkdir("/mnt", 0o755)
    k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk", **({"log": ""} if log else {})})
    return k


def _log(img: Path) -> Replay:
    return open_log_of(img)


def _fsck_clean(img: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["fsck", "-fn", str(img)]) == 0, out.getvalue()


def test_end_of_partition_log(tmp_path: Path) -> None:
    img = newfs(tmp_path / "l.img", "8m")
    with open(img, "r+b") as f:
        f.truncate((8 << 20) + (1 << 20))
    k = _mount(img)
    try:
        mp = k.mounts[0]
        on_disk = superblock(img)
        assert on_disk.fs_flags & ffs_fs.FS_DOWAPBL  # set with the unclean mark, before any metadata
        assert on_disk.fs_journal_location == JOURNALLOC_END_PARTITION
        for i in range(30):
            fd = k.sys.open(f"/mnt/f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
            k.sys.write(fd, bytes([i]) * 5000)
            k.sys.fsync(fd)
            k.sys.close(fd)
        k.sys.unlink("/mnt/f3")
        assert mp.wapbl.commits >= 30 and mp.wapbl.overflows == 0
        rp = _log(img)  # the last transaction stays until the next commit header drops it
        assert not rp.empty and rp.transactions == 1 and rp.header.wc_tail != 2 * 512
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    assert _log(img).empty  # unmount empties it
    k = _mount(img, log=False)
    try:
        assert k.sys.stat("/mnt/f29").st_size == 5000 and "f3" not in k.sys.listdir("/mnt")
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    sb = superblock(img)
    assert not sb.fs_flags & ffs_fs.FS_DOWAPBL and sb.fs_clean & ffs_fs.FS_ISCLEAN
    assert sb.fs_journal_version == 1  # the log stays where it is, for the next log mount
    _fsck_clean(img)


def test_no_room_for_a_log(tmp_path: Path) -> None:
    img = newfs(tmp_path / "n.img", "8m")
    with pytest.raises(OSError) as ei:
        _mount(img)
    assert ei.value.errno == errno.ENOSPC and "in-file-system journals" in str(ei.value)
    _fsck_clean(img)


def test_log_mount_uses_netbsds_in_filesystem_journal(tmp_path: Path) -> None:
    img = unpack("c11", tmp_path)
    gen0 = _log(img).header.wc_generation
    k = _mount(img)
    try:
        assert k.mounts[0].wapbl.loc.ino == 233
        fd = k.sys.open("/mnt/new", os.O_CREAT | os.O_WRONLY, 0o600)
        k.sys.write(fd, b"journaled\n")
        k.sys.fsync(fd)
        k.sys.close(fd)
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    assert _log(img).header.wc_generation > gen0
    _fsck_clean(img)
    k = _mount(img, log=False)
    try:
        got = p2k_manifest(k)
    finally:
        k.halt()
    assert [ln for ln in got if not ln.startswith("/new\t")] == manifest("c11")
