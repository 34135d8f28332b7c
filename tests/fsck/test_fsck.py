"""p2k fsck against real images: clean makefs images check clean, and every kind of damage from
``ffs_corrupt_gen`` is named by ``fsck -n`` (which must not change a byte), repaired by ``fsck -y``,
found clean by a second ``fsck -n``, and leaves every undamaged file intact — as p2k reads it and
as an independent reader does (The Sleuth Kit for UFS1, dissect.ffs for little-endian UFS2).

UFS1 images are big-endian and UFS2 little-endian, so both byte orders and both readers are used
in CI; ``P2K_FULL=1`` adds the other byte order of each version.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from ffs_corrupt_gen import KINDS, Damage, make_small_tree, makefs
from ffs_tree import make_tree, mount_image, p2k_snapshot
from ffs_tree import makefs as makefs_tree
from ffs_work import copy_tree_into

from p2k.cli.main import main

HAVE_MAKEFS = shutil.which("makefs") is not None
HAVE_TSK = shutil.which("fls") is not None
FULL = os.environ.get("P2K_FULL") == "1"
pytestmark = pytest.mark.skipif(not HAVE_MAKEFS, reason="NetBSD makefs not installed")
from paths import REPO as ROOT  # noqa: E402

CONFIGS = [(1, "be"), (2, "le")] + ([(1, "le"), (2, "be")] if FULL else [])


def fsck(img: Path | str, *flags: str) -> tuple[int, str]:
    """Run ``p2k fsck`` in-process; (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["fsck", *flags, str(img)])
    return rc, out.getvalue()


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, str], tuple[Path, dict]]:
    """Per (version, endian): a fresh image and p2k's snapshot of it."""
    base = tmp_path_factory.mktemp("fsck")
    tree = make_small_tree(base / "tree")
    out = {}
    for v, e in CONFIGS:
        img = makefs(base / f"p{v}{e}.img", tree, v, e)
        k = mount_image(img)
        try:
            snap = p2k_snapshot(k)
        finally:
            k.halt()  # type: ignore[attr-defined]
        out[(v, e)] = (img, snap)
    return out


def _affected(path: str, d: Damage) -> bool:
    return any(path == t or path.startswith(t + "/") for t in d.touched) or path.startswith("lost+found")


def check_intact(img: Path, before: dict, d: Damage, version: int, endian: str) -> None:
    k = mount_image(img)
    try:
        after = p2k_snapshot(k)
    finally:
        k.halt()  # type: ignore[attr-defined]
    kept = {p.decode(): n for p, n in before.items() if p and not _affected(p.decode(), d)}
    for path, n in kept.items():
        got = after.get(path.encode())
        assert got is not None, f"{path} lost"
        assert (got.mode, got.uid, got.gid, got.target, got.digest) == \
            (n.mode, n.uid, n.gid, n.target, n.digest), path
        if not stat.S_ISDIR(n.mode):
            assert got.size == n.size, path
    for path, ino in d.moved.items():
        n = before[path.encode()]
        got = after.get(f"lost+found/#{ino}".encode())
        assert got is not None, f"{path} not reconnected as lost+found/#{ino}"
        assert (got.mode, got.digest) == (n.mode, n.digest), path
    files = {p: n for p, n in kept.items() if stat.S_ISREG(n.mode)}
    if version == 1 and HAVE_TSK:
        fls = subprocess.run(["fls", "-r", "-p", str(img)], check=True, capture_output=True).stdout.decode()
        listed = {line.split(":\t", 1)[1]: line for line in fls.splitlines() if ":\t" in line}
        for p in kept:
            assert p in listed, f"TSK does not list {p}"
        for p, n in list(files.items())[:6]:
            ino = listed[p].split()[-2].rstrip(":").split("-")[0] if False else listed[p].split(":\t")[0].split()[-1]
            data = subprocess.run(["icat", str(img), ino], check=True, capture_output=True).stdout
            assert hashlib.sha256(data).hexdigest() == n.digest, f"TSK reads {p} differently"
    if endian == "le":
        from dissect.ffs import FFS

        with open(img, "rb") as fh:
            fs = FFS(fh)
            for p, n in files.items():
                data = fs.get("/" + p).open().read()
                assert hashlib.sha256(data).hexdigest() == n.digest, f"dissect reads {p} differently"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"ufs{c[0]}{c[1]}")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_corruption_found_and_repaired(tmp_path: Path, pristine: dict, kind: str,
                                       config: tuple[int, str]) -> None:
    src, before = pristine[config]
    img = tmp_path / "img"
    shutil.copy(src, img)
    d = KINDS[kind](img, random.Random(kind))
    h = sha(img)
    rc, out = fsck(img, "-fn")
    assert rc != 0 and d.expect in out, f"{d}: -n did not report {d.expect!r}\n{out}"
    assert sha(img) == h, "fsck -n changed the image"
    rc, out = fsck(img, "-fy")
    assert rc == 0, out
    assert "FILE SYSTEM WAS MODIFIED" in out and d.expect_y in out, out
    rc, out = fsck(img, "-fn")
    assert rc == 0, f"{d}: still inconsistent after repair\n{out}"
    assert "SALVAGE" not in out and "?" not in out, out
    check_intact(img, before, d, *config)


