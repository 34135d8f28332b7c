"""p2k reads FFS images made by the real ``makefs -t ffs`` exactly as the source tree was.

The matrix is UFS1/UFS2 × big/little endian × block/fragment pairs × two inode densities. CI runs
a subset chosen to touch every version, byte order and geometry at least once; set ``P2K_FULL=1``
to run the whole matrix (about 64 images). Every name, type, mode, uid, gid, size, mtime, link
target, device number, link count and byte of content is compared with the host's view of the tree.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import struct
from pathlib import Path

import pytest
from ffs_tree import DINDIR_SIZE, make_tree, makefs, mount_image, p2k_snapshot, snapshot

import p2k
from p2k.fs.ffs import fs as ffs_fs
from p2k.fs.ffs.fs import find_superblock

FULL = os.environ.get("P2K_FULL") == "1"
HAVE_MAKEFS = shutil.which("makefs") is not None
pytestmark = pytest.mark.skipif(not HAVE_MAKEFS, reason="NetBSD makefs not installed")

PAIRS = [(4096, 512), (8192, 1024), (16384, 2048), (32768, 4096), (65536, 8192)]
DENSITIES = ["default", "dense"]


def image_options(version: int, bsize: int, fsize: int, density: str) -> tuple[int | None, str | None,
                                                                               tuple[str, ...]]:
    """(density, size, extra -o options) that give makefs room for the tree's 10,000+ inodes.

    Big blocks mean few cylinder groups and few inodes per group, so those images get an explicit
    size, a density and (on UFS2, where an inode is 256 bytes) smaller groups."""
    if density == "default" and bsize <= 16384:
        return None, None, ()
    dens = 2048 if density == "dense" else 4096
    extra: tuple[str, ...] = ()
    if bsize >= 32768 and version == 2:
        extra = ("-o", "maxbpcg=128")
    return dens, "64m" if bsize <= 32768 else "128m", extra


def all_configs() -> list[tuple[int, str, int, int, str]]:
    return [(v, e, b, f, d) for v in (1, 2) for e in ("le", "be") for b, f in PAIRS for d in DENSITIES]


CI_CONFIGS = [
    (1, "le", 4096, 512, "default"),
    (1, "be", 8192, 1024, "dense"),
    (1, "be", 32768, 4096, "default"),
    (2, "le", 16384, 2048, "default"),
    (2, "be", 4096, 512, "dense"),
    (2, "le", 32768, 4096, "dense"),
]
CONFIGS = all_configs() if FULL else CI_CONFIGS


def cid(c: tuple[int, str, int, int, str]) -> str:
    return f"ufs{c[0]}-{c[1]}-{c[2]}-{c[3]}-{c[4]}"


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = make_tree(tmp_path_factory.mktemp("ffs") / "tree")
    return root, snapshot(root)


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """For 64 KiB blocks, whose few large groups cannot hold the 10,000-entry tree's inodes."""
    root = make_tree(tmp_path_factory.mktemp("ffs") / "small", bigdir=300, dindir_size=0)
    return root, snapshot(root)


def build(tmp_path: Path, tree: Path, c: tuple[int, str, int, int, str]) -> Path:
    version, endian, bsize, fsize, density = c
    dens, size, extra = image_options(version, bsize, fsize, density)
    return makefs(tmp_path / f"{cid(c)}.img", tree, version=version, endian=endian, bsize=bsize,
                  fsize=fsize, density=dens, size=size, extra=extra)


def compare(expected: dict, got: dict) -> None:
    assert set(got) == set(expected)
    fields = ("mode", "nlink", "uid", "gid", "size", "mtime_ns", "rdev", "target", "digest")
    bad = [(p, f, getattr(e, f), getattr(got[p], f)) for p, e in expected.items() for f in fields
           if getattr(e, f) != getattr(got[p], f)]
    assert not bad, bad[:10]
    # hard links: the names the host sees as one inode are one inode in p2k too
    groups: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for p, e in expected.items():
        groups.setdefault(e.ino_key, set()).add(got[p].ino_key)
    assert all(len(g) == 1 for g in groups.values())


