"""Read-write through fsspec beyond the abstract suite: mv is a rename (the inode survives), rm -r,
touch without truncation, put of a tree with a symlink; then fsck -fn is clean and the real NetBSD
view (dissect.ffs, an independent reader) agrees."""

from __future__ import annotations

from pathlib import Path

import pytest
from eco_images import CSV, data_tree, makefs, needs_makefs

fsspec = pytest.importorskip("fsspec")
pytestmark = needs_makefs


def test_mv_rm_touch_put(tmp_path: Path) -> None:
    from p2k.cli.main import main as p2k_main

    img = makefs(tmp_path / "disk.img", data_tree(tmp_path / "tree"), "16m", "-f", "200")
    fs = fsspec.filesystem("p2k", fo=str(img), mode="rw", skip_instance_cache=True)
    ino = fs.info("data/x.csv")["ino"]
    fs.mkdir("archive")
    fs.mv("data/x.csv", "archive")  # into an existing directory, as mv(1)
    assert fs.info("archive/x.csv")["ino"] == ino and not fs.exists("data/x.csv")
    fs.mv("archive", "old")  # a directory, renamed in one step
    assert fs.cat_file("old/x.csv") == CSV.encode()
    before = fs.info("etc/motd")
    fs.touch("etc/motd", truncate=False)
    after = fs.info("etc/motd")
    assert after["size"] == before["size"] and after["mtime"] >= before["mtime"]
    src = tmp_path / "up"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.bin").write_bytes(b"\x00\x01" * 5000)
    fs.put(str(src), "up", recursive=True)
    assert fs.cat_file("up/sub/f.bin") == b"\x00\x01" * 5000
    assert fs.find("up") == ["up/sub/f.bin"]
    assert [d for d, _, _ in fs.walk("up")] == ["up", "up/sub"]
    fs.rm("up", recursive=True)
    assert not fs.exists("up")
    with pytest.raises(FileNotFoundError):
        fs.rm_file("nope")
    with pytest.raises(FileExistsError):
        fs.mkdir("old")
    fs.close()
    assert p2k_main(["fsck", "-fn", str(img)]) == 0

    from dissect.ffs import FFS

    with open(img, "rb") as fh:
        ffs = FFS(fh)
        assert ffs.get("/old/x.csv").open().read() == CSV.encode()
        assert sorted(e.name for e in ffs.get("/").iterdir() if e.name not in (".", "..")) == \
            ["data", "etc", "motd", "old"]


def test_remote_and_read_only_refuse_writes(tmp_path: Path) -> None:
    img = makefs(tmp_path / "disk.img", data_tree(tmp_path / "tree"))
    fs = fsspec.filesystem("p2k", fo=str(img), skip_instance_cache=True)
    for call in (lambda: fs.mkdir("x"), lambda: fs.rm("etc/motd"), lambda: fs.mv("motd", "m2"),
                 lambda: fs.touch("t")):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == 30, e.value  # EROFS, named as fsspec callers expect
    fs.close()