CLEAN = [(1, "le", 4096, 512), (2, "be", 8192, 1024), (1, "be", 16384, 2048), (2, "le", 65536, 8192)]
if FULL:
    CLEAN += [(v, e, b, b // 8) for v in (1, 2) for e in ("le", "be") for b in (4096, 8192, 16384, 32768)]


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("bt") / "tree", bigdir=2000)


@pytest.mark.parametrize("version,endian,bsize,fsize", CLEAN, ids=lambda v: str(v))
def test_clean_makefs_images(tmp_path: Path, big_tree: Path, version: int, endian: str,
                             bsize: int, fsize: int) -> None:
    img = makefs_tree(tmp_path / "c.img", big_tree, version=version, endian=endian, bsize=bsize, fsize=fsize)
    h = sha(img)
    rc, out = fsck(img, "-fn")
    assert rc == 0 and "?" not in out, out
    assert "** Phase 5 - Check Cyl groups" in out and "% fragmentation)" in out
    assert sha(img) == h


@pytest.mark.parametrize("name", ["demo.img.gz", "ufs1-be-8192.img.gz", "ufs1-le-4096.img.gz",
                                  "ufs2-be-16384.img.gz", "ufs2-le-65536.img.gz", "ufs2ea-le.img.gz"])
def test_reference_images_clean(tmp_path: Path, name: str) -> None:
    src = ROOT / "images" / name  # all of them are in the repository: a missing one is a failure
    img = tmp_path / "r.img"
    img.write_bytes(gzip.decompress(src.read_bytes()) if name.endswith(".gz") else src.read_bytes())
    rc, out = fsck(img, "-fn")
    assert rc == 0 and "?" not in out, out


def test_clean_flag_and_preen(tmp_path: Path, pristine: dict) -> None:
    img = tmp_path / "img"
    shutil.copy(pristine[(1, "be")][0], img)
    rc, out = fsck(img, "-n")
    assert rc == 0 and "** File system is clean; not checking" in out
    rc, out = fsck(img, "-p")
    assert rc == 0 and out.strip() == f"{img}: file system is clean; not checking"
    # preen fixes what it may (a link count too high), silently apart from the note ...
    KINDS["link_count"](img, random.Random(1))
    rc, out = fsck(img, "-pf")
    assert rc == 0 and "(ADJUSTED)" in out and "?" not in out, out
    assert fsck(img, "-fn")[0] == 0
    # ... and stops on what it may not (a block claimed twice): exit 8
    KINDS["dup_block"](img, random.Random(1))
    h = sha(img)
    rc, out = fsck(img, "-pf")
    assert rc == 8 and "UNEXPECTED INCONSISTENCY; RUN fsck_ffs MANUALLY." in out, out
    assert sha(img) == h


def test_json_report(tmp_path: Path, pristine: dict) -> None:
    img = tmp_path / "img"
    shutil.copy(pristine[(2, "le")][0], img)
    KINDS["bad_block_count"](img, random.Random(1))
    rc, out = fsck(img, "-fn", "--json")
    rep = json.loads(out)
    assert rc == rep["exit"] == 2 and rep["modified"] is False
    kinds = {f.get("kind") for f in rep["findings"]}
    assert "incorrect block count" in kinds
    rc, out = fsck(img, "-fy", "--json")
    rep = json.loads(out)
    assert rc == 0 and rep["modified"] is True
    assert all(f.get("answer") != "no" for f in rep["findings"])
    assert rep["summary"]["files"] > 10


def test_drivespec_and_missing_image(tmp_path: Path, pristine: dict) -> None:
    img = tmp_path / "img"
    shutil.copy(pristine[(1, "be")][0], img)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["fsck", "-fn", "-d", f"key=/dev/dk,hostpath={img},size=host"])
    assert rc == 0, out.getvalue()
    assert main(["fsck", "-n", str(tmp_path / "nope")]) == 8  # cannot be checked: fsck's exit 8, not usage


