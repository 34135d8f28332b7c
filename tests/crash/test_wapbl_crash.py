"""Power cuts on a NetBSD image that carries an in-file-system WAPBL journal (mounted without
``log``, as NetBSD's non-log mount does): after fsck the journal inode is still there, with its
flag and blocks, and nothing else is left unreferenced — fsck treats it as NetBSD's fsck_ffs does."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ffs_work import mount_rw
from wapbl_build import file_pread, superblock
from wapbl_fixtures import unpack

from p2k.crash.runner import _run_workload, count_writes, fsck_image, run_cut
from p2k.etfs.fault import FaultPlan
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.fs import ino_to_fsba, ino_to_fsbo
from p2k.fs.ffs.wapbl import SF_LOG, journal_inode


def _journal(img: Path) -> tuple[int, int, int]:
    sb = superblock(img)
    ino = journal_inode(sb, img.stat().st_size)
    off = ino_to_fsba(sb, ino) * sb.fs_fsize + ino_to_fsbo(sb, ino) * sb.inode_size
    ip = DinodeCodec(sb.ufs2, sb.endian).decode(file_pread(img)(off, sb.inode_size), 0, ino)
    return ino, ip.flags & SF_LOG, ip.size


def _emptied(tmp: Path) -> Path:
    img = unpack("c01", tmp)
    k = mount_rw(img)
    try:
        def rm(p: str) -> None:
            if stat.S_ISDIR(k.sys.lstat(p).st_mode):
                for n in k.sys.listdir(p):
                    rm(f"{p}/{n}")
                k.sys.rmdir(p)
            else:
                k.sys.unlink(p)
        for n in k.sys.listdir("/mnt"):
            rm(f"/mnt/{n}")
        k.sys.unmount("/mnt")
    finally:
        k.halt()
    return img


def test_power_cuts_keep_the_journal_inode(tmp_path: Path) -> None:
    template = _emptied(tmp_path)
    before = _journal(template)
    assert before[0] and before[1]
    total = count_writes(template, tmp_path, "mixed", 3)
    for cut in (total // 4, total // 2, 3 * total // 4):
        res = run_cut(template, tmp_path, "mixed", 3, cut)  # the campaign's own checks
        assert res.ok and not res.problems, res.problems
        image = tmp_path / "cut.img"  # the same cut again, to look at the journal inode after fsck
        shutil.copyfile(template, image)
        _run_workload(image, "mixed", 3, FaultPlan(power_cut=cut, seed=3 * 100_003 + cut))
        fixed = fsck_image(image, "y")
        out = "\n".join(fixed.lines)
        assert fixed.code in (0, 4) and "UNREF FILE I=" + str(before[0]) + " " not in out, out
        assert _journal(image) == before


def test_log_mount_power_cuts_need_only_replay(tmp_path: Path) -> None:
    """``-o log``: at every cut point the survivor, replayed (no fsck repair at all), is clean,
    holds every fsync'ed file, mounts read-write and takes new writes."""
    from p2k.crash.runner import make_image

    template = tmp_path / "t.img"
    make_image(template, 2, log=True)
    for name in ("mixed", "dirchurn"):
        total = count_writes(template, tmp_path, name, 5, log=True)
        step = 1 if os.environ.get("P2K_FULL") == "1" else max(1, total // 12)  # FULL: every write
        for cut in range(1, total + 1, step):
            res = run_cut(template, tmp_path, name, 5, cut, log=True)
            assert res.ok, (name, cut, res.problems)


def test_log_mount_that_creates_its_journal_survives_power_cuts(tmp_path: Path) -> None:
    """``-o log`` on an image with no room after it (the usual case): the mount makes the journal
    inside the file system first. A cut during that is an ordinary unclean file system (fsck
    repairs it, fsync'ed data kept); a cut after it needs replay only, as for any log mount."""
    from p2k.crash.runner import journal_named, make_image

    template = tmp_path / "t.img"
    make_image(template, 2)
    total = count_writes(template, tmp_path, "mixed", 7, log=True)
    first = list(range(1, 12))  # the creation: cg, inode and indirect blocks, the naming superblock
    step = 1 if os.environ.get("P2K_FULL") == "1" else max(1, total // 10)
    named = []
    for cut in first:  # which of the first cuts fall after the superblock named the journal
        image = tmp_path / "probe.img"
        shutil.copyfile(template, image)
        _run_workload(image, "mixed", 7, FaultPlan(power_cut=cut, seed=7 * 100_003 + cut), log=True)
        named.append(journal_named(image))
    assert any(named) and not all(named), named
    for cut in sorted(set(first + list(range(12, total + 1, step)))):
        res = run_cut(template, tmp_path, "mixed", 7, cut, log=True)
        assert res.ok, (cut, res.problems)
