"""The kernel and the fs-utils commands on damaged images (issue 14's cases, each end to end).

Each image is a real makefs image damaged with the generator's plain-file codecs; the commands run
in a child process (``python -m p2k.cli.main``) so what is checked is what a user sees: the exit
code, one line on stderr, no traceback, bytes on stdout, and what ``p2k fsck`` says afterwards.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from ffs_corrupt_gen import Img, make_small_tree

import p2k

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("damaged")
    tree = make_small_tree(d / "tree")
    img = d / "base.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-s", "8m",
                    "-o", "version=1,bsize=4096,fsize=512,density=8192", str(img), str(tree)],
                   check=True, capture_output=True)
    return img


def damaged(base: Path, tmp_path: Path, fn) -> Path:  # noqa: ANN001 - a (Img) -> None callable
    img = tmp_path / "d.img"
    shutil.copy(base, img)
    h = Img(img)
    try:
        fn(h)
    finally:
        h.close()
    return img


def p2k_cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "p2k.cli.main", *argv], capture_output=True,
                          timeout=timeout, cwd=ROOT, check=False)


def no_traceback(r: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in r.stderr, r.stderr.decode(errors="replace")


def fsck_clean_after_repair(img: Path) -> None:
    r = p2k_cli("fsck", "-fy", str(img))
    no_traceback(r)
    r = p2k_cli("fsck", "-fn", str(img))
    assert r.returncode == 0, r.stdout.decode()


def test_rm_file_whose_indirect_block_points_at_superblock(base: Path, tmp_path: Path) -> None:
    """Used to raise struct.error from the inode encoder, a second traceback at halt, and leave the
    superblock's block free in the map: now EIO before anything is freed."""
    def hit(h: Img) -> None:
        ip = h.inode(h.lookup("ind"))
        h.pwrite(ip.ib[0] * h.fs.fs_fsize, struct.pack("<i", h.fs.fs_sblkno))
    img = damaged(base, tmp_path, hit)
    r = p2k_cli("rm", str(img), "/ind")
    no_traceback(r)
    assert r.returncode == 1 and b"metadata" in r.stderr
    # the superblock copy's fragments are still allocated: nothing was freed on the damaged word
    h = Img(img)
    try:
        _off, buf, cg = h.cg(0)
        frag = h.fs.fs_sblkno
        assert not buf[cg.cg_freeoff + frag // 8] >> (frag % 8) & 1
    finally:
        h.close()
    fsck_clean_after_repair(img)


def test_dot_record_swallowing_the_block_never_loops(base: Path, tmp_path: Path) -> None:
    """'.' reclen 12 -> 44 used to make readdir yield an empty name resolving to the directory
    itself, and ``ls -R`` recursed forever."""
    def hit(h: Img) -> None:
        off = h.entry("d1", ".")[0]
        h.pwrite(off + 4, struct.pack("<H", 44))
    img = damaged(base, tmp_path, hit)
    r = p2k_cli("ls", "-R", str(img), "/", timeout=30)
    no_traceback(r)
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK, readonly=True)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        d1 = k.sys.lstat("/mnt/d1").st_ino
        for name in k.sys.listdir(b"/mnt/d1"):
            assert name and k.sys.lstat(b"/mnt/d1/" + name).st_ino != d1
    finally:
        k.halt()
    fsck_clean_after_repair(img)


@pytest.mark.parametrize("how", ["self", "empty", "dotdot-late", "slash", "ino1", "ino-huge"])
def test_directory_records_validated(base: Path, tmp_path: Path, how: str) -> None:
    """An entry naming its own directory, an empty name, a '..' past the second slot, a "/" in a
    name, an inode number out of range: skipped with a console line, the rest listed."""
    def hit(h: Img) -> None:
        off, _ino, _rec, _t, name = h.entry("d3", "x")
        if how == "self":
            h.pwrite(off, struct.pack("<I", h.lookup("d3")))
        elif how == "empty":
            h.pwrite(off + 7, b"\0\0")  # namlen 0, name "" (terminated)
        elif how == "slash":
            h.pwrite(off + 8, b"/")
        elif how in ("ino1", "ino-huge"):
            h.pwrite(off, struct.pack("<I", 1 if how == "ino1" else h.fs.fs_ncg * h.fs.fs_ipg))
        else:
            h.pwrite(off + 7, b"\x02")
            h.pwrite(off + 8, b"..\0\0")
    img = damaged(base, tmp_path, hit)
    r = p2k_cli("ls", "-R", str(img), "/d3", timeout=30)
    no_traceback(r)
    assert r.stdout.split(b"\n")[:3] == [b"sub", b"", b"/d3/sub:"], r.stdout  # (no heading for the first)
    assert b"bad dir ino" in r.stderr
    r = p2k_cli("find", str(img), "/d3", timeout=30)  # the name-only walk skips the record too
    no_traceback(r)
    assert r.stdout.splitlines() == [b"/d3", b"/d3/sub", b"/d3/sub/deep"], r.stdout


