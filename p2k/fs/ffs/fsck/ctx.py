"""The context every phase works in: superblock, device I/O, in-core maps, reporter, inode codec.

Kept apart from the phases so that each phase module is just its algorithm (as pass1.c … pass5.c
are in fsck_ffs) and the inode helpers of ``inode.py`` have one object to take.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.fs import FS_42INODEFMT, Superblock, ino_to_fsba, ino_to_fsbo
from p2k.fs.ffs.fsck.io import FsckIO
from p2k.fs.ffs.fsck.report import Reporter
from p2k.fs.ffs.fsck.state import FsckState
from p2k.fs.ffs.inode import Inode


@dataclass
class Options:
    mode: str = "n"  # 'n', 'y', 'p' or '' (ask)
    force: bool = False  # -f: check even a clean file system
    sblock: int | None = None  # -b: alternate superblock, in DEV_BSIZE sectors
    endian: str | None = None  # -B: convert to this byte order ('<' or '>')
    lfmode: int = 0o700  # -m: lost+found mode
    as_json: bool = False


@dataclass
class Ctx:
    fs: Superblock
    io: FsckIO
    rep: Reporter
    opts: Options
    st: FsckState = field(init=False)
    codec: DinodeCodec = field(init=False)
    sbdirty: bool = False
    csum: list[list[int]] = field(default_factory=list)  # per cg: ndir, nbfree, nifree, nffree

    def __post_init__(self) -> None:
        self.st = FsckState(self.fs)
        self.codec = DinodeCodec(self.fs.ufs2, self.fs.endian, self.fs.fs_old_inodefmt == FS_42INODEFMT)

    @property
    def isize(self) -> int:
        return self.codec.size

    def inode_offset(self, ino: int) -> int:
        fs = self.fs
        return ino_to_fsba(fs, ino) * fs.fs_fsize + ino_to_fsbo(fs, ino) * self.isize

    def ginode(self, ino: int) -> Inode:
        """Read one inode (through the block cache: neighbours are usually wanted next)."""
        off = self.inode_offset(ino)
        bsize = self.fs.fs_bsize
        base = off - off % bsize
        blk = self.io.bread(base, bsize)
        return self.codec.decode(blk, off - base, ino)

    def inodirty(self, ip: Inode) -> None:
        """Write the inode back (only ever called for a repair)."""
        buf = bytearray(self.isize)
        self.codec.encode_into(ip, buf, 0)
        self.io.write(self.inode_offset(ip.ino), buf)

    def frag_bytes(self, frag: int) -> int:
        return frag * self.fs.fs_fsize
