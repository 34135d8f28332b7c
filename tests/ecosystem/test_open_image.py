"""``p2k.open_image``: what the docs do not show — errors, halting, file objects, partitions."""

from __future__ import annotations

import errno
import gzip
import io
from pathlib import Path

import pytest
from eco_images import CSV, data_tree, labelled, makefs, needs_makefs

import p2k
from p2k.cli.main import main as p2k_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    path = tmp_path / "demo.img"
    path.write_bytes(gzip.decompress((ROOT / "images/demo.img.gz").read_bytes()))
    return path


def test_exception_unmounts_halts_and_leaves_image_clean(demo: Path) -> None:
    with pytest.raises(KeyError):
        with p2k.open_image(demo, mode="rw") as fs:
            fs.path("/new").write_bytes(b"x" * 100_000)
            raise KeyError("boom")
    assert fs.closed and fs.kernel.stats()["mounts"] == 0
    assert p2k_main(["fsck", "-fn", str(demo)]) == 0
    with p2k.open_image(demo) as fs:
        assert fs.path("/new").stat().st_size == 100_000


def test_read_only_by_default(demo: Path) -> None:
    before = demo.read_bytes()
    with p2k.open_image(demo) as fs:
        with pytest.raises(OSError) as e:
            fs.path("/x").write_text("no")
        assert e.value.errno == errno.EROFS
        assert fs.path("/hello.txt").read_bytes() == b"Hello from FFS.\n"
    assert demo.read_bytes() == before


def test_bad_arguments(demo: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        p2k.open_image(demo, mode="w")
    with pytest.raises(FileNotFoundError):
        p2k.open_image(tmp_path / "missing.img")
    with open(demo, "rb") as f:
        with pytest.raises(OSError) as e:
            p2k.open_image(f, mode="rw")
        assert e.value.errno == errno.EROFS
        assert not f.closed  # the caller's file object is the caller's
    with pytest.raises(OSError) as e:
        p2k.open_image(f"{demo}:a")  # no disklabel in the demo image
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError):
        p2k.open_image(io.BytesIO(bytes(1 << 20)))  # no file system at all


@needs_makefs
def test_partition_of_path_and_of_file_object(tmp_path: Path) -> None:
    img = labelled(makefs(tmp_path / "fs.img", data_tree(tmp_path / "tree")), tmp_path / "disk.img")
    with p2k.open_image(f"{img}:a") as fs:
        assert fs.path("/data/x.csv").read_text() == CSV
    with open(img, "rb") as f, p2k.open_image(f, partition="a") as fs:
        assert [p.name for p in fs.path("/etc")] == ["motd"]
        assert fs.path("/motd").is_symlink() and fs.path("/motd").read_text() == "Welcome to NetBSD.\n"


def test_writable_file_object(demo: Path) -> None:
    buf = io.BytesIO(demo.read_bytes())
    with p2k.open_image(buf, mode="rw") as fs:
        fs.path("/dir").mkdir()
        fs.path("/dir/f").write_text("in memory\n")
    demo.write_bytes(buf.getvalue())
    assert p2k_main(["fsck", "-fn", str(demo)]) == 0
    with p2k.open_image(demo) as fs:
        assert fs.path("/dir/f").read_text() == "in memory\n"


def test_copy_in_then_out_round_trip(demo: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "data.bin").write_bytes(bytes(range(256)) * 1000)
    (src / "link").symlink_to("sub/data.bin")
    with p2k.open_image(demo, mode="rw") as fs:
        fs.copy_in(src, "/imported")
        assert fs.path("/imported/link").readlink() == "sub/data.bin"
    assert p2k_main(["fsck", "-fn", str(demo)]) == 0
    with p2k.open_image(demo) as fs:
        fs.path("/imported").copy_out(tmp_path / "back")
    assert (tmp_path / "back/sub/data.bin").read_bytes() == (src / "sub/data.bin").read_bytes()
    assert (tmp_path / "back/link").readlink() == Path("sub/data.bin")


@needs_makefs
def test_absolute_symlinks_and_dotdot_stay_inside_the_image(tmp_path: Path) -> None:
    """An image's /etc/localtime -> /usr/share/zoneinfo/UTC means its own /usr, as on the system
    it came from; '..' above the image's root stays at the root (the process is chrooted)."""
    import fsspec

    tree = data_tree(tmp_path / "tree")
    (tree / "usr/share/zoneinfo").mkdir(parents=True)
    (tree / "usr/share/zoneinfo/UTC").write_bytes(b"TZif2 UTC")
    (tree / "etc/localtime").symlink_to("/usr/share/zoneinfo/UTC")
    img = makefs(tmp_path / "disk.img", tree)
    with p2k.open_image(img) as fs:
        assert fs.path("/etc/localtime").read_bytes() == b"TZif2 UTC"
        assert fs.path("/etc/localtime").readlink() == "/usr/share/zoneinfo/UTC"
        assert fs.path("/../../etc/motd").read_text() == "Welcome to NetBSD.\n"
        assert [p.name for p in fs.path("/..")] == ["data", "etc", "motd", "usr"]
    pfs = fsspec.filesystem("p2k", fo=str(img), skip_instance_cache=True)
    assert pfs.cat_file("etc/localtime") == b"TZif2 UTC"
    assert pfs.info("etc/localtime")["destination"] == "/usr/share/zoneinfo/UTC"
    pfs.close()
