"""What fsck remembers between phases, in flat arrays indexed by inode or fragment number.

NetBSD's fsck_ffs keeps a state byte, a type byte and a link-count word per inode and one bit per
fragment; so do we, in ``bytearray``/``array`` objects, never a Python object per inode or block.
That is what keeps a million-inode, multi-gigabyte image within a few tens of megabytes: about
14 bytes per inode plus one bit per fragment. Only the rare things (duplicate claims, zero-link
inodes, directories' parents) have their own small tables.
"""

from __future__ import annotations

from array import array

from p2k.fs.ffs.fs import Superblock

# Inode states (fsck.h). USTATE: unallocated; FSTATE: a file; DSTATE: a directory not yet reached
# from the root; DFOUND: a reached directory; DCLEAR/FCLEAR: to be cleared (bad or duplicate blocks).
USTATE = 1
FSTATE = 2
DSTATE = 3
DFOUND = 4
DCLEAR = 5
FCLEAR = 6
DIR_STATES = (DSTATE, DFOUND, DCLEAR)
NO_DOTDOT = 0xFFFFFFFF  # i_dotdot "not seen yet" is 0; this marks "do not check"


class FsckState:
    """The in-core maps of one check. ``blockmap`` has bit ``f`` set when fragment ``f`` is in use
    (metadata or claimed by an inode), in the same bit order as a cg's fragment map, so phase 5 can
    cut a cg's expected map out of it with byte operations."""

    def __init__(self, fs: Superblock) -> None:
        self.fs = fs
        self.maxino = fs.fs_ncg * fs.fs_ipg
        self.maxfsblock = fs.fs_size
        self.statemap = bytearray([USTATE]) * self.maxino
        self.typemap = bytearray(self.maxino)  # d_type (IFTODT) of every allocated inode
        self.lncnt = array("i", bytes(4 * self.maxino))  # di_nlink minus references seen
        self.parent = array("I", bytes(4 * self.maxino))  # directory whose entry names it
        self.dotdot = array("I", bytes(4 * self.maxino))  # what its ".." says
        self.dirs = array("I")  # directory inodes, in inode order
        self.blockmap = bytearray((self.maxfsblock + 7) // 8)
        self.dups: dict[int, int] = {}  # fragment -> extra claims (rare)
        self.stopped: dict[int, int] = {}  # inode -> blocks phase 1 visited before it gave up (rare)
        self.zlnlist = array("I")  # allocated inodes with di_nlink == 0
        self.n_files = 0
        self.n_blks = 0
        self.lfdir = 0
        self.cg_bad: set[int] = set()  # cgs whose header failed the magic check in phase 1
        self.inosused_limit: list[int] = []  # per cg: inodes phase 1 scanned (UFS2 initediblk)

    # ---- fragment map: every claim is within one block, so within one bitmap byte ----
    def testbmap(self, f: int) -> bool:
        return bool(self.blockmap[f >> 3] & (1 << (f & 7)))

    def claim(self, f: int, n: int) -> int:
        """Mark fragments ``f .. f+n-1`` used; return the mask of those already in use (dups).

        A block or fragment run never crosses a block boundary and a block is at most 8 fragments
        aligned on a multiple of its size, so the run lies inside one byte of the map."""
        i = f >> 3
        mask = ((1 << n) - 1) << (f & 7)
        old = self.blockmap[i]
        self.blockmap[i] = old | mask
        return old & mask

    def claim_range(self, start: int, end: int) -> None:
        """Mark [start, end) used (metadata areas), whole bytes at a time."""
        bm = self.blockmap
        while start < end and start & 7:
            bm[start >> 3] |= 1 << (start & 7)
            start += 1
        full = (end - start) >> 3
        if full > 0:
            bm[start >> 3:(start >> 3) + full] = b"\xff" * full
            start += full << 3
        while start < end:
            bm[start >> 3] |= 1 << (start & 7)
            start += 1

    def release(self, f: int, n: int) -> None:
        i = f >> 3
        self.blockmap[i] &= ~(((1 << n) - 1) << (f & 7)) & 0xFF

    def find_free_frags(self, n: int) -> int:
        """First run of ``n`` free fragments inside one block (fsck's allocblk); 0 if none."""
        fs = self.fs
        frag = fs.fs_frag
        bm = self.blockmap
        want = (1 << n) - 1
        for c in range(fs.fs_ncg):
            from p2k.fs.ffs.fs import cgdmin
            lo = cgdmin(fs, c)
            hi = min((c + 1) * fs.fs_fpg, self.maxfsblock)
            b = lo - lo % frag
            while b + frag <= hi:
                byte = bm[b >> 3]
                bits = (byte >> (b & 7)) & ((1 << frag) - 1)
                if bits != (1 << frag) - 1:
                    for k in range(frag - n + 1):
                        if not (bits >> k) & want and b + k >= lo:
                            return b + k
                b += frag
        return 0