def test_dumpfs(pristine: dict) -> None:
    img = pristine[(2, "le")][0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["dumpfs", str(img)]) == 0
    text = out.getvalue()
    assert "format\tFFSv2" in text and "endian\tlittle-endian" in text
    assert "cg 0:" in text and "cg 1:" in text and "inodes used:\t0-" in text and "blks free:" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["dumpfs", "-s", str(pristine[(1, "be")][0])]) == 0
    assert "big-endian" in out.getvalue() and "cg 0:" not in out.getvalue()


HAVE_NEWFS = (ROOT / "p2k" / "cli" / "newfs.py").exists()


@pytest.mark.skipif(not HAVE_NEWFS, reason="p2k newfs not available")
@pytest.mark.parametrize("version,endian", [(1, "be"), (2, "le")])
def test_p2k_newfs_images(tmp_path: Path, version: int, endian: str) -> None:
    """Images made by p2k newfs check clean, still do after p2k's write path filled them, and
    go through a few kinds of damage like makefs images do."""
    img = tmp_path / "n.img"
    with open(img, "wb") as f:
        f.truncate(24 << 20)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["newfs", "-O", str(version), "-B", endian, "-b", "4096", "-f", "512", str(img)]) == 0
    rc, out = fsck(img, "-fn")
    assert rc == 0 and "?" not in out, out
    tree = make_small_tree(tmp_path / "tree")
    shutil.rmtree(tree / "lost+found")
    copy_tree_into(img, tree)
    rc, out = fsck(img, "-fn")
    assert rc == 0 and "?" not in out, out
    for kind in ("link_count", "unreferenced_inode", "used_block_marked_free", "bad_dotdot"):
        work = tmp_path / f"{kind}.img"
        shutil.copy(img, work)
        d = KINDS[kind](work, random.Random(kind))
        rc, out = fsck(work, "-fn")
        assert rc != 0 and d.expect in out, out
        assert fsck(work, "-fy")[0] == 0
        rc, out = fsck(work, "-fn")
        assert rc == 0, out


@pytest.mark.skipif(not HAVE_NEWFS, reason="p2k newfs not available")
def test_bounded_memory_million_inodes(tmp_path: Path) -> None:
    """A 10 GiB sparse UFS1 image with over a million inodes (every inode table is read) checks in
    a child process whose peak RSS stays far below 1 GiB: the state is flat arrays."""
    import sys

    img = tmp_path / "big.img"
    with open(img, "wb") as f:
        f.truncate(10 << 30)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["newfs", "-O", "1", "-n", "1000000", str(img)]) == 0
    # The child reports its own high-water mark: wait4's ru_maxrss would include the pytest
    # process's RSS, which a vfork'ed child carries into exec.
    child = ("import sys\nfrom p2k.cli.main import main\nrc = main(['fsck', '-fn', sys.argv[1]])\n"
             "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0].split()[1]\n"
             "print('VmHWM', hwm)\nsys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", child, str(img)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 files" in r.stdout
    peak_kib = int(r.stdout.rsplit("VmHWM", 1)[1].split()[0])
    assert peak_kib < 256 * 1024, f"peak RSS {peak_kib} KiB"