@pytest.mark.parametrize("c", CONFIGS, ids=cid)
def test_image_matches_tree(tmp_path: Path, tree: tuple[Path, dict], small_tree: tuple[Path, dict],
                            c: tuple[int, str, int, int, str]) -> None:
    root, expected = small_tree if c[2] == 65536 else tree
    img = build(tmp_path, root, c)
    k = mount_image(img)
    try:
        compare(expected, p2k_snapshot(k))
        mp = k.mounts[0]
        assert mp.fs.ufs2 == (c[0] == 2)
        assert mp.fs.endian == ("<" if c[1] == "le" else ">")
        assert mp.rw_refusal is None and mp.dir_errors == []
    finally:
        k.halt()


@pytest.fixture(scope="module")
def img_v1le(tmp_path_factory: pytest.TempPathFactory, tree: tuple[Path, dict]) -> Path:
    return build(tmp_path_factory.mktemp("v1le"), tree[0], (1, "le", 4096, 512, "default"))


@pytest.fixture(scope="module")
def img_v2be(tmp_path_factory: pytest.TempPathFactory, tree: tuple[Path, dict]) -> Path:
    return build(tmp_path_factory.mktemp("v2be"), tree[0], (2, "be", 8192, 1024, "default"))


def test_double_indirect_and_partial_reads(img_v1le: Path, tree: tuple[Path, dict]) -> None:
    root = tree[0]
    data = (root / "dindir").read_bytes()
    assert len(data) == DINDIR_SIZE
    k = mount_image(img_v1le)
    try:
        fd = k.sys.open("/mnt/dindir", os.O_RDONLY)
        for off, n in [(0, 1), (4095, 2), (12 * 4096 - 3, 10), (len(data) - 5, 100),
                       ((12 + 1024) * 4096 - 7, 20000), (len(data), 10), (123457, 1 << 20)]:
            assert k.sys.pread(fd, n, off) == data[off:off + n]
        k.sys.close(fd)
        fd = k.sys.open("/mnt/sparse", os.O_RDONLY)
        assert k.sys.pread(fd, 10, 299_998) == b"\0\0middle\0\0"
        k.sys.close(fd)
    finally:
        k.halt()


