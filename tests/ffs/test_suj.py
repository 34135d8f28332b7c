"""FreeBSD soft updates with a journal (SU+J), unclean: what p2k does with it.

The images are built as FreeBSD builds them (facts from FreeBSD's sys/ufs/ffs/fs.h, tunefs.c
and fsck_ffs): ``tunefs -j enable`` makes ``/.sujournal``, a regular file of mode 0400 with
``SF_IMMUTABLE | SF_NOUNLINK | UF_NODUMP``, and sets ``FS_DOSOFTDEP | FS_SUJ``; a running kernel
keeps the file system unclean (``fs_clean`` 0, ``FS_UNCLEAN``) and records its mount time in
``fs_mtime``. p2k mounts such an image read-only with a one-line note, refuses read-write,
``fsck -y`` does the full check and leaves the journal as FreeBSD's fsck_ffs does after one
(flags and file kept, ``fs_mtime`` renewed so the old records are stale, clean with
``FS_UNCLEAN``/``FS_NEEDSFSCK`` cleared), and the read-write mount then works.
"""

from __future__ import annotations

import errno
import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from ffs_work import mount_rw, newfs
from wapbl_build import file_pread, file_sha, superblock, write_sb

from p2k.cli.main import main
from p2k.fs.ffs import fs as ffs_fs
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.suj import SUJ_FLAGS

SUJ_SIZE = 4 * 1024 * 1024  # FreeBSD's SUJ_MIN
MOUNT_TIME = 1_700_000_000


def fsck(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["fsck", *args])
    return code, out.getvalue()


def _dinode(img: Path, ino: int) -> object:
    sb = superblock(img)
    off = ffs_fs.ino_to_fsba(sb, ino) * sb.fs_fsize + ffs_fs.ino_to_fsbo(sb, ino) * sb.inode_size
    raw = bytearray(file_pread(img)(off, sb.inode_size))
    return off, raw, DinodeCodec(sb.ufs2, sb.endian)


def suj_image(path: Path, *extra: str) -> tuple[Path, int]:
    """A file system with a tunefs-made journal, left unclean by a FreeBSD kernel."""
    newfs(path, "24m", *extra)
    k = mount_rw(path)
    try:
        k.sys.mkdir("/mnt/d", 0o755)
        for i in range(20):
            fd = k.sys.open(f"/mnt/d/f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
            k.sys.write(fd, bytes([i]) * (1000 * i + 1))
            k.sys.close(fd)
        fd = k.sys.open("/mnt/.sujournal", os.O_CREAT | os.O_WRONLY, 0o400)
        k.sys.write(fd, b"\xa5" * SUJ_SIZE)
        k.sys.close(fd)
        jino = k.sys.stat("/mnt/.sujournal").st_ino
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    off, raw, codec = _dinode(path, jino)
    ip = codec.decode(raw, 0, jino)
    ip.flags = SUJ_FLAGS
    ip.mode = 0o100400
    codec.encode_into(ip, raw, 0)
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(raw)
    sb = superblock(path)
    sb.fs_flags |= ffs_fs.FS_DOSOFTDEP | ffs_fs.FS_SUJ | ffs_fs.FS_UNCLEAN
    sb.fs_clean = 0
    sb.fs_mtime = MOUNT_TIME
    sb.fs_sujfree = 0
    write_sb(path, sb)
    return path, jino


@pytest.mark.parametrize("extra", [("-O", "2"), ("-O", "1", "-B", "be")])
def test_suj_unclean(tmp_path: Path, extra: tuple[str, ...]) -> None:
    img, jino = suj_image(tmp_path / "suj.img", *extra)
    before = file_sha(img)
    k = mount_rw(img, ro=True)
    try:
        assert any("soft-updates journal is not replayed" in n for n in k.mounts[0].notes)
        assert k.sys.stat("/mnt/d/f7").st_size == 7001
    finally:
        k.halt()
    with pytest.raises(OSError) as ei:
        mount_rw(img)
    assert ei.value.errno == errno.EROFS and "fsck -y" in str(ei.value)
    assert file_sha(img) == before
    code, out = fsck("-y", str(img))
    assert code == 0 and "Skipping journal, falling through to full fsck" in out, out
    sb = superblock(img)
    assert sb.fs_clean & ffs_fs.FS_ISCLEAN
    assert sb.fs_flags & (ffs_fs.FS_DOSOFTDEP | ffs_fs.FS_SUJ) == ffs_fs.FS_DOSOFTDEP | ffs_fs.FS_SUJ
    assert not sb.fs_flags & (ffs_fs.FS_UNCLEAN | ffs_fs.FS_NEEDSFSCK)
    assert sb.fs_mtime > MOUNT_TIME  # the old journal's records are stale now
    _, raw, codec = _dinode(img, jino)
    ip = codec.decode(raw, 0, jino)
    assert (ip.flags, ip.mode, ip.size, ip.nlink) == (SUJ_FLAGS, 0o100400, SUJ_SIZE, 1)
    code, out = fsck("-fn", str(img))
    assert code == 0, out
    # read-write: soft updates off, the journal file released as tunefs -j disable does
    k = mount_rw(img)
    try:
        assert k.sys.stat("/mnt/.sujournal").st_ino == jino
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    sb = superblock(img)
    assert not sb.fs_flags & (ffs_fs.FS_DOSOFTDEP | ffs_fs.FS_SUJ) and sb.fs_sujfree == 0
    _, raw, codec = _dinode(img, jino)
    assert codec.decode(raw, 0, jino).flags == 0
    assert fsck("-fn", str(img))[0] == 0
    k = mount_rw(img)
    try:
        k.sys.unlink("/mnt/.sujournal")
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    assert fsck("-fn", str(img))[0] == 0
