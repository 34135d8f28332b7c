"""The UFS2 extended-attribute area in fsck (FreeBSD fsck_ffs pass1.c's di_extsize/di_extb checks,
plus the record chain, which fsck_ffs does not read).

- ``ext_bad_size``: ``di_extsize`` beyond two blocks, or an ext block pointer past the area —
  fsck_ffs treats both as a bad inode ("UNKNOWN FILE TYPE", then CLEAR), and so does pass 1 here;
- ``ext_blocks``: every ext block as (fragment, count), the last one a fragment run rounded up
  from the size as for a file's last block, handed to pass 1's block check (so BAD and DUP are
  reported and claimed exactly like data blocks) and to clri (so a cleared inode frees them);
- ``check_records``: the records must chain to the end of the area (a zeroed tail is allowed, as
  FreeBSD's reader allows it). If not: "BAD EXTATTR AREA I=n (why)" and TRUNCATE keeps the
  well-formed prefix — the size goes down, pointers past it are cleared, and the fragments no
  longer claimed are freed by phase 5 while the block count is corrected in phase 1.
"""

from __future__ import annotations

from collections.abc import Callable

from p2k.fs.ffs.extattr import UFS_NXADDR, area_runs, walk_area
from p2k.fs.ffs.fsck.ctx import Ctx
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFMT, Inode


def ext_bad_size(ctx: Ctx, ip: Inode) -> str | None:
    fs = ctx.fs
    if not fs.ufs2:
        return None
    if ip.extsize > UFS_NXADDR * fs.fs_bsize:
        return f"ext area size {ip.extsize} beyond {UFS_NXADDR} blocks"
    nruns = len(area_runs(fs, ip.extsize))
    for j in range(nruns, UFS_NXADDR):
        if ip.extb[j]:
            return f"ext block {j} allocated past the ext area"
    return None


def ext_blocks(ctx: Ctx, ip: Inode, func: Callable[[int, int, int, int], int]) -> None:
    """Call ``func(frag, nfrags, lbn, -1)`` for each ext block (lbn -1, -2 as FFS numbers them)."""
    fs = ctx.fs
    if not fs.ufs2 or ip.mode & IFMT in (IFCHR, IFBLK):
        return
    for j, size in enumerate(area_runs(fs, min(ip.extsize, UFS_NXADDR * fs.fs_bsize))):
        if ip.extb[j]:
            func(ip.extb[j], size >> fs.fs_fshift, -1 - j, -1)


def check_records(ctx: Ctx, ip: Inode) -> None:
    """The record chain of an inode whose ext blocks all passed the block check."""
    fs = ctx.fs
    if not ip.extsize or ext_bad_size(ctx, ip):
        return
    parts = []
    for j, size in enumerate(area_runs(fs, ip.extsize)):
        a = ip.extb[j]
        if a <= 0 or a + (size >> fs.fs_fshift) > ctx.st.maxfsblock:
            return  # a hole or a bad block (UFS2's pointers are signed): the block check reports it
        parts.append(ctx.io.bread(a * fs.fs_fsize, size))
    _, why, good = walk_area(b"".join(parts)[:ip.extsize], fs.endian)
    if why is None:
        return
    if ctx.rep.ask(f"BAD EXTATTR AREA I={ip.ino} ({why})", "TRUNCATE", preen_action="TRUNCATED",
                   ino=ip.ino, kind="bad extattr area", reason=why):
        ip.extsize = good
        keep = len(area_runs(fs, good))
        ip.extb = ip.extb[:keep] + [0] * (UFS_NXADDR - keep)
        ctx.inodirty(ip)
