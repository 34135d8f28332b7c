"""The hostile-image campaign (tests/fsck_campaign.py) and the repair cases issue 14 lists.

CI runs ``P2K_FSCK_CASES`` (default 500) seeded cases over twelve bases (makefs two-group and
one-group, p2k newfs + p2k's write path; UFS1/UFS2; both byte orders); ``P2K_FULL=1`` runs 100,000
(about 45 minutes on one core). Each case asserts no traceback, no hang, peak RSS under 256 MiB,
``fsck -y`` then ``fsck -fn`` clean, nothing written outside the image, and every file the damage
did not touch still readable with its contents (dissect.ffs on little-endian images, p2k's mount
on all) unless fsck named its inode.

The named cases are the ones the issue's hostile tester reported, each checked end to end.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import Literal

import pytest
from fsck_campaign import Base, campaign, make_bases, reachable_digests, run_case, run_fsck

from p2k.cli.main import main
from p2k.fs.ffs.cg import Cg
from p2k.fs.ffs.fs import DEV_BSIZE, cgsblock, cgtod

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")
FULL = os.environ.get("P2K_FULL") == "1"
CASES = int(os.environ.get("P2K_FSCK_CASES", "100000" if FULL else "500"))


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Base]:
    return make_bases(tmp_path_factory.mktemp("bases"))


def test_campaign(bases: dict[str, Base], tmp_path: Path) -> None:
    failures = campaign(bases, CASES, seed=14, work=tmp_path / "work.img")
    assert not failures, f"{len(failures)} failing cases:\n" + "\n\n".join(failures[:5])


# ---- the cases the issue names ---------------------------------------------------------------------
def _cg_field(base: Base, c: int, name: str, value: int) -> list[tuple[int, bytes]]:
    """A patch setting one cg header field (found through the header's own field list)."""
    desc = f"cg{c}.{name}"
    off, width = next((o, w) for d, o, w in base.fields if d == desc)
    return [(off, value.to_bytes(width, "little" if base.endian == "<" else "big"))]


def _out(code_rep: tuple) -> str:
    return "\n".join(code_rep[1].lines)


@pytest.mark.parametrize("value", [0, 1 << 30, 4, 170])
@pytest.mark.parametrize("name", ["makefs-ufs1-le", "makefs-ufs2-be", "makefs1cg-ufs2-le"])
def test_cg_map_offset_rebuilt(bases: dict[str, Base], tmp_path: Path, name: str, value: int) -> None:
    """cg_iusedoff 0 used to make -y write the inode map over the header (next run: BAD MAGIC);
    2^30 made every run ask the same question. The header is rebuilt from the geometry."""
    base = bases[name]
    out = run_case(base, _cg_field(base, 0, "cg_iusedoff", value), tmp_path / "w.img")
    assert out.first == 0 and out.second == 0
    assert "BAD MAGIC" not in out.out
    if value in (0, 1 << 30):
        assert "CG 0: BAD MAP OFFSETS" in out.out and "SUMMARY INFORMATION BAD" in out.out


@pytest.mark.parametrize("name", ["makefs-ufs2-le", "makefs-ufs1-be"])
@pytest.mark.parametrize("field", ["cg_freeoff", "cg_clustersumoff", "cg_clusteroff", "cg_nextfreeoff"])
def test_every_cg_offset_checked(bases: dict[str, Base], tmp_path: Path, name: str, field: str) -> None:
    base = bases[name]
    for value in (0, 3, 0xFFFFFFFF):
        out = run_case(base, _cg_field(base, 0, field, value), tmp_path / "w.img")
        assert out.second == 0, (field, value, out.out)


@pytest.mark.parametrize("name", ["makefs1cg-ufs1-le", "makefs1cg-ufs2-be"])
def test_one_cg_bad_magic_rebuilt_with_free_space(bases: dict[str, Base], tmp_path: Path, name: str) -> None:
    """A one-group image has no healthy group to copy: the group is rebuilt from the superblock and
    phase 1's maps, and the free counts are the real ones (not 0, which made every write ENOSPC)."""
    base = bases[name]
    work = tmp_path / "w.img"
    before = run_fsck_on(base, [], work)
    out = run_case(base, _cg_field(base, 0, "cg_magic", 0x12345678), work)
    assert "CANNOT REBUILD" not in out.out and "CG 0: PASS5: BAD MAGIC NUMBER" in out.out
    assert out.second == 0
    after = run_fsck(work, "n")[1].lines[-1]
    assert after == before, "free counts differ from the undamaged image's"
    # and the kernel can allocate in it again
    import p2k
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(work), p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        fd = k.sys.open("/mnt/new", os.O_WRONLY | os.O_CREAT, 0o644)
        k.sys.write(fd, b"x" * 10000)
        k.sys.close(fd)
    finally:
        k.halt()
    assert run_fsck(work, "n")[0] == 0


def run_fsck_on(base: Base, patches: list[tuple[int, bytes]], work: Path) -> str:
    """The summary line of ``fsck -fn`` on the base (patched)."""
    data = bytearray(base.raw)
    for off, b in patches:
        data[off:off + len(b)] = b
    work.write_bytes(data)
    return run_fsck(work, "n")[1].lines[-1]


@pytest.mark.parametrize("name", ["makefs-ufs1-le", "makefs-ufs2-be", "newfs-ufs2-le", "makefs1cg-ufs1-be"])
@pytest.mark.parametrize("mode", [0, 0o100644, 0o170000])
def test_root_recreated_with_right_counts(bases: dict[str, Base], tmp_path: Path, name: str, mode: int) -> None:
    """Root inode with mode 0 (or not a directory): re-created, its directories reconnected, and its
    link count right (the second run used to say COUNT 5 SHOULD BE 3)."""
    base = bases[name]
    off, width = next((o, w) for d, o, w in base.fields if d == "ino2.mode")
    out = run_case(base, [(off, mode.to_bytes(width, "little" if base.endian == "<" else "big"))],
                   tmp_path / "w.img")
    assert out.first == 0 and out.second == 0
    assert "ROOT INODE" in out.out


@pytest.mark.parametrize("name", ["makefs-ufs1-le", "newfs-ufs2-be"])
def test_alternate_superblock_rewrites_primary(bases: dict[str, Base], tmp_path: Path, name: str) -> None:
    """``fsck -b N -y`` with the first backup's sector: the primary is rewritten from it, and a
    plain ``fsck -fn`` afterwards finds the primary good."""
    from p2k.fs.ffs.fs import find_superblock
    base = bases[name]
    fs = find_superblock(lambda o, n: base.raw[o:o + n], len(base.raw))
    work = tmp_path / "w.img"
    data = bytearray(base.raw)
    prim = 8192 if "ufs1" in name else 65536
    data[prim + 1372:prim + 1376] = b"\0\0\0\0"  # magic gone
    work.write_bytes(data)
    sector = cgsblock(fs, 0) * fs.fs_fsize // DEV_BSIZE
    rc, text = _cli("fsck", "-b", str(sector), "-y", str(work))
    assert rc == 0 and "UPDATE STANDARD SUPERBLOCK? yes" in text, text
    rc, text = _cli("fsck", "-fn", str(work))
    assert rc == 0 and "BAD SUPER BLOCK" not in text and "ALTERNATE" not in text, text
    with open(work, "rb") as fh:
        assert fh.read()[prim:prim + 1376][1372:] == base.raw[prim + 1372:prim + 1376]


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(list(argv))
    return rc, out.getvalue()


def test_json_lists_every_finding(bases: dict[str, Base], tmp_path: Path) -> None:
    """--json: every finding has its phase, the inode (when it is about one), the field when the
    damage is to a field, and the action taken."""
    import json
    base = bases["makefs-ufs2-le"]
    work = tmp_path / "w.img"
    data = bytearray(base.raw)
    for off, b in _cg_field(base, 0, "cg_iusedoff", 0) + _cg_field(base, 0, "cg_magic", 7):
        data[off:off + len(b)] = b
    off, w = next((o, w) for d, o, w in base.fields if d.startswith("ino") and d.endswith(".blocks"))
    data[off:off + w] = (12345).to_bytes(w, "little")
    work.write_bytes(data)
    rc, text = _cli("fsck", "-fy", "--json", str(work))
    rep = json.loads(text)
    assert rep["modified"] and rep["findings"]
    for f in rep["findings"]:
        assert f["phase"] and "message" in f
        if "question" in f:
            assert f["answer"] in ("yes", "no")
    kinds = {(f["phase"], f.get("field")) for f in rep["findings"]}
    assert ("Phase 5", "cg_magic") in kinds
    assert any(f.get("kind") == "incorrect block count" and isinstance(f.get("ino"), int)
               and f.get("field") == "di_blocks" and f["action"] == "correct"
               for f in rep["findings"]), rep["findings"]


def test_cg_layout_is_what_makers_write(bases: dict[str, Base]) -> None:
    """The layout fsck rebuilds is the one makefs and p2k newfs write (so healthy images are never
    "repaired")."""
    from p2k.fs.ffs.cg import cg_layout
    from p2k.fs.ffs.fs import find_superblock
    for name, base in bases.items():
        raw = base.raw
        fs = find_superblock(lambda o, n, raw=raw: raw[o:o + n], len(raw))
        for c in range(fs.fs_ncg):
            cg = Cg(raw[cgtod(fs, c) * fs.fs_fsize:][:fs.fs_cgsize], fs.endian)
            for k, v in cg_layout(fs).items():
                assert getattr(cg, k) == v, (name, c, k)


def test_lost_found_grows_for_many_orphans(bases: dict[str, Base], tmp_path: Path) -> None:
    """300 names lost at once: lost+found (one fragment from makefs) grows block by block, every
    orphan is reconnected with its contents, and the second run is clean."""
    base = bases["makefsbig-ufs2-le"]
    patches = [(off, bytes(w)) for d, off, w in base.fields
               if d.startswith("dirent many/entry-") and d.endswith(".d_ino")]
    assert len(patches) == 300
    out = run_case(base, patches, tmp_path / "w.img")
    assert out.first == 0 and out.second == 0
    assert out.out.count("RECONNECT? yes") == 300 and "NO SPACE" not in out.out
    orphans = {fi.ino: fi.digest for fi in base.files if fi.path.startswith("many/")}
    assert reachable_digests(tmp_path / "w.img", set(orphans)) == orphans  # all in lost+found, intact


@pytest.mark.parametrize("name", ["makefs1cg-ufs1-le", "makefs-ufs2-be", "newfs-ufs1-be"])
@pytest.mark.parametrize("field", ["fs_fpg", "fs_magic", "fs_ncg"])
def test_damaged_last_superblock_copy(bases: dict[str, Base], tmp_path: Path, name: str, field: str) -> None:
    """The copy in the last cylinder group is the one fsck compares with: damaged, it used to make
    every check of a good file system fail ("SEARCH FOR ALTERNATE SUPER-BLOCK FAILED" on one-group
    images). The primary is kept when another copy or its own cg 0 backs it, and the copy is
    rewritten, so the next check is clean."""
    base = bases[name]
    off, width = next((o, w) for d, o, w in base.fields if d == f"sbcopy.{field}")
    out = run_case(base, [(off, (0x1234567).to_bytes(width, "little"))], tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out
    assert "SUPERBLOCK COPY AT" in out.out and "ALTERNATE SUPERBLOCK" not in out.out


@pytest.mark.parametrize("name", ["makefs1cg-ufs1-be", "makefs1cg-ufs2-le"])
def test_summary_area_moved_in_the_primary_only(bases: dict[str, Base], tmp_path: Path, name: str) -> None:
    """Campaign cases 11:14340 and 11:38913: a one-group image whose primary superblock says the
    summary area starts a block early, onto the inode table. The copy in the group still has it at
    the start of the data area, where newfs and makefs put it, so the copy wins; -y used to keep
    the primary and write the summary over inode 32, and the next -fn found it damaged."""
    base = bases[name]
    off, width = next((o, w) for d, o, w in base.fields if d == "sb.fs_csaddr")
    order = "little" if base.endian == "<" else "big"
    old = int.from_bytes(base.raw[off:off + width], order)
    out = run_case(base, [(off, (old - 8).to_bytes(width, order))], tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out


@pytest.mark.parametrize("name", ["makefs-ufs1-le", "makefs1cg-ufs1-be"])
def test_maxsymlinklen_zeroed_in_the_primary(bases: dict[str, Base], tmp_path: Path, name: str) -> None:
    """Campaign case 11:33629: fs_maxsymlinklen 0 on a 4.4BSD-format UFS1 makes every directory
    read as 4.2BSD's. The copy wins (or, where both say so, fsck fixes the field, as fsck_ffs's
    "INCORRECT MAXSYMLINKLEN"), and every file is found again."""
    base = bases[name]
    off, width = next((o, w) for d, o, w in base.fields if d == "sb.fs_maxsymlinklen")
    out = run_case(base, [(off, bytes(width))], tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out


def _field(base: Base, desc: str) -> tuple[int, int, int]:
    """(offset, width, value in the base) of one targeted field, by its description."""
    off, width = next((o, w) for d, o, w in base.fields if d == desc)
    return off, width, int.from_bytes(base.raw[off:off + width], _order(base))


def _order(base: Base) -> Literal["little", "big"]:
    return "little" if base.endian == "<" else "big"


def _set(base: Base, desc: str, value: int) -> tuple[int, bytes]:
    """A patch giving the field ``desc`` the value ``value``."""
    off, width, _ = _field(base, desc)
    return off, value.to_bytes(width, _order(base))


@pytest.mark.parametrize("name", ["newfs-ufs1-le", "makefs-ufs2-be", "makefs1cg-ufs1-be"])
@pytest.mark.parametrize("loop_entry", ["d3/sub", "d3/sub/deep"])
def test_directory_loop_broken_at_its_own_name(bases: dict[str, Base], tmp_path: Path, name: str,
                                               loop_entry: str) -> None:
    """Campaign case 53:5415: a directory cut off from the root that a name inside the cut-off part
    points back to (d3 → itself through "sub", or d3 → sub → d3 through "deep"). fsck_ffs moves the
    loop's top into lost+found under that name and clears the old entry; reconnecting it as #ino
    and keeping the entry left a second name, which the next run found as an EXTRANEOUS HARD LINK."""
    base = bases[name]
    d3 = _field(base, "dirent /d3.d_ino")[2]
    patches = [_set(base, "dirent /d3.d_ino", 0), _set(base, f"dirent {loop_entry}.d_ino", d3)]
    out = run_case(base, patches, tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out
    assert "ORPHANED DIRECTORY LOOP DETECTED" in out.out
    assert "EXTRANEOUS HARD LINK" not in out.out


@pytest.mark.parametrize("name", ["makefs-ufs1-le", "newfs-ufs1-le", "makefs-ufs2-be"])
@pytest.mark.parametrize("mode", [0o100644, 0o010644, 0o120777])
def test_lost_found_reallocated_after_phase_4_passed_it(bases: dict[str, Base], tmp_path: Path, name: str,
                                                       mode: int) -> None:
    """Campaign cases 23:7462, 23:17445, 23:24385: lost+found is no longer a directory and a file
    with a higher inode number is orphaned. Phase 4 reaches the orphan after lost+found's own
    inode, reallocates lost+found, and the old inode loses its last name then: its count must be
    settled at once (reconnected into the new lost+found), as fsck_ffs does, or the next run
    finds it unreferenced."""
    base = bases[name]
    lf = _field(base, "dirent /lost+found.d_ino")[2]
    assert _field(base, "dirent /f3.d_ino")[2] > lf
    out = run_case(base, [_set(base, f"ino{lf}.mode", mode), _set(base, "dirent /f3.d_ino", 0)], tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out
    assert "lost+found IS NOT A DIRECTORY" in out.out


@pytest.mark.parametrize("name", ["makefs1cg-ufs2-be", "makefs-ufs1-le", "newfs-ufs2-le"])
def test_cylinder_group_size_too_small_for_its_maps(bases: dict[str, Base], tmp_path: Path, name: str) -> None:
    """Campaign case 23:14188: fs_cgsize halved in the primary. The maps no longer fit, so every
    run said "CG 0: BAD MAP OFFSETS" again; such a superblock is impossible and an alternate is used."""
    base = bases[name]
    out = run_case(base, [_set(base, "sb.fs_cgsize", _field(base, "sb.fs_cgsize")[2] // 2)], tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out
    assert "BAD SUPER BLOCK" in out.out and "USING ALTERNATE SUPERBLOCK" in out.out, out.out
    if name.startswith("makefs1cg"):  # a group this small passes every other geometry check
        assert "TOO SMALL FOR ITS MAPS" in out.out


@pytest.mark.parametrize("name", ["makefs1cg-ufs2-be", "makefs-ufs1-le", "newfs-ufs2-le"])
@pytest.mark.parametrize(("field", "delta"), [("fs_sblkno", 8), ("fs_sblkno", 3), ("fs_cblkno", 8)])
def test_superblock_copy_place_damaged_in_the_primary(bases: dict[str, Base], tmp_path: Path, name: str,
                                                      field: str, delta: int) -> None:
    """Campaign case 25:17562: one byte of fs_sblkno changed in a one-group image's primary. The
    primary still validated, fsck "updated" the last group's copy at the place it computed from
    the damaged field, which was cg 0's header. Newfs and makefs always put the copy and the
    header in one place, so such a primary is refused and an alternate used."""
    base = bases[name]
    out = run_case(base, [_set(base, f"sb.{field}", _field(base, f"sb.{field}")[2] + delta)], tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out
    assert "USING ALTERNATE SUPERBLOCK" in out.out, out.out


@pytest.mark.parametrize("name", ["makefs1cg-ufs2-le", "newfs-ufs1-be", "makefs-ufs2-be"])
@pytest.mark.parametrize("short", [4, 8])
def test_record_leaving_no_room_for_a_header(bases: dict[str, Base], tmp_path: Path, name: str, short: int) -> None:
    """Campaign case 14:99757: the root's last record made 4 bytes shorter, so the chunk ends in a
    space too small for a record header. Pass 2 read a header past the buffer (a traceback);
    like fsck_ffs's dircheck it is now a corrupted directory whose space the record before
    takes back. The kernel reads the listing first and reports it instead of failing."""
    base = bases[name]
    desc = max((d for d, _o, _w in base.fields if d.startswith("dirent /") and d.endswith(".d_reclen")),
               key=lambda d: _field(base, d)[0])
    out = run_case(base, [_set(base, desc, _field(base, desc)[2] - short)], tmp_path / "w.img", kernel="read")
    assert out.first == 0 and out.second == 0, out.out
    assert "DIRECTORY CORRUPTED" in out.out, out.out


@pytest.mark.parametrize("name", ["makefs-ufs2-le", "newfs-ufs2-be"])
def test_negative_ext_block_pointer(bases: dict[str, Base], tmp_path: Path, name: str) -> None:
    """Campaign case 14:11833: a UFS2 inode whose extended-attribute size is set and whose first
    ext block pointer is negative (UFS2's pointers are signed). fsck read the "block" at a
    negative offset and stopped with CANNOT READ on every run; it is a bad block like any other."""
    base = bases[name]
    ino = _field(base, "dirent /f1.d_ino")[2]
    patches = [_set(base, f"ino{ino}.extsize", 100), _set(base, f"ino{ino}.extb[0]", (1 << 64) - (1 << 60))]
    out = run_case(base, patches, tmp_path / "w.img")
    assert out.first == 0 and out.second == 0, out.out
    assert "CANNOT READ" not in out.out