def test_statvfs_minfree_reserve(img_v2be: Path) -> None:
    k = mount_image(img_v2be)
    try:
        sv = k.sys.statvfs("/mnt")
        fs = k.mounts[0].fs
        assert sv.f_frsize == fs.fs_fsize and sv.f_bsize == fs.fs_bsize
        assert sv.f_blocks == fs.fs_dsize
        assert sv.f_bfree == fs.fs_cs_nbfree * fs.fs_frag + fs.fs_cs_nffree
        assert sv.f_bavail == max(sv.f_bfree - fs.fs_dsize * fs.fs_minfree // 100, 0)
        assert sv.f_files == fs.fs_ncg * fs.fs_ipg - 2 and sv.f_ffree == fs.fs_cs_nifree
        assert sv.f_namemax == 255
    finally:
        k.halt()


def _patch_sb(img: Path, out: Path, **fields: int) -> Path:
    """Copy ``img`` with superblock fields changed (both the primary at 8192; alternates untouched)."""
    shutil.copy(img, out)
    with open(out, "r+b") as f:
        f.seek(8192)
        buf = f.read(8192)
        sb = find_superblock(lambda o, n: (buf + bytes(1 << 20))[o - 8192:o - 8192 + n] if o == 8192
                             else bytes(n), 1 << 30)
        for name, value in fields.items():
            setattr(sb, name, value)
        f.seek(8192)
        f.write(sb.encode())
    return out


def test_superblock_encode_roundtrip(img_v1le: Path, img_v2be: Path) -> None:
    for img in (img_v1le, img_v2be):
        raw = img.read_bytes()
        sb = find_superblock(lambda o, n, raw=raw: raw[o:o + n], len(raw))
        assert sb.encode() == raw[8192:8192 + sb.fs_sbsize]


@pytest.mark.parametrize("flags,clean,needle", [
    (ffs_fs.FS_DOQUOTA2, 1, "quotas"),
    (ffs_fs.FS_POSIX1EACLS, 1, "ACLs"),
    (ffs_fs.FS_SUJ, 0, "soft-updates journal"),
    (0, 0, "not clean"),
    (0x10000, 1, "unknown flags"),
])
def test_rw_refusal(tmp_path: Path, img_v1le: Path, flags: int, clean: int, needle: str) -> None:
    img = _patch_sb(img_v1le, tmp_path / "patched.img", fs_flags=flags, fs_clean=clean)
    k = mount_image(img)
    try:
        assert needle in (k.mounts[0].rw_refusal or "")
        assert k.sys.listdir("/mnt")  # read-only still works
    finally:
        k.halt()
    k = p2k.Kernel()
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        with pytest.raises(OSError) as ei:
            k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        assert ei.value.errno == errno.EROFS and needle in str(ei.value)
    finally:
        k.halt()


def test_freebsd_metackhash_refused(tmp_path: Path, img_v2be: Path) -> None:
    img = _patch_sb(img_v2be, tmp_path / "ck.img", fs_flags=0x200, fs_metackhash=0x1F)
    k = mount_image(img)
    try:
        assert "check-hashes" in k.mounts[0].rw_refusal
    finally:
        k.halt()


def test_ufs2ea_magic(tmp_path: Path, img_v2be: Path, tree: tuple[Path, dict]) -> None:
    """An FFSv2ea superblock must be treated as UFS2 everywhere (cgstart in particular)."""
    img = _patch_sb(img_v2be, tmp_path / "ea.img", fs_magic=ffs_fs.FS_UFS2EA_MAGIC)
    k = mount_image(img)
    try:
        assert k.mounts[0].fs.ea and k.mounts[0].fs.ufs2
        compare(tree[1], p2k_snapshot(k))
    finally:
        k.halt()


def test_old_44bsd_superblock_layout(tmp_path: Path, img_v1le: Path, tree: tuple[Path, dict]) -> None:
    """A UFS1 superblock without FS_FLAGS_UPDATED keeps its sizes in the fs_old_* fields only."""
    img = _patch_sb(img_v1le, tmp_path / "old.img", fs_old_flags=0, fs_size=0, fs_dsize=0,
                    fs_csaddr=0, fs_sblockloc=0, fs_cs_nbfree=0, fs_maxbsize=0)
    k = mount_image(img)
    try:
        fs = k.mounts[0].fs
        assert fs.fs_size == fs.fs_old_size and fs.fs_csaddr == fs.fs_old_csaddr
        compare(tree[1], p2k_snapshot(k))
    finally:
        k.halt()


def test_superblock_search_rules(img_v1le: Path) -> None:
    raw = bytearray(img_v1le.read_bytes())
    sb = raw[8192:8192 + 2048]
    # A UFS1 superblock found only at 65536 is the first alternate of a 64 KiB-block fs: skipped.
    moved = bytearray(len(raw))
    moved[65536:65536 + 2048] = sb
    with pytest.raises(OSError) as ei:
        find_superblock(lambda o, n: bytes(moved[o:o + n]), len(moved))
    assert ei.value.errno == errno.EINVAL
    # An updated superblock whose fs_sblockloc names another place is an alternate: skipped.
    moved = bytearray(raw)
    moved[8192:8192 + 2048] = bytes(2048)
    moved[0:2048] = sb
    with pytest.raises(OSError):
        find_superblock(lambda o, n: bytes(moved[o:o + n]), len(moved))
    # Garbage magic
    with pytest.raises(OSError):
        find_superblock(lambda o, n: bytes(n), 1 << 20)
    struct.pack_into("<I", raw, 8192 + 48, 3000)  # bsize not a power of two
    with pytest.raises(OSError) as ei:
        find_superblock(lambda o, n: bytes(raw[o:o + n]), len(raw))
    assert "block size" in str(ei.value)


def test_lookup_errors_and_readdir_cookies(img_v2be: Path) -> None:
    k = mount_image(img_v2be)
    try:
        with pytest.raises(FileNotFoundError):
            k.sys.lstat("/mnt/bigdir/nope")
        with pytest.raises(NotADirectoryError):
            k.sys.lstat("/mnt/README/x")
        mp = k.mounts[0]
        root = k.vcache.vget(mp, 2)
        try:
            dvp = k.vcache.vget(mp, mp.vop_lookup(root, b"bigdir"))
            ents = list(mp.vop_readdir(dvp, 0))
            assert [e.name for e in ents[:2]] == [b".", b".."]
            # resuming at any returned cookie continues exactly after that entry
            for i in (0, 1, 500, len(ents) - 2):
                rest = list(mp.vop_readdir(dvp, ents[i].cookie))
                assert [e.name for e in rest] == [e.name for e in ents[i + 1:]]
            assert mp.vop_lookup(dvp, b"..") == 2
            k.vcache.vrele(dvp)
        finally:
            k.vcache.vrele(root)
        with pytest.raises(OSError) as ei:
            mp.vfs_loadvnode(0)
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(OSError) as ei:
            mp.vfs_loadvnode(mp.fs.fs_ncg * mp.fs.fs_ipg - 1)
        assert ei.value.errno == errno.ENOENT
    finally:
        k.halt()


def test_dinode_codec_roundtrip_with_nanoseconds() -> None:
    from p2k.fs.ffs.dinode import DinodeCodec

    for ufs2 in (False, True):
        for endian in "<>":
            codec = DinodeCodec(ufs2, endian)
            buf = bytearray(codec.size)
            ip = codec.decode(buf, 0, 5)
            ip.mode, ip.nlink, ip.uid, ip.gid, ip.size = 0o100644, 3, 1000, 100, 1 << 33
            ip.mtime, ip.mtimensec, ip.atime, ip.atimensec = 1_700_000_000, 123456789, -5, 999999999
            if ufs2:
                ip.birthtime, ip.birthnsec = 1_600_000_000, 42
            ip.db[3] = 77
            ip.ib[2] = 99
            codec.encode_into(ip, buf, 0)
            again = codec.decode(buf, 0, 5)
            assert again.times_ns() == ip.times_ns() and again.db == ip.db and again.ib == ip.ib
            assert (again.mode, again.nlink, again.uid, again.gid, again.size) == \
                (0o100644, 3, 1000, 100, 1 << 33)
            out = bytearray(codec.size)
            codec.encode_into(again, out, 0)
            assert out == buf


IMAGES = Path(__file__).resolve().parent.parent / "images"


@pytest.mark.parametrize("name", sorted(p.name for p in IMAGES.glob("*.img.gz")))
def test_reference_images(tmp_path: Path, name: str) -> None:
    """Each shipped image mounts read-only, walks without errors, and holds what MANIFEST.md says."""
    import gzip

    img = tmp_path / name.removesuffix(".gz")
    img.write_bytes(gzip.decompress((IMAGES / name).read_bytes()))
    assert name in (IMAGES / "MANIFEST.md").read_text()
    k = mount_image(img)
    try:
        snap = p2k_snapshot(k)
        assert k.mounts[0].dir_errors == [] and k.mounts[0].rw_refusal is None
        assert all(n.mtime_ns == 1_500_000_000 * 10**9 for n in snap.values())
        if name == "demo.img.gz":
            assert k.sys.readlink("/mnt/about-ffs") == "docs/ffs.txt"
            fd = k.sys.open("/mnt/numbers.txt", os.O_RDONLY)
            assert k.sys.read(fd, 1 << 16) == "".join(f"{i}\n" for i in range(1, 2001)).encode()
            k.sys.close(fd)
            assert k.mounts[0].fs.ufs2 and k.mounts[0].fs.endian == "<"
        else:
            assert len(snap) == 312 and snap[b"small"].nlink == 2
            assert snap[b"dir/hardlink"].ino_key == snap[b"small"].ino_key
            assert len(snap[b"slowlink"].target) == 130 and snap[b"fastlink"].target == b"small"
            assert stat.S_ISFIFO(snap[b"fifo"].mode)
            assert k.mounts[0].fs.ea == name.startswith("ufs2ea")
    finally:
        k.halt()
