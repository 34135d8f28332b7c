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
from p2k.fs.ffs.wapbl import JOURNALLOC_END_PARTITION, JOURNALLOC_IN_FILESYSTEM, SF_LOG, Replay


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


@pytest.mark.parametrize("extra", [("-O", "2"), ("-O", "1"), ("-O", "2", "-B", "be")],
                         ids=["ufs2", "ufs1", "ufs2-be"])
def test_in_filesystem_log_where_netbsd_puts_it(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """No room after the file system (what newfs and makefs leave): ``-o log`` makes the journal
    inside it, as NetBSD's wapbl_create_infs_log does — an unnamed SF_LOG inode whose indirect
    blocks come first and whose data blocks are one run, the run the superblock names."""
    img = newfs(tmp_path / "n.img", "24m", *extra)
    before = superblock(img)
    k = _mount(img)
    try:
        loc = k.mounts[0].wapbl.loc
        for i in range(40):
            k.sys.mkdir(f"/mnt/d{i}", 0o755)
            fd = k.sys.open(f"/mnt/d{i}/f", os.O_CREAT | os.O_WRONLY, 0o644)
            k.sys.write(fd, bytes([i]) * 3000)
            k.sys.fsync(fd)
            k.sys.close(fd)
        assert k.mounts[0].wapbl.commits >= 40 and k.mounts[0].wapbl.overflows == 0
        assert not _log(img).empty
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    sb = superblock(img)
    assert (sb.fs_journal_version, sb.fs_journal_location, sb.fs_journal_blksz) == (1, JOURNALLOC_IN_FILESYSTEM, 512)
    assert sb.fs_journal_ino == loc.ino and loc.size == 1 << 20  # 1 MiB per GiB, at least 1 MiB
    assert before.fs_cs_nbfree - sb.fs_cs_nbfree >= loc.size // sb.fs_bsize
    k = _mount(img, log=False)
    try:
        m = k.mounts[0]
        ip = m.read_dinode(loc.ino)
        nblk = loc.size // sb.fs_bsize
        assert (ip.mode, ip.nlink, ip.flags, ip.size) == (0o100000, 1, SF_LOG, loc.size)
        assert ip.blocks == (nblk + 1) * sb.fs_bsize // 512  # the data and one indirect block
        first = sb.fs_journal_addr * 512 // sb.fs_fsize
        assert ip.db == [first + i * sb.fs_frag for i in range(12)] and ip.ib[0] == first - sb.fs_frag
        assert m.bmapper.bmap(ip, nblk - 1) == first + (nblk - 1) * sb.fs_frag
        assert k.sys.stat("/mnt/d39/f").st_size == 3000
        named = {k.sys.lstat(f"/mnt/{n}").st_ino for n in k.sys.listdir("/mnt")}
        named |= {k.sys.lstat(f"/mnt/d{i}/f").st_ino for i in range(40)}
        assert loc.ino not in named and len(named) == 81
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    _fsck_clean(img)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["info", str(img)]) == 0
    assert f"WAPBL log, 1.0 MiB in inode {loc.ino}: not in use" in out.getvalue(), out.getvalue()
    k = _mount(img)  # the next log mount finds the same journal
    try:
        assert k.mounts[0].wapbl.loc.ino == loc.ino and k.mounts[0].wapbl.loc.addr == loc.addr
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    _fsck_clean(img)


def test_in_filesystem_log_read_by_dissect(tmp_path: Path) -> None:
    """An independent reader sees the journal inode NetBSD's way: a regular file of mode 0 and
    one link, flag SF_LOG, that no directory names."""
    dissect_ffs = pytest.importorskip("dissect.ffs")
    img = newfs(tmp_path / "d.img", "24m")
    k = _mount(img)
    try:
        ino = k.mounts[0].wapbl.loc.ino
        k.sys.mkdir("/mnt/x", 0o700)
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    with open(img, "rb") as f:
        fs = dissect_ffs.FFS(f)
        node = fs.inode(ino).inode
        assert (node.di_mode, node.di_nlink, node.di_flags) == (0o100000, 1, SF_LOG)
        assert node.di_size == 1 << 20
        names = {e.name for e in fs.get("/").iterdir()}
        assert names == {".", "..", "x"} or names == {".", "..", "x", "lost+found"}


def test_no_room_anywhere_for_a_log(tmp_path: Path) -> None:
    """Full of data with no run of a quarter MiB left free and none after it: one line, ENOSPC,
    the image left as fsck finds it clean."""
    img = newfs(tmp_path / "n.img", "4m")
    k = _mount(img, log=False)
    try:
        i = 0
        while True:
            fd = k.sys.open(f"/mnt/f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
            try:
                k.sys.write(fd, b"x" * 200_000)
            except OSError:
                k.sys.close(fd)
                break
            k.sys.close(fd)
            i += 1
        for j in range(0, i, 2):
            k.sys.unlink(f"/mnt/f{j}")  # free space, but only in runs shorter than the log's quarter
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    with pytest.raises(OSError) as ei:
        _mount(img)
    assert ei.value.errno == errno.ENOSPC and "in-file-system journal" in str(ei.value)
    assert "\n" not in str(ei.value)
    sb = superblock(img)  # refused before the file system was marked unclean
    assert sb.fs_clean & ffs_fs.FS_ISCLEAN and sb.fs_journal_version == 0
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
