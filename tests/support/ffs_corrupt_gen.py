"""A corruption generator for FFS images: each kind of damage is a function ``(image, rng)`` that
breaks a fresh image in one specific way and returns a ``Damage`` saying what it did, which
fsck_ffs message must name it, and which paths it may legitimately lose.

The damage is done with p2k's on-disk codecs (superblock, cg, dinode) over plain file I/O, never
through the driver, so fsck sees exactly the bytes a crash or a bug would leave. The fixture
tree (``make_small_tree``) is what the images are made from; ``KINDS`` lists every kind.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from p2k.fs.ffs.cg import Cg
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.fs import Superblock, cgbase, cgdmin, cgtod, find_superblock, ino_to_fsba, ino_to_fsbo
from p2k.fs.ffs.inode import Inode


@dataclass
class Damage:
    text: str  # what was done, for the test report
    expect: str  # a message fsck -n must print (a substring)
    touched: set[str] = field(default_factory=set)  # paths whose contents may not survive repair
    moved: dict[str, int] = field(default_factory=dict)  # path -> inode reconnected in lost+found
    expect_y: str = ""  # a message the repairing run must print, when -n cannot get to it

    def __str__(self) -> str:
        return self.text


def make_small_tree(root: Path) -> Path:
    """A few of everything: small and multi-block files, an indirect-block file, nested
    directories, symlinks, a hard link, and a lost+found (so both lost+found paths are tested)."""
    root.mkdir(parents=True)
    for i, size in enumerate((5, 700, 3000, 9000, 20000, 70000)):
        (root / f"f{i}").write_bytes(bytes((i * 7 + j) & 0xFF for j in range(size)))
    (root / "ind").write_bytes(os.urandom(4096 * 14))
    for d in ("d1", "d2", "d3/sub"):
        (root / d).mkdir(parents=True)
    (root / "d1" / "a").write_text("in d1\n")
    (root / "d1" / "b").write_bytes(os.urandom(5000))
    (root / "d2" / "c").write_text("in d2\n")
    (root / "d3" / "sub" / "deep").write_text("deep\n")
    (root / "d3" / "x").write_text("x\n")
    os.symlink("f0", root / "ln")
    os.link(root / "f1", root / "d2" / "hard")
    (root / "lost+found").mkdir()
    return root


def makefs(img: Path, tree: Path, version: int, endian: str = "le") -> Path:
    """Two cylinder groups (a rebuilt cg can copy its layout from the other), 4K/512 blocks."""
    subprocess.run(["makefs", "-t", "ffs", "-B", endian, "-s", "24m",
                    "-o", f"version={version},bsize=4096,fsize=512,density=8192", str(img), str(tree)],
                   check=True, capture_output=True)
    return img


class Img:
    """Read-modify-write access to one image's metadata."""

    def __init__(self, path: Path | str) -> None:
        self.f = open(path, "r+b")  # noqa: SIM115 - closed by close()
        self.size = os.path.getsize(path)
        self.fs: Superblock = find_superblock(self.pread, self.size)
        self.codec = DinodeCodec(self.fs.ufs2, self.fs.endian)
        self.e = self.fs.endian

    def close(self) -> None:
        self.f.close()

    def pread(self, off: int, n: int) -> bytes:
        return os.pread(self.f.fileno(), n, off)

    def pwrite(self, off: int, data: bytes) -> None:
        os.pwrite(self.f.fileno(), data, off)

    def ioff(self, ino: int) -> int:
        fs = self.fs
        return ino_to_fsba(fs, ino) * fs.fs_fsize + ino_to_fsbo(fs, ino) * self.codec.size

    def inode(self, ino: int) -> Inode:
        return self.codec.decode(self.pread(self.ioff(ino), self.codec.size), 0, ino)

    def put(self, ip: Inode) -> None:
        buf = bytearray(self.codec.size)
        self.codec.encode_into(ip, buf, 0)
        self.pwrite(self.ioff(ip.ino), bytes(buf))

    def entries(self, dino: int) -> list[tuple[int, int, int, int, bytes]]:
        """(image offset, ino, reclen, type, name) of the live entries in the direct blocks."""
        ip = self.inode(dino)
        out = []
        fs = self.fs
        for lbn in range(min(12, -(-ip.size // fs.fs_bsize))):
            base = ip.db[lbn] * fs.fs_fsize
            n = min(fs.fs_bsize, ip.size - lbn * fs.fs_bsize)
            data = self.pread(base, n)
            pos = 0
            while pos < n:
                ino, reclen, t, nl = struct.unpack_from(self.e + "IHBB", data, pos)
                if ino:
                    out.append((base + pos, ino, reclen, t, data[pos + 8:pos + 8 + nl]))
                pos += reclen if reclen else 512 - pos % 512
        return out

    def lookup(self, path: str) -> int:
        ino = 2
        for part in filter(None, path.split("/")):
            ino = next(e[1] for e in self.entries(ino) if e[4] == part.encode())
        return ino

    def entry(self, dirpath: str, name: str) -> tuple[int, int, int, int, bytes]:
        return next(e for e in self.entries(self.lookup(dirpath)) if e[4] == name.encode())

    def set_entry_ino(self, dirpath: str, name: str, ino: int) -> None:
        off = self.entry(dirpath, name)[0]
        self.pwrite(off, struct.pack(self.e + "I", ino))

    def cg(self, c: int) -> tuple[int, bytearray, Cg]:
        fs = self.fs
        off = cgtod(fs, c) * fs.fs_fsize
        buf = bytearray(self.pread(off, fs.fs_cgsize))
        return off, buf, Cg(bytes(buf), self.e)

    def free_inode(self) -> int:
        _, buf, cg = self.cg(0)
        for i in range(3, self.fs.fs_ipg):
            if not buf[cg.cg_iusedoff + i // 8] >> (i % 8) & 1:
                return i
        raise AssertionError("no free inode")


def _with(fn: Callable[[Img, random.Random], Damage]) -> Callable[[Path | str, random.Random], Damage]:
    def run(path: Path | str, rng: random.Random) -> Damage:
        img = Img(path)
        try:
            return fn(img, rng)
        finally:
            img.close()
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@_with
def link_count(img: Img, rng: random.Random) -> Damage:
    ip = img.inode(img.lookup("f2"))
    ip.nlink += rng.randint(1, 3)
    img.put(ip)
    return Damage(f"f2 (I={ip.ino}) nlink raised to {ip.nlink}", f"LINK COUNT FILE I={ip.ino}")


@_with
def dup_block(img: Img, rng: random.Random) -> Damage:
    a, b = img.inode(img.lookup("f4")), img.inode(img.lookup("f3"))
    a.db[1] = b.db[0]
    img.put(a)
    return Damage(f"f4 block 1 also claimed by f3 (frag {b.db[0]})", f"{b.db[0]} DUP I=",
                  {"f4", "f3"})


def _cg_bit(img: Img, frag: int, free: bool) -> None:
    fs = img.fs
    c = frag // fs.fs_fpg
    off, buf, cg = img.cg(c)
    i = frag - cgbase(fs, c)
    byte = cg.cg_freeoff + i // 8
    if free:
        buf[byte] |= 1 << (i % 8)
    else:
        buf[byte] &= ~(1 << (i % 8)) & 0xFF
    img.pwrite(off, bytes(buf))


@_with
def used_block_marked_free(img: Img, rng: random.Random) -> Damage:
    f = img.inode(img.lookup("f5")).db[rng.randint(0, 5)]
    _cg_bit(img, f, True)
    return Damage(f"frag {f} of f5 marked free", f"ALLOCATED FRAG {f} MARKED FREE")


@_with
def free_block_marked_used(img: Img, rng: random.Random) -> Damage:
    fs = img.fs
    off, buf, cg = img.cg(1)
    for i in range(cgdmin(fs, 1) - cgbase(fs, 1), cg.cg_ndblk):
        if buf[cg.cg_freeoff + i // 8] >> (i % 8) & 1:
            f = cgbase(fs, 1) + i + rng.randint(0, 50)
            _cg_bit(img, f, False)
            return Damage(f"free frag {f} marked used", f"UNALLOCATED FRAG {f} MARKED USED")
    raise AssertionError("no free frag")


@_with
def unreferenced_inode(img: Img, rng: random.Random) -> Damage:
    ino = img.lookup("d1/b")
    img.set_entry_ino("d1", "b", 0)
    return Damage(f"entry d1/b (I={ino}) removed", f"UNREF FILE I={ino}", {"d1/b"}, {"d1/b": ino})


@_with
def unreferenced_high_count(img: Img, rng: random.Random) -> Damage:
    """A crash inside rename: the inode's count was raised, then its only name was lost."""
    ino = img.lookup("d1/b")
    img.set_entry_ino("d1", "b", 0)
    ip = img.inode(ino)
    ip.nlink = 2
    img.put(ip)
    return Damage(f"entry d1/b (I={ino}) removed, nlink 2", f"UNREF FILE I={ino}", {"d1/b"}, {"d1/b": ino})


@_with
def orphaned_directory(img: Img, rng: random.Random) -> Damage:
    ino = img.lookup("d3")
    img.set_entry_ino("", "d3", 0)
    return Damage(f"root entry of d3 (I={ino}) removed", f"UNREF DIR I={ino}",
                  {"d3", "d3/sub", "d3/sub/deep", "d3/x"}, {"d3": ino})


@_with
def bad_dot(img: Img, rng: random.Random) -> Damage:
    d = img.lookup("d2")
    img.set_entry_ino("d2", ".", 2)
    return Damage(f"'.' of d2 (I={d}) points at the root", "BAD INODE NUMBER FOR '.'")


@_with
def bad_dotdot(img: Img, rng: random.Random) -> Damage:
    img.set_entry_ino("d3/sub", "..", img.lookup("d1"))
    return Damage("'..' of d3/sub points at d1", "BAD INODE NUMBER FOR '..'")


@_with
def entry_unallocated(img: Img, rng: random.Random) -> Damage:
    free = img.free_inode()
    ino = img.lookup("d2/c")
    img.set_entry_ino("d2", "c", free)
    return Damage(f"d2/c names unallocated I={free}", f"UNALLOCATED I={free}", {"d2/c"}, {"d2/c": ino})


@_with
def bad_reclen(img: Img, rng: random.Random) -> Damage:
    off = img.entry("d1", "a")[0]
    # salvage drops the broken entry and the rest of its 512-byte chunk
    lost = {f"d1/{n.decode()}": i for o, i, _r, _t, n in img.entries(img.lookup("d1"))
            if off <= o < off - off % 512 + 512}
    img.pwrite(off + 4, struct.pack(img.e + "H", 3))
    return Damage("reclen of d1/a set to 3", "DIRECTORY CORRUPTED", set(lost), lost)


@_with
def dir_length_not_multiple(img: Img, rng: random.Random) -> Damage:
    ip = img.inode(img.lookup("d2"))
    ip.size -= 100
    img.put(ip)
    return Damage(f"size of d2 set to {ip.size}", "NOT MULTIPLE OF 512")


@_with
def bad_size(img: Img, rng: random.Random) -> Damage:
    ip = img.inode(img.lookup("f3"))
    ip.size = 100
    img.put(ip)
    return Damage(f"size of f3 (I={ip.ino}) shrunk below its blocks", f"UNKNOWN FILE TYPE I={ip.ino}", {"f3"})


@_with
def bad_block_count(img: Img, rng: random.Random) -> Damage:
    ip = img.inode(img.lookup("f4"))
    ip.blocks += 8 * rng.randint(1, 4)
    img.put(ip)
    return Damage(f"di_blocks of f4 (I={ip.ino}) raised", f"INCORRECT BLOCK COUNT I={ip.ino}")


@_with
def address_out_of_range(img: Img, rng: random.Random) -> Damage:
    ip = img.inode(img.lookup("f5"))
    bad = img.fs.fs_size + rng.randint(8, 800) * 8
    ip.db[2] = bad
    img.put(ip)
    return Damage(f"f5 block 2 at {bad}, beyond the file system", f"{bad} BAD I={ip.ino}", {"f5"})


@_with
def bad_cg_magic(img: Img, rng: random.Random) -> Damage:
    off, buf, _cg = img.cg(1)
    buf[4:8] = b"\xde\xad\xbe\xef"
    img.pwrite(off, bytes(buf))
    return Damage("cg 1 magic destroyed", "CG 1: BAD MAGIC NUMBER")


@_with
def wrong_cg_totals(img: Img, rng: random.Random) -> Damage:
    off, buf, cg = img.cg(0)
    cg.cg_cs_nbfree += rng.randint(1, 9)
    cg.cg_cs_nifree -= 1
    cg.encode_into(buf)
    img.pwrite(off, bytes(buf))
    return Damage("cg 0 free block and inode counts wrong", "SUMMARY INFORMATION BAD")


@_with
def wrong_sb_totals(img: Img, rng: random.Random) -> Damage:
    fs = img.fs
    fs.fs_cs_nbfree += rng.randint(1, 9)
    fs.fs_old_cs_nbfree = fs.fs_cs_nbfree
    img.pwrite(fs.loc, fs.encode())
    return Damage("superblock free block total wrong", "FREE BLK COUNT(S) WRONG IN SUPERBLK")


@_with
def destroyed_primary_superblock(img: Img, rng: random.Random) -> Damage:
    img.pwrite(img.fs.loc, os.urandom(img.fs.fs_sbsize))
    return Damage(f"primary superblock at {img.fs.loc} overwritten", "USING ALTERNATE SUPERBLOCK")


@_with
def missing_lost_found(img: Img, rng: random.Random) -> Damage:
    lf = img.lookup("lost+found")
    img.set_entry_ino("", "lost+found", 0)
    ino = img.lookup("f2")
    img.set_entry_ino("", "f2", 0)
    return Damage("lost+found's entry and f2's entry removed", f"UNREF DIR I={lf}",
                  {"f2", "lost+found"}, {"f2": ino}, expect_y="NO lost+found DIRECTORY")


@_with
def bad_inode_type(img: Img, rng: random.Random) -> Damage:
    ip = img.inode(img.lookup("f1"))
    ip.mode = 0o170644
    img.put(ip)
    return Damage(f"f1 (I={ip.ino}) mode set to {ip.mode:o}", f"UNKNOWN FILE TYPE I={ip.ino}",
                  {"f1", "d2/hard"})


@_with
def partially_allocated(img: Img, rng: random.Random) -> Damage:
    free = img.free_inode()
    ip = img.inode(free)
    ip.db[0] = 1234
    img.put(ip)
    return Damage(f"free I={free} holds a block address", f"PARTIALLY ALLOCATED INODE I={free}")


@_with
def zero_length_dir(img: Img, rng: random.Random) -> Damage:
    ip = img.inode(img.lookup("d2"))
    c = img.lookup("d2/c")
    ip.size = ip.blocks = ip.db[0] = 0
    img.put(ip)
    return Damage(f"d2 (I={ip.ino}) size 0", "ZERO LENGTH DIRECTORY", {"d2", "d2/c", "d2/hard"},
                  {"d2/c": c})


@_with
def zeroed_dir_chunk(img: Img, rng: random.Random) -> Damage:
    """What a crash leaves when a directory's inode reached the disk but its first block did not."""
    ip = img.inode(img.lookup("d2"))
    c = img.lookup("d2/c")
    lost = {f"d2/{n.decode()}": i for o, i, _r, _t, n in img.entries(ip.ino)
            if o < ip.db[0] * img.fs.fs_fsize + 512 and n not in (b".", b"..")}
    img.pwrite(ip.db[0] * img.fs.fs_fsize, bytes(512))
    return Damage(f"first 512 bytes of d2 (I={ip.ino}) zeroed", "DIRECTORY CORRUPTED", set(lost),
                  {"d2/c": c} if "d2/c" in lost else {})


@_with
def bad_dtype(img: Img, rng: random.Random) -> Damage:
    off = img.entry("d1", "a")[0]
    img.pwrite(off + 6, bytes([4]))
    return Damage("d_type of d1/a says directory", "BAD TYPE VALUE")


KINDS: dict[str, Callable[[Path | str, random.Random], Damage]] = {
    f.__name__: f for f in (
        link_count, dup_block, used_block_marked_free, free_block_marked_used, unreferenced_inode,
        unreferenced_high_count,
        orphaned_directory, bad_dot, bad_dotdot, entry_unallocated, bad_reclen,
        dir_length_not_multiple, bad_size, bad_block_count, address_out_of_range, bad_cg_magic,
        wrong_cg_totals, wrong_sb_totals, destroyed_primary_superblock, missing_lost_found,
        bad_inode_type, partially_allocated, zero_length_dir, zeroed_dir_chunk, bad_dtype,
    )
}
