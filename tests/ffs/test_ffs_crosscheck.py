"""Independent readers agree with p2k on the same makefs images.

- The Sleuth Kit (``fls -r -p``, ``icat``) for UFS1 in either byte order (it cannot find UFS2 at
  byte 8192, where makefs puts it — docs/ffs-format.md §11).
- ``dissect.ffs`` for little-endian UFS1 and UFS2 (it reads no big-endian images): inode numbers,
  modes, owners, sizes, all timestamps with nanoseconds (birthtime on UFS2), link targets, contents.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from ffs_tree import make_tree, makefs, mount_image

HAVE_TSK = shutil.which("fls") is not None and shutil.which("icat") is not None
HAVE_MAKEFS = shutil.which("makefs") is not None
pytestmark = pytest.mark.skipif(not HAVE_MAKEFS, reason="NetBSD makefs not installed")

TSK_TYPE = {"r": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK, "c": stat.S_IFCHR,
            "b": stat.S_IFBLK, "p": stat.S_IFIFO, "s": stat.S_IFSOCK}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a 2,000-entry big directory keeps the per-file icat runs affordable in CI
    return make_tree(tmp_path_factory.mktemp("xc") / "tree", bigdir=2000)


def p2k_walk(img: Path) -> dict[str, dict]:
    """Path → attributes and content digest, through the driver's VOPs (birthtime included)."""
    k = mount_image(img)
    mp = k.mounts[0]
    out: dict[str, dict] = {}
    try:
        def visit(ino: int, path: str) -> None:
            vp = k.vcache.vget(mp, ino)
            try:
                va = mp.vop_getattr(vp)
                rec = {"ino": ino, "mode": va.mode, "uid": va.uid, "gid": va.gid, "size": va.size,
                       "atime": va.atime_ns, "mtime": va.mtime_ns, "ctime": va.ctime_ns,
                       "btime": va.birthtime_ns, "nlink": va.nlink}
                if stat.S_ISREG(va.mode):
                    rec["sha"] = hashlib.sha256(mp.vop_read(vp, 0, va.size)).hexdigest()
                if stat.S_ISLNK(va.mode):
                    rec["link"] = mp.vop_readlink(vp)
                out[path] = rec
                if stat.S_ISDIR(va.mode):
                    for d in list(mp.readdir_entries(vp, 0)):
                        if d.name not in (b".", b".."):
                            visit(d.ino, f"{path}/{d.name.decode()}" if path else d.name.decode())
            finally:
                k.vcache.vrele(vp)
        visit(2, "")
    finally:
        k.halt()
    return out


@pytest.mark.skipif(not HAVE_TSK, reason="The Sleuth Kit not installed")
@pytest.mark.parametrize("endian,bsize,fsize", [("le", 4096, 512), ("be", 8192, 1024)])
def test_sleuthkit_agrees_ufs1(tmp_path: Path, tree: Path, endian: str, bsize: int, fsize: int) -> None:
    img = makefs(tmp_path / "u1.img", tree, version=1, endian=endian, bsize=bsize, fsize=fsize)
    mine = p2k_walk(img)
    fls = subprocess.run(["fls", "-r", "-p", str(img)], check=True, capture_output=True).stdout
    theirs: dict[str, tuple[int, int]] = {}
    for line in fls.decode("utf-8", "surrogateescape").splitlines():
        kind, _, rest = line.partition(" ")
        inode, _, path = rest.partition(":\t")
        if "$OrphanFiles" in path or inode.startswith("*"):
            continue
        theirs[path] = (TSK_TYPE[kind.split("/")[1]], int(inode))
    assert set(theirs) == set(mine) - {""}
    for path, (kind, ino) in theirs.items():
        assert (stat.S_IFMT(mine[path]["mode"]), mine[path]["ino"]) == (kind, ino), path
    # contents: every regular file and slow symlink outside the big directory, through icat
    checked = 0
    for path, rec in mine.items():
        if path.startswith("bigdir/entry"):
            continue
        if "sha" in rec or ("link" in rec and rec["size"] >= 60):
            data = subprocess.run(["icat", str(img), str(rec["ino"])], check=True,
                                  capture_output=True).stdout
            if "sha" in rec:
                assert hashlib.sha256(data).hexdigest() == rec["sha"], path
            else:
                assert data == rec["link"], path
            checked += 1
    assert checked > 30


@pytest.mark.parametrize("version,bsize,fsize", [(1, 8192, 1024), (2, 16384, 2048), (2, 4096, 512)])
def test_dissect_agrees_le(tmp_path: Path, tree: Path, version: int, bsize: int, fsize: int) -> None:
    from dissect.ffs import FFS

    img = makefs(tmp_path / "le.img", tree, version=version, endian="le", bsize=bsize, fsize=fsize)
    mine = p2k_walk(img)
    seen = 0
    with open(img, "rb") as fh:
        fs = FFS(fh)

        def visit(node: object, path: str) -> None:
            nonlocal seen
            rec = mine[path]
            di = node.inode  # type: ignore[attr-defined]
            assert rec["ino"] == node.inum, path  # type: ignore[attr-defined]
            assert rec["mode"] == di.di_mode, path
            assert (rec["uid"], rec["gid"], rec["nlink"]) == (di.di_uid, di.di_gid, di.di_nlink), path
            assert rec["size"] == node.size, path  # type: ignore[attr-defined]
            assert rec["mtime"] == node.mtime_ns, path  # type: ignore[attr-defined]
            assert rec["atime"] == node.atime_ns, path  # type: ignore[attr-defined]
            assert rec["ctime"] == node.ctime_ns, path  # type: ignore[attr-defined]
            if version == 2:
                assert rec["btime"] == node.btime_ns, path  # type: ignore[attr-defined]
            seen += 1
            if "sha" in rec:
                data = node.open().read()  # type: ignore[attr-defined]
                assert hashlib.sha256(data).hexdigest() == rec["sha"], path
            if "link" in rec:
                assert node.link.encode() == rec["link"], path  # type: ignore[attr-defined]
            if stat.S_ISDIR(di.di_mode):
                names = set()
                for child in node.iterdir():  # type: ignore[attr-defined]
                    if child.name in (".", ".."):
                        continue
                    names.add(child.name)
                    visit(child, f"{path}/{child.name}" if path else child.name)
                assert {p.rsplit("/", 1)[-1] for p in mine
                        if p and (p.rsplit("/", 1)[0] if "/" in p else "") == path} == names

        visit(fs.get("/"), "")
    assert seen == len(mine)