@pytest.mark.parametrize("how", ["nul", "unterminated"])
def test_name_with_a_nul_or_none_after_it(base: Path, tmp_path: Path, how: str) -> None:
    """ufs_dirbadentry's name tests: a NUL inside the name, or no NUL right after it, ends the
    parse of that chunk (d3's last entry, "sub", here); what came before is listed."""
    def hit(h: Img) -> None:
        off, _ino, _rec, _t, name = h.entry("d3", "sub")
        assert h.entries(h.lookup("d3"))[-1][4] == b"sub"
        h.pwrite(off + 8, b"s\0b\0" if how == "nul" else b"subz")
    img = damaged(base, tmp_path, hit)
    r = p2k_cli("ls", str(img), "/d3")
    no_traceback(r)
    assert r.stdout == b"x\n" and b"bad dir ino" in r.stderr and b"NUL" in r.stderr, r.stderr


def test_root_not_a_directory_refused(base: Path, tmp_path: Path) -> None:
    def hit(h: Img) -> None:
        ip = h.inode(2)
        ip.mode = 0o100644
        h.put(ip)
    img = damaged(base, tmp_path, hit)
    r = p2k_cli("ls", str(img), "/")
    no_traceback(r)
    assert r.returncode == 1
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "root inode 2 is not a directory" in lines[0], lines
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK, readonly=True)
        k.sys.mkdir("/mnt", 0o755)
        with pytest.raises(OSError) as ei:
            k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        assert ei.value.errno == errno.ENOTDIR
        assert k.etfs.lookup("/dev/dk").opencount == 0  # nothing left holding the device
    finally:
        k.halt()
    fsck_clean_after_repair(img)


def test_fsutils_continue_past_a_bad_entry(base: Path, tmp_path: Path) -> None:
    """One unreadable inode used to abort ``ls -l``; BSD ls/find/du/cp report it and go on."""
    def hit(h: Img) -> None:
        ip = h.inode(h.lookup("f2"))
        ip.mode = 0o170644
        h.put(ip)
    img = damaged(base, tmp_path, hit)
    r = p2k_cli("ls", "-l", str(img), "/")
    no_traceback(r)
    assert r.returncode == 1 and b"f2" in r.stderr and b" f3\n" in r.stdout and b" ind\n" in r.stdout
    # find reads a file's inode only for a primary that needs it (NetBSD's find: fts with
    # FTS_NOSTAT): by name alone the damaged file is listed; -type must read it, and reports it
    r = p2k_cli("find", str(img), "/")
    assert r.returncode == 0 and b"/d3/sub/deep\n" in r.stdout and b"/f2\n" in r.stdout, r.stderr
    r = p2k_cli("find", str(img), "/", "-type", "f")
    no_traceback(r)
    assert r.returncode == 1 and b"/d3/sub/deep\n" in r.stdout and b"/f2" in r.stderr
    assert b"/f2\n" not in r.stdout and b"/d3\n" not in r.stdout
    r = p2k_cli("du", str(img), "/")
    assert r.returncode == 1 and r.stdout.endswith(b"\t/\n")
    out = tmp_path / "out"
    r = p2k_cli("cp", "-R", str(img), ":/", str(out))
    no_traceback(r)
    assert r.returncode == 1 and (out / "f3").stat().st_size == 9000 and not (out / "f2").exists()


