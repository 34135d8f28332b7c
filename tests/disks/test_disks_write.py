"""Writes into a partition stay inside it: table, other partitions and GPT backup byte-identical.

A GPT disk from sgdisk holds makefs file systems in p1 and p3; ``p2k newfs disk.img:p2`` makes one in
p2, and a random workload (creates, overwrites, truncates, links, renames, removals) runs on it
through rump_server's drivespec with p2k's ``part=p2``. Afterwards every byte outside p2's window
equals what it was before newfs, p2 passes ``fsck -n`` and p2k reads the workload's files back. The
same holds for partition ``a`` of a NetBSD label inside an MBR slice (``s1a``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import diskimg as d
import pytest
from ffs_work import Workload, p2k_tree

import p2k
from p2k.cli.main import main
from p2k.etfs import parse_drivespec
from p2k.etfs.drivespec import DriveSpecError

pytestmark = pytest.mark.skipif(not d.HAVE_TOOLS, reason="needs makefs, sfdisk, sgdisk and mmls")
P2K = str(Path(sys.executable).with_name("p2k"))


@pytest.fixture
def gpt(tmp_path: Path) -> d.Disk:
    return d.gpt_disk(tmp_path, "w", [("a503", 4, "v1le"), ("a902", 12, None), ("a503", 4, "v2be")], total=24 * d.MiB)


def window(img: Path, name: str) -> tuple[int, int]:
    out = subprocess.run([P2K, "parts", str(img)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        cols = line.split()
        if len(cols) > 4 and cols[1] == name:
            return int(cols[2]) * 512, int(cols[4]) * 512
    raise AssertionError(f"{name} not listed:\n{out}")


@pytest.mark.parametrize("part", ["p2", "s1a"])
def test_workload_in_a_partition_leaves_everything_else_alone(gpt: d.Disk, tmp_path: Path, part: str) -> None:
    """p2 of the GPT disk; s1a of a NetBSD label in an MBR slice (label, swap and the MBR around it)."""
    img = gpt.path if part == "p2" else d.netbsd_mbr(tmp_path).path
    start, size = window(img, part)
    total = img.stat().st_size
    before = (d.digest(img, 0, start), d.digest(img, start, start + size), d.digest(img, start + size, total))
    assert main(["newfs", "-V", "0", "-O", "2", f"{img}:{part}"]) == 0
    k = p2k.Kernel(env={})
    try:
        parse_drivespec(f"key=/dev/dk,hostpath={img},part={part}").register(k.etfs)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        work = Workload(k, seed=7, maxsize=200_000)
        for _ in range(150):
            work.step()
    finally:
        k.halt()
    assert img.stat().st_size == total
    assert d.digest(img, 0, start) == before[0]  # (protective) MBR, primary GPT or the label, p1
    assert d.digest(img, start + size, total) == before[2]  # p3 and the backup GPT at the end, or swap
    assert d.digest(img, start, start + size) != before[1]
    r = subprocess.run([P2K, "fsck", "-n", "-f", f"{img}:{part}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    k = p2k.Kernel(env={})
    try:
        parse_drivespec(f"key=/dev/dk,hostpath={img},part={part}").register(k.etfs)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        tree = p2k_tree(k)
        for path, data in work.files.items():
            assert tree[path]["sha"] == hashlib.sha256(data).hexdigest()
    finally:
        k.halt()


def test_a_window_past_the_partition_is_refused(gpt: d.Disk) -> None:
    start, size = window(gpt.path, "p2")
    k = p2k.Kernel(env={})
    try:
        dev = parse_drivespec(f"key=/dev/dk,hostpath={gpt.path},part=p2").register(k.etfs)
        assert (dev.offset, dev.size) == (start, size)
        with pytest.raises(OSError):
            dev.pwrite(size - 512, bytes(1024))
        with pytest.raises(OSError):
            dev.pread(size, 1)
    finally:
        k.halt(sync=False)


@pytest.mark.parametrize(("spec", "message"), [
    ("part=zz", "invalid part name"),
    ("part=p1,disklabel=a", "part needs to be used alone"),
    ("size=1m,part=p1", "part needs to be used alone"),
])
def test_part_drivespec_errors(spec: str, message: str) -> None:
    with pytest.raises(DriveSpecError, match=message):
        parse_drivespec(f"key=/dev/dk,hostpath=x.img,{spec}")


def test_newfs_larger_than_the_partition_is_refused(gpt: d.Disk) -> None:
    before = d.digest(gpt.path)
    r = subprocess.run([P2K, "newfs", "-s", "100m", f"{gpt.path}:p2"], capture_output=True, text=True)
    assert r.returncode != 0 and "larger than the partition" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert d.digest(gpt.path) == before


def test_crashtest_starts_from_a_partition(gpt: d.Disk) -> None:
    assert main(["newfs", "-V", "0", "-O", "2", f"{gpt.path}:p2"]) == 0
    before = d.digest(gpt.path)
    r = subprocess.run([P2K, "crashtest", "--workload", "smallfiles", "--cuts", "1", f"{gpt.path}:p2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
    assert d.digest(gpt.path) == before  # crashtest works on a copy