def test_find_reports_a_bad_directory_in_its_place(base: Path, tmp_path: Path) -> None:
    """A name-only find still reads each directory's inode (to descend): a damaged one is
    reported where it stands in the listing, after the names before it, and the walk goes on."""
    def hit(h: Img) -> None:
        ip = h.inode(h.lookup("d3"))
        ip.mode = 0o170755
        h.put(ip)
    img = damaged(base, tmp_path, hit)
    # -s: names in order, so the error's place can be told from its neighbours
    r = subprocess.run([sys.executable, "-m", "p2k.cli.main", "find", "-s", str(img), "/"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60, cwd=ROOT, check=False)
    assert r.returncode == 1 and b"Traceback" not in r.stdout
    lines = r.stdout.splitlines()
    (err,) = [i for i, ln in enumerate(lines) if ln.startswith(b"p2k find:")]
    assert b"/d3" in lines[err] and lines[err - 1] < b"/d3" < lines[err + 1]
    assert b"/d3/sub/deep" not in lines and b"/f3" in lines


def test_find_and_ls_leave_a_directory_cycle(base: Path, tmp_path: Path) -> None:
    """A record deep inside d3 naming d3 again (a hard link to a directory, typed as one) makes a
    cycle no record test sees: find and ls -R list it once and do not go round it."""
    def hit(h: Img) -> None:
        off = h.entry("d3/sub", "deep")[0]
        h.set_entry_ino("d3/sub", "deep", h.lookup("d3"))
        h.pwrite(off + 6, b"\x04")  # d_type: DT_DIR
    img = damaged(base, tmp_path, hit)
    r = p2k_cli("find", "-s", str(img), "/d3", timeout=30)
    no_traceback(r)
    assert r.stdout.splitlines() == [b"/d3", b"/d3/sub", b"/d3/sub/deep", b"/d3/x"], r.stdout
    r = p2k_cli("ls", "-R", str(img), "/d3", timeout=30)
    no_traceback(r)
    assert r.stdout.count(b"/d3/sub/deep:") == 0 and r.stdout.count(b"/d3/sub:") == 1, r.stdout
    assert r.returncode == 0 and r.stderr.endswith(b"p2k ls: /d3/sub/deep: directory causes a cycle\n")


def test_non_utf8_names_are_bytes(base: Path, tmp_path: Path) -> None:
    def hit(h: Img) -> None:
        off = h.entry("", "f3")[0]
        h.pwrite(off + 8, b"\xff\xfe")
    img = damaged(base, tmp_path, hit)
    for argv in (("ls",), ("ls", "-l"), ("find",)):
        r = p2k_cli(*argv, str(img), "/")
        no_traceback(r)
        assert r.returncode == 0 and b"\xff\xfe\n" in r.stdout, (argv, r.stdout)
    out = tmp_path / "out"
    r = p2k_cli("cp", "-R", str(img), ":/", str(out))
    assert r.returncode == 0 and (out / os.fsdecode(b"\xff\xfe")).stat().st_size == 9000


def test_non_oserror_in_a_vop_is_eio_and_releases(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but OSError inside a VOP: EIO for that call, the vnode released (the mount can be
    unmounted), counted in k.stats()."""
    from p2k.fs.ffs.ffs_vfsops import FfsMount

    def broken(self: object, *a: object, **kw: object) -> bytes:
        raise struct.error("pack_into requires a buffer of at least 8 bytes")

    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(base), p2k.ETFS_BLK, readonly=True)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        inuse = k.stats()["vnodes_inuse"]
        fd = k.sys.open("/mnt/f3", os.O_RDONLY)
        monkeypatch.setattr(FfsMount, "read_range", broken)  # from now on every data read fails so
        with pytest.raises(OSError) as ei:
            k.sys.read(fd, 100)
        assert ei.value.errno == errno.EIO
        k.sys.close(fd)
        with pytest.raises(OSError) as ei:
            k.sys.lstat("/mnt/d1/a")  # a lookup in a directory not read yet
        assert ei.value.errno == errno.EIO
        assert k.stats()["vop_internal_errors"] == 2
        assert k.stats()["vnodes_inuse"] == inuse
        monkeypatch.undo()
        k.sys.unmount("/mnt")  # not busy
    finally:
        k.halt()
